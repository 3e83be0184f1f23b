"""The real pipeline, smoke profile, end to end through `dvc repro` in a scratch copy of the repo."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tripost.profiles import apply_profile

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


def run(cmd, cwd):
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", DVC_NO_ANALYTICS="1", HF_HUB_OFFLINE="1")
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}"
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def smoke_repo(tmp_path_factory):
    repo = tmp_path_factory.mktemp("smoke")
    for name in ("notebooks", "profiles", "src"):
        shutil.copytree(ROOT / name, repo / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("dvc.yaml", "params.yaml", ".dvcignore"):
        shutil.copy(ROOT / name, repo / name)
    (repo / ".dvc").mkdir()
    shutil.copy(ROOT / ".dvc" / "config", repo / ".dvc" / "config")
    apply_profile("smoke", repo / "params.yaml")
    run(["git", "init", "-q"], repo)
    run(["dvc", "repro"], repo)
    return repo


def test_smoke_pipeline_writes_the_table_metrics_and_figures(smoke_repo):
    params = yaml.safe_load((smoke_repo / "params.yaml").read_text())
    metrics = json.loads((smoke_repo / "reports" / "metrics.json").read_text())
    assert set(metrics) == set(params["tasks"])
    for task in params["tasks"]:
        # the ft evaluation gives two rows: +ft (M0's greedy answer) and ft_si (M0 under SI, a diagnostic)
        assert set(metrics[task]) == set(params["pipeline"]["evaluate"]) | {"ft_si"}
        assert metrics[task]["ft"]["si_freq"] is None
        for method, row in metrics[task].items():
            assert all(0.0 <= row[k] <= 1.0 for k in ("seen", "unseen", "total"))
            assert row["intervals"]["total"]["low"] <= row["total"] <= row["intervals"]["total"]["high"]
            if method != "ft":
                assert all(0.0 <= row[k] <= 1.0 for k in ("si_freq", "si_contrib"))
                assert row["vs_ft"]["low"] <= row["vs_ft"]["mean"] <= row["vs_ft"]["high"]
                assert row["verification"]["right"] + row["verification"]["wrong"] == 12
        for split in ("train", "val", "test"):
            assert (smoke_repo / "data" / task / f"{split}.jsonl").stat().st_size > 0
    results = (smoke_repo / "reports" / "results.md").read_text()
    assert "| TriPosT (t=2) |" in results and "| +ft SI. demo |" in results
    assert "## M0 (+ft), greedy, one attempt (sft stage)" in results
    assert "## FBK/IMP usage (all interactions)" in results  # scripted: zero calls, no cost
    for task in params["tasks"]:  # the sft_summary stages: M0's numbers and curve outside the DVC cache
        m0 = json.loads((smoke_repo / "reports" / "sft" / task / "metrics.json").read_text())
        assert m0["task"] == task and 0.0 <= m0["seen"] <= 1.0 and m0["steps"] > 0
        assert json.loads((smoke_repo / "reports" / "sft" / task / "loss_history.json").read_text())[0]["step"] >= 1
    for fig in ("accuracy_by_method", "si_by_iteration", "sft_loss_curves"):
        assert (smoke_repo / "reports" / "figures" / f"{fig}.png").read_bytes()[:4] == b"\x89PNG"
    executed = sorted(p.name for p in (smoke_repo / "artifacts" / "notebooks").glob("*.ipynb"))
    assert "figures.ipynb" in executed and any(n.startswith("interact-") for n in executed)


def test_second_repro_is_a_no_op_and_one_parameter_reruns_only_its_stages(smoke_repo):
    out = run(["dvc", "repro"], smoke_repo)
    assert "Running stage" not in out
    params_path = smoke_repo / "params.yaml"
    original = params_path.read_text()
    params = yaml.safe_load(original)
    params["evaluation"]["batch_size"] = params["evaluation"]["batch_size"] + 1
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        status = json.loads(run(["dvc", "status", "--json"], smoke_repo))
        assert status and all(stage.startswith("evaluate@") for stage in status), sorted(status)
    finally:
        params_path.write_text(original)


def test_ratio_sweep_with_dvc_exp_run(smoke_repo):
    """`dvc exp run -S processing.improvement_ratio=...` reruns the pipeline at another ratio and
    `python -m tripost.report sweep` turns `dvc exp show --json` into one row per ratio. Runs last:
    the experiment's results are applied to the workspace."""
    git = ["git", "-c", "user.name=tripost-tests", "-c", "user.email=tests@example.invalid"]
    run(["git", "add", "-A"], smoke_repo)
    run(git + ["commit", "-qm", "smoke run"], smoke_repo)  # dvc exp needs a commit to branch from
    run(["dvc", "exp", "run", "-S", "processing.improvement_ratio=0.5"], smoke_repo)
    run([sys.executable, "-m", "tripost.report", "sweep", "reports/ratio_sweep.json"], smoke_repo)
    rows = json.loads((smoke_repo / "reports" / "ratio_sweep.json").read_text())
    assert sorted(r["ratio"] for r in rows) == [0.5, 1.5]
    assert {r["task"] for r in rows} == {"multistep_arithmetic"}
    assert all(0.0 <= r[k] <= 1.0 for r in rows for k in ("total", "si_freq"))
