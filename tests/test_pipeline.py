"""The real pipeline, smoke profile, end to end through `dvc repro` in a scratch copy of the repo."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from _workspace import pipeline_workspace

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


TRACE = "params-trace.jsonl"  # every params setting each stage of the fixture's repro read (tripost.params)


def _env(**extra):
    return dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", DVC_NO_ANALYTICS="1", HF_HUB_OFFLINE="1",
                **extra)


def run(cmd, cwd, **env):
    proc = subprocess.run(cmd, cwd=cwd, env=_env(**env), capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}"
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def smoke_repo(tmp_path_factory):
    repo = pipeline_workspace(tmp_path_factory.mktemp("smoke"), "smoke")
    trace = {"TRIPOST_PARAMS_TRACE": str(repo / TRACE)}
    _killed_repro(repo, repo / "interactions" / "multistep_arithmetic" / "ft" / "generations.jsonl", trace)
    run(["dvc", "repro"], repo, **trace)  # resumes: no lock, torn file or orphaned kernel is left to clean by hand
    return repo


def _killed_repro(repo, marker, env_extra, timeout=1800):
    """`dvc repro`, SIGKILLed (dvc and its process group) once `marker` exists: mid-way through the
    first interaction. The stage's kernel dies with dvc (tripost.lifeline)."""
    import signal
    import time

    env = _env(**env_extra)
    log = repo / "killed-repro.log"
    with log.open("w") as f:
        proc = subprocess.Popen(["dvc", "repro"], cwd=repo, env=env, start_new_session=True, stdout=f, stderr=f)
    end = time.time() + timeout
    try:
        while not marker.exists():
            assert proc.poll() is None, f"dvc repro ended before the kill point:\n{log.read_text()[-6000:]}"
            assert time.time() < end, "the kill point was never reached"
            time.sleep(0.2)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


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


def undeclared_params(lock: dict, reads: list[dict]) -> dict[str, set[str]]:
    """stage -> the params settings it read (traced) that its declared params (dvc.lock: dvc.yaml's
    `params` with `${item}` resolved) do not cover. A declared `a.b` covers `a.b` and `a.b.*`."""
    out: dict[str, set[str]] = {}
    for r in reads:
        if not r["stage"]:
            continue
        declared = (lock["stages"][r["stage"]].get("params") or {}).get("params.yaml", {})
        if not any(r["key"] == d or r["key"].startswith(d + ".") for d in declared):
            out.setdefault(r["stage"], set()).add(r["key"])
    return out


def _lock_and_reads(repo):
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    reads = [json.loads(line) for line in (repo / TRACE).read_text().splitlines()]
    return lock, reads


def test_every_stage_declares_the_params_it_reads(smoke_repo):
    """Derived, not listed: every setting a stage's process read during the repro (its notebook and the
    src/ code it calls) is among the params the stage declares, so changing it reruns the stage."""
    lock, reads = _lock_and_reads(smoke_repo)
    stages = {r["stage"].split("@")[0] for r in reads if r["stage"]}
    assert {"prepare", "sft", "interact", "process", "train", "evaluate", "si_demo_data", "lmsi_data"} <= stages
    assert undeclared_params(lock, reads) == {}


@pytest.mark.parametrize("stage, key", [("process@multistep_arithmetic-it0", "interaction.min_data_length"),
                                        ("evaluate@multistep_arithmetic-ft", "evaluation"),
                                        ("sft@multistep_arithmetic", "per_task.multistep_arithmetic"),
                                        ("interact@multistep_arithmetic-source0", "processing.improvement_ratio")])
def test_the_params_check_fails_when_a_declared_setting_is_removed(smoke_repo, stage, key):
    lock, reads = _lock_and_reads(smoke_repo)
    del lock["stages"][stage]["params"]["params.yaml"][key]
    assert stage in undeclared_params(lock, reads)


def test_smoke_pipeline_edits_real_trajectories_and_trains_real_iterations(smoke_repo):
    """Not hollow in the middle: M0 writes the format, FBK/IMP edit its attempts, processing keeps
    improvement examples, and each iteration's weights differ from the model it continued from."""
    from safetensors.torch import load_file

    task = "multistep_arithmetic"
    inter = json.loads((smoke_repo / "interactions" / task / "ft" / "interaction_metrics.json").read_text())
    assert inter["edited"] > 0 and inter["fbk_requests"] > 0 and inter["imp_requests"] > 0, inter
    params = yaml.safe_load((smoke_repo / "params.yaml").read_text())
    for it in params["pipeline"]["iterations"]:
        kinds = json.loads((smoke_repo / "models" / task / it["name"] / "train_metrics.json").read_text())["kinds"]
        assert kinds.get("improvement", 0) > 0, (it["name"], kinds)
        new = load_file(smoke_repo / "models" / task / it["name"] / "model.safetensors")
        old = load_file(smoke_repo / "models" / task / it["prev"] / "model.safetensors")
        assert new.keys() == old.keys() and any(not torch.equal(new[k], old[k]) for k in new), it["name"]


def test_the_interaction_killed_in_the_fixture_ends_as_an_uninterrupted_one(smoke_repo, tmp_path):
    """The fixture killed `dvc repro` in the middle of the first interaction and reran it; rerunning that
    stage from nothing gives byte-identical trajectories and generations."""
    stage = "interact@multistep_arithmetic-source0"
    repo = tmp_path / "copy"  # a copy: the rerun rewrites the stage's metrics, which the report depends on
    shutil.copytree(smoke_repo, repo, symlinks=True)
    out = repo / "interactions" / "multistep_arithmetic" / "ft"
    names = ("trajectories.jsonl", "generations.jsonl")
    resumed = {n: (out / n).read_bytes() for n in names}
    for n in names:
        (out / n).unlink()
    run(["dvc", "repro", "-f", "-s", stage], repo)
    assert {n: (out / n).read_bytes() for n in names} == resumed


def test_smoke_m0_interacts_through_an_llm_endpoint(smoke_repo, tmp_path, monkeypatch):
    """The interaction notebook with `feedback_backend: llm`, the smoke M0 and an OpenAI-compatible server
    on 127.0.0.1: FBK/IMP requests are made inside the stage and edit real trajectories."""
    import papermill as pm

    sys.path.insert(0, str(ROOT / "tests"))
    from fake_openai_server import FakeOpenAI
    from tripost.tasks import get_task

    task = "multistep_arithmetic"
    monkeypatch.setenv("TRIPOST_SMOKE_LLM_KEY", "sk-smoke-test-key")
    params = yaml.safe_load((smoke_repo / "params.yaml").read_text())
    params["interaction"]["max_passes"] = 1
    out = tmp_path / "interact-llm"
    with FakeOpenAI(get_task(task), api_key="sk-smoke-test-key") as srv:
        params["feedback_backend"]["backend"] = "llm"
        params["feedback_backend"]["llm"].update({"base_url": srv.base_url, "api_key_env": "TRIPOST_SMOKE_LLM_KEY",
                                                  "cache_dir": str(tmp_path / "cache"), "n_shots": 1})
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        pm.execute_notebook(str(smoke_repo / "notebooks" / "02_interaction.ipynb"), str(tmp_path / "out.ipynb"),
                            kernel_name="tripost", cwd=str(smoke_repo), progress_bar=False,
                            parameters={"task": task, "iteration": 1, "model_dir": f"models/{task}/ft",
                                        "out_dir": str(out), "params_file": str(tmp_path / "params.yaml")})
        assert srv.ok > 0 and srv.auth_failures == 0
    m = json.loads((out / "interaction_metrics.json").read_text())
    assert m["backend"] == "llm" and m["llm"]["calls"] > 0 and m["edited"] > 0, m


def test_every_notebook_runs_top_to_bottom_with_its_defaults_after_repro(smoke_repo, tmp_path):
    """What a user does in Jupyter after `make repro`: open a notebook and run it as it is. Its empty path
    parameters default to the pipeline's layout (tripost.layout), so each reads what its stage read."""
    import papermill as pm

    repo = tmp_path / "copy"  # the notebooks rewrite their stage's outputs
    shutil.copytree(smoke_repo, repo, symlinks=True, ignore=shutil.ignore_patterns(".dvc", ".git"))
    task = "multistep_arithmetic"  # every notebook's default task, the smoke profile's only one
    written = [f"data/{task}/train.jsonl", f"interactions/{task}/ft/interaction_metrics.json",
               f"iterations/{task}/tripost_t1/processing_metrics.json", f"models/{task}/ft/train_metrics.json",
               f"reports/eval/{task}/ft/metrics.json", "reports/figures/accuracy_by_method.png",
               f"iterations/{task}/ft_si_demo/interaction_metrics.json", f"iterations/{task}/lmsi/lmsi_metrics.json"]
    before = {f: (repo / f).stat().st_mtime_ns for f in written}
    notebooks = sorted(p.name for p in (repo / "notebooks").glob("*.ipynb"))
    assert len(notebooks) == 8
    for name in notebooks:
        pm.execute_notebook(str(repo / "notebooks" / name), str(tmp_path / name), kernel_name="tripost",
                            cwd=str(repo), progress_bar=False)
    assert [f for f in written if (repo / f).stat().st_mtime_ns <= before[f]] == []
    assert not (repo / "models" / task / "sft").exists()  # no path outside the pipeline's layout


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
    # only the swept method's chain (the README's recipe): process, train, interact t = 2, evaluate t = 2
    run(["dvc", "exp", "run", "-S", "processing.improvement_ratio=0.5", "evaluate@multistep_arithmetic-tripost_t2"],
        smoke_repo)
    run([sys.executable, "-m", "tripost.report", "sweep", "reports/ratio_sweep.json"], smoke_repo)
    rows = json.loads((smoke_repo / "reports" / "ratio_sweep.json").read_text())
    assert sorted(r["ratio"] for r in rows) == [0.5, 1.5]
    assert {r["task"] for r in rows} == {"multistep_arithmetic"}
    assert all(0.0 <= r[k] <= 1.0 for r in rows for k in ("total", "si_freq"))
    # the seeds summary reads the same real `dvc exp show` output: both runs have seed 0, in two
    # recipes (ratios), so one seed is averaged and the other recipe's run is left out
    run([sys.executable, "-m", "tripost.report", "seeds", "reports/seeds.json"], smoke_repo)
    seeds = json.loads((smoke_repo / "reports" / "seeds.json").read_text())
    assert seeds["seeds"] == [0] and seeds["ignored"] >= 1, seeds
    assert {(r["task"], r["method"]) for r in seeds["rows"]} >= {("multistep_arithmetic", "ft"),
                                                                 ("multistep_arithmetic", "tripost_t2")}


def test_the_example_task_runs_through_the_pipeline_with_only_the_two_params_edits(tmp_path):
    """docs/adding-a-task.md: a task is its module plus `tasks:` and a `per_task` block. The shipped
    example (running sums) goes through `dvc repro` with exactly those edits; the chain is cut to one
    iteration to keep the run short (that edit is the test's, not the task's)."""
    repo = pipeline_workspace(tmp_path / "ws", "smoke")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["tasks"] = ["running_sums"]  # the doc's two edits
    params["per_task"]["running_sums"] = {}
    params["pipeline"] = {"iterations": [{"name": "tripost_t1", "t": 1, "prev": "ft", "rebalance": True}],
                          "interactions": [{"model": "ft", "t": 1}], "evaluate": ["ft", "tripost_t1"]}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["dvc", "repro"], repo)
    metrics = json.loads((repo / "reports" / "metrics.json").read_text())
    assert set(metrics) == {"running_sums"} and set(metrics["running_sums"]) == {"ft", "ft_si", "tripost_t1"}
    assert "| RS seen | RS unseen | RS total |" in (repo / "reports" / "results.md").read_text()
