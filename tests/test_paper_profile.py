"""The paper profile end to end through `dvc repro`, for three architectures.

Each workspace applies `profiles/paper.yaml` and replaces only what cannot exist offline — the checkpoint
(a tiny model of the architecture, saved with `save_pretrained`, with a tokenizer of its own kind, trained
300 steps on the task's gold texts so that it writes attempts the interaction can parse, as a real
checkpoint would; tests/_checkpoints.py) and the LLM endpoint (the local OpenAI-compatible server answers FBK and IMP for
date understanding and logical deduction, the paper's split; multistep arithmetic keeps the scripted
FBK/IMP) — and shrinks the sizes. Then the whole pipeline runs: SFT with QLoRA, two iterations (t = 2
merges t = 1's adapter into its base and trains a fresh one), both baselines, evaluation, the report.
The sizes shrink: a dozen questions, the default profile's short buckets, a few training steps. The three
workspaces run side by side (one thread each) to keep the suite's wall time down.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from _workspace import pipeline_workspace
from fake_openai_server import FakeOpenAI
from tripost.params import deep_merge

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
KEY_ENV = "TRIPOST_PAPER_TEST_LLM_KEY"
KEY = "sk-paper-profile-test-key"
pytestmark = pytest.mark.slow

# architecture -> the task its workspace runs (each task once; DU and LD go through the LLM endpoint)
RUNS = {"llama": "date_understanding", "qwen2": "logical_deduction", "gpt2": "multistep_arithmetic"}
LLM_TASKS = ("date_understanding", "logical_deduction")
METHODS = ["ft", "ft_si_demo", "lmsi", "tripost_t2"]


def _shrink(task: str, checkpoint: Path, llm_url: str | None, cache: Path) -> dict:
    """The test's overrides on top of the paper profile: sizes only, plus the offline checkpoint/endpoint."""
    buckets = yaml.safe_load((ROOT / "params.yaml").read_text())["per_task"][task]["data"].get("buckets")
    n = 400  # new tokens per call: a whole attempt of these checkpoints
    over = {
        "tasks": [task],
        "per_task": {task: {
            "data": {"train_size": 12, "val_size": 2, "test_seen_size": 2, "test_unseen_size": 2, "buckets": buckets},
            "sft": {"max_steps": 3, "lr": 1.0e-3, "eval_max_new_tokens": n},
            "interaction": {"max_new_tokens": n, "min_data_length": 1, "max_data_length": 1000},
            "evaluation": {"max_new_tokens": n}}},
        "model": {"name": str(checkpoint), "lora": {"r": 4, "alpha": 8}},
        "sft": {"epochs": 1, "batch_size": 2, "grad_accum": 1, "eval_max_new_tokens": n, "eval_batch_size": 8,
                "logging_steps": 1},
        "train": {"epochs": 1, "batch_size": 4, "grad_accum": 1, "lr": 1.0e-3, "logging_steps": 1},
        "generation": {"batch_size": 8, "max_new_tokens": n, "max_input_tokens": 1024},
        "interaction": {"max_new_tokens": n, "batch_size": 12, "chunk_size": 12, "max_passes": 1,
                        "max_rounds": 2, "min_data_length": 1, "max_data_length": 1000},
        "evaluation": {"max_new_tokens": n, "batch_size": 8, "max_generation_calls": 2},
        "baselines": {"lmsi": {"k": 2, "pool_limit": 4}},
        "pipeline": {"iterations": [{"name": "tripost_t1", "t": 1, "prev": "ft", "rebalance": True},
                                    {"name": "tripost_t2", "t": 2, "prev": "tripost_t1", "rebalance": True}],
                     "interactions": [{"model": "ft", "t": 1}, {"model": "tripost_t1", "t": 2}],
                     "evaluate": METHODS},
    }
    if llm_url:
        over["feedback_backend"] = {"llm": {"base_url": llm_url, "api_key_env": KEY_ENV, "cache_dir": str(cache),
                                            "n_shots": 1, "max_tokens": 256}}
        over["per_task"][task]["feedback_backend"] = {"backend": "llm"}
    return over


def _workspace(base: Path, arch: str, task: str):
    """(repo, LLM server or None): the paper profile applied, then the test's overrides; DU/LD's FBK/IMP
    server answers for the task as the workspace's params build it."""
    from tripost.params import load_params
    from tripost.tasks import task_from_params

    repo = pipeline_workspace(base / arch, "paper")
    params = load_params(repo / "params.yaml")
    assert params["model"]["adapter"] == "qlora" and params["profile"] == "paper"
    server = FakeOpenAI(task_from_params(params, task), api_key=KEY).start() if task in LLM_TASKS else None
    ckpt = base / f"checkpoint-{arch}"  # written by the fixture's first command (tests/_checkpoints.py)
    params = deep_merge(params, _shrink(task, ckpt, server.base_url if server else None, base / f"llm-cache-{arch}"))
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return repo, server


@pytest.fixture(scope="module")
def paper_runs(tmp_path_factory):
    """{arch: (repo, llm server or None)} after `dvc repro` of each workspace (run concurrently)."""
    base = tmp_path_factory.mktemp("paper")
    servers, repos, procs = {}, {}, {}
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", DVC_NO_ANALYTICS="1",
               HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", **{KEY_ENV: KEY})
    try:
        for arch, task in RUNS.items():
            repos[arch], servers[arch] = _workspace(base, arch, task)
        for arch, repo in repos.items():
            make_ckpt = (f"{sys.executable} {ROOT / 'tests' / '_checkpoints.py'} {arch} {base / f'checkpoint-{arch}'}"
                         f" --params params.yaml --task {RUNS[arch]} --steps 300")
            with (repo / "repro.log").open("w") as log:
                procs[arch] = subprocess.Popen(f"{make_ckpt} && dvc repro", shell=True, cwd=repo, env=env,
                                               stdout=log, stderr=log)
        end = time.time() + 1800
        for arch, proc in procs.items():
            proc.wait(timeout=max(1, end - time.time()))
            log = (repos[arch] / "repro.log").read_text()
            assert proc.returncode == 0, f"dvc repro ({arch}) failed:\n{log[-8000:]}"
        yield {arch: (repos[arch], servers[arch]) for arch in RUNS}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
        for srv in servers.values():
            if srv is not None:
                srv.stop()


@pytest.mark.parametrize("arch", list(RUNS))
def test_paper_profile_runs_end_to_end(paper_runs, arch):
    from tripost.modeling import adapter_base

    repo, server = paper_runs[arch]
    task = RUNS[arch]
    metrics = json.loads((repo / "reports" / "metrics.json").read_text())
    assert set(metrics) == {task}
    assert set(metrics[task]) == set(METHODS) | {"ft_si"}
    for row in metrics[task].values():
        assert all(0.0 <= row[k] <= 1.0 for k in ("seen", "unseen", "total"))
    assert "| TriPosT (t=2) |" in (repo / "reports" / "results.md").read_text()
    # every trained model is a QLoRA adapter on a base of this architecture
    config = json.loads((repo.parent / f"checkpoint-{arch}" / "config.json").read_text())
    for name in ("ft", "tripost_t1", "tripost_t2", "ft_si_demo", "lmsi"):
        out = repo / "models" / task / name
        assert json.loads((out / "tripost_adapter.json").read_text())["adapter"] == "qlora", name
        base = Path(adapter_base(out))  # t >= 2 and the baselines: the merged base inside the model folder
        assert json.loads((base / "config.json").read_text())["model_type"] == config["model_type"], name
    # the iterations trained on edited trajectories, and t = 2 continued from t = 1: its base is t = 1's
    # adapter merged into t = 1's base (saved inside t = 2's folder), with a fresh adapter on top
    for name in ("tripost_t1", "tripost_t2"):
        tm = json.loads((repo / "models" / task / name / "train_metrics.json").read_text())
        assert not tm.get("skipped") and tm["steps"] > 0, (name, tm)
        assert tm["kinds"].get("improvement", 0) > 0, (name, tm["kinds"])
        adapter = json.loads((repo / "models" / task / name / "adapter_config.json").read_text())
        assert adapter["base_model_name_or_path"] == "base/merged_base", name  # relative to the model folder
    # FBK/IMP: through the endpoint for DU/LD (the paper's split), scripted for MSA
    inter = json.loads((repo / "interactions" / task / "ft" / "interaction_metrics.json").read_text())
    if task in LLM_TASKS:
        assert inter["backend"] == "llm" and inter["llm"]["calls"] > 0 and server.ok > 0, inter
        assert server.auth_failures == 0
    else:
        assert inter["backend"] == "scripted" and server is None


def test_the_three_architectures_took_both_generation_paths(paper_runs):
    """The sliding-window Qwen2 checkpoint generates through the model.generate fallback; LLaMA and GPT-2
    through the fast path (test_architectures.py checks both give the same greedy outputs)."""
    from tripost.generation import _fast_path_ok
    from tripost.modeling import load_for_inference

    took = {}
    for arch, (repo, _) in paper_runs.items():
        model, _ = load_for_inference(repo / "models" / RUNS[arch] / "tripost_t2")
        took[arch] = _fast_path_ok(model)
    assert took == {"llama": True, "qwen2": False, "gpt2": True}
