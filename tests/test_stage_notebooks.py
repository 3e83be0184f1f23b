"""Notebooks 02/03 run under papermill (real tiny model, llm backend on a local server), and the API key
appears in no file the stages write: data, executed notebooks, metrics, LLM cache, logs, dvc.lock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _fake_task import AddTask, fake_model_generate
from _tiny import llm_backend, llm_client, repo_params
from fake_openai_server import FakeOpenAI, first_attempt_faults
from tripost.feedback import save_llm_metrics
from tripost.interaction import collect
from tripost.io import read_jsonl
from tripost.processing import run

ROOT = Path(__file__).resolve().parent.parent
KEY_ENV = "TRIPOST_TEST_LLM_KEY"
KEY = "sk-live-7Yq2-ZZZ-secret-value-4242"


def _assert_no_key(paths, extra_texts=()):
    checked = 0
    for p in paths:
        if p.is_file():
            data = p.read_bytes()
            assert KEY.encode() not in data, f"the API key leaked into {p}"
            checked += 1
    for t in extra_texts:
        assert KEY not in t
    return checked


@pytest.mark.parametrize("max_in_flight", [1, 8])
def test_stage_outputs_never_contain_the_key(tmp_path, monkeypatch, max_in_flight):
    monkeypatch.setenv(KEY_ENV, KEY)
    task = AddTask()
    pool = task.generate(8, "seen", seed=21)
    params = repo_params({"seed": 0, "interaction": {"temperature": 1.0, "max_new_tokens": 64, "batch_size": 8,
                                                     "chunk_size": 8, "max_passes": 1, "max_data_length": 10**6,
                                                     "pool_limit": None},
                          "processing": {"improvement_ratio": 1.5},
                          "feedback_backend": {"backend": "llm", "llm": {"api_key_env": KEY_ENV}}})
    out = tmp_path / "iterations" / "fake_add" / "t1"
    with FakeOpenAI(task, api_key=KEY, faults=first_attempt_faults(("429", "500")), latency=0.02) as srv:
        client = llm_client(base_url=srv.base_url, model="oracle", api_key_env=KEY_ENV, timeout=1, max_retries=3,
                           backoff_initial=0.001, backoff_max=0.01, cache_dir=tmp_path / "cache",
                           max_in_flight=max_in_flight)
        backend = llm_backend(task, client, n_shots=2)
        m = collect(task, pool, backend=backend, params=params, iteration=1, out_dir=out,
                    generate_fn=fake_model_generate(task), progress=False)
        save_llm_metrics(out / "llm_metrics.json", backend)
        assert srv.ok > 0 and srv.auth_failures == 0  # the key was sent, and accepted
        assert (srv.max_active > 1) == (max_in_flight > 1)  # the concurrent client really overlaps requests
    assert m["llm"]["calls"] > 0
    run(task, read_jsonl(out / "trajectories.jsonl"), pool, params, out)
    files = list(tmp_path.rglob("*"))
    assert _assert_no_key(files) >= 6


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    from _tiny import TINY
    from tripost.modeling import build_tiny_llama, build_tokenizer, save_checkpoint
    from tripost.tasks import get_task

    task = get_task("multistep_arithmetic")
    exs = task.generate(6, "seen", seed=0)
    tok = build_tokenizer([task.gold_text(e) for e in exs] * 3, vocab_size=512)
    model = build_tiny_llama(TINY, tok)
    d = tmp_path_factory.mktemp("model") / "m"
    save_checkpoint(model, tok, d)
    return d, exs


def test_interaction_and_processing_notebooks_run(tmp_path, monkeypatch, tiny_model_dir):
    import papermill as pm
    import yaml

    from tripost.io import write_jsonl

    model_dir, exs = tiny_model_dir
    monkeypatch.setenv(KEY_ENV, KEY)
    data_dir = tmp_path / "data"
    write_jsonl(data_dir / "train.jsonl", (e.to_dict() for e in exs))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["interaction"].update({"max_new_tokens": 24, "max_passes": 1, "batch_size": 8, "chunk_size": 8})
    params["feedback_backend"]["backend"] = "llm"
    params["feedback_backend"]["llm"].update({"api_key_env": KEY_ENV, "cache_dir": str(tmp_path / "cache"),
                                              "base_url": "http://127.0.0.1:9/v1", "n_shots": 1})
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params))
    out_dir = tmp_path / "iterations" / "t1"
    common = {"task": "multistep_arithmetic", "iteration": 1, "model_dir": str(model_dir), "out_dir": str(out_dir),
              "params_file": str(params_file), "data_dir": str(data_dir)}
    logs = []
    for name, extra in (("02_interaction", {}), ("03_processing", {"trajectories_file": str(out_dir / "trajectories.jsonl")})):
        executed = tmp_path / f"{name}.ipynb"
        pm.execute_notebook(str(ROOT / "notebooks" / f"{name}.ipynb"), str(executed), kernel_name="tripost",
                            cwd=str(ROOT), parameters={**common, **extra}, progress_bar=False)
        logs.append(executed.read_text())
    inter = json.loads((out_dir / "interaction_metrics.json").read_text())
    proc = json.loads((out_dir / "processing_metrics.json").read_text())
    assert inter["trajectories"] == len(exs) and proc["trajectories"] == len(exs)
    assert set(proc["filters"]) >= {"format", "duplicate", "too_many_tokens"}
    assert "=== " in logs[0] and "improvement share" in logs[1] and "dropped" in logs[0]
    assert (out_dir / "train.jsonl").exists()
    # the same trajectories in the split layout (docs/method.md §3.6)
    params["processing"]["layout"] = "split"
    params["train"]["mask_prompt"] = True
    split_params = tmp_path / "params-split.yaml"
    split_params.write_text(yaml.safe_dump(params))
    split_dir = tmp_path / "iterations" / "t1-split"
    executed = tmp_path / "03_processing-split.ipynb"
    pm.execute_notebook(str(ROOT / "notebooks" / "03_processing.ipynb"), str(executed), kernel_name="tripost",
                        cwd=str(ROOT), progress_bar=False,
                        parameters={**common, "params_file": str(split_params), "out_dir": str(split_dir),
                                    "trajectories_file": str(out_dir / "trajectories.jsonl")})
    logs.append(executed.read_text())
    split = json.loads((split_dir / "processing_metrics.json").read_text())
    assert split["layout"] == "split" and proc["layout"] == "paper" and "split layout:" in logs[-1]
    assert split["split_examples"]["gold"] == proc["examples"]["gold"]
    recs = [json.loads(ln) for ln in (split_dir / "train.jsonl").read_text().splitlines()]
    assert len(recs) == split["train_examples"] == sum(split["split_examples"].values())
    assert {r["kind"] for r in recs} <= {"verify_wrong", "verify_right", "revision", "gold"}
    checked = _assert_no_key(list(tmp_path.rglob("*")) + [ROOT / "dvc.lock"], logs)
    assert checked >= 6


@pytest.mark.parametrize("method", ["tripost", "lmsi"])
def test_interaction_notebook_checks_the_llm_key_before_it_loads_the_model(tmp_path, monkeypatch, method):
    """The model path does not exist: had the stage loaded the model first, the error would name it."""
    import papermill as pm
    import yaml

    monkeypatch.delenv(KEY_ENV, raising=False)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["feedback_backend"]["backend"] = "llm"
    params["feedback_backend"]["llm"].update({"api_key_env": KEY_ENV, "cache_dir": str(tmp_path / "cache")})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    notebook = {"tripost": "02_interaction", "lmsi": "08_lmsi_data"}[method]
    with pytest.raises(pm.PapermillExecutionError) as err:
        pm.execute_notebook(str(ROOT / "notebooks" / f"{notebook}.ipynb"), str(tmp_path / "out.ipynb"),
                            kernel_name="tripost", cwd=str(ROOT), progress_bar=False,
                            parameters={"task": "multistep_arithmetic", "model_dir": str(tmp_path / "no-model"),
                                        "out_dir": str(tmp_path / "out"), "params_file": str(tmp_path / "params.yaml")})
    assert err.value.ename == "LLMError" and KEY_ENV in err.value.evalue, err.value.evalue
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------------------------
# baselines, evaluation and figures notebooks


def _run_nb(name, tmp_path, parameters):
    import papermill as pm

    executed = tmp_path / f"{name}.ipynb"
    pm.execute_notebook(str(ROOT / "notebooks" / f"{name}.ipynb"), str(executed), kernel_name="tripost",
                        cwd=str(ROOT), parameters=parameters, progress_bar=False)
    return executed.read_text()


def _small_params(tmp_path):
    import yaml

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["interaction"].update({"max_new_tokens": 24, "max_passes": 1, "batch_size": 8, "chunk_size": 8})
    params["evaluation"].update({"max_new_tokens": 16, "batch_size": 8, "max_generation_calls": 2})
    params["baselines"]["lmsi"].update({"k": 2, "max_new_tokens": 16})
    f = tmp_path / "params.yaml"
    f.write_text(yaml.safe_dump(params))
    return f


def test_si_demo_data_and_processing_notebooks_run(tmp_path, tiny_model_dir):
    """+ft SI. demo needs no model; 03 processes its trajectories exactly like TriPosT's."""
    import yaml

    from tripost.io import write_jsonl

    model_dir, exs = tiny_model_dir
    data_dir = tmp_path / "data"
    write_jsonl(data_dir / "train.jsonl", (e.to_dict() for e in exs))
    out_dir = tmp_path / "si_demo"
    common = {"task": "multistep_arithmetic", "out_dir": str(out_dir),
              "params_file": str(_small_params(tmp_path)), "data_dir": str(data_dir)}
    log = _run_nb("07_si_demo_data", tmp_path, common)
    _run_nb("03_processing", tmp_path, {**common, "model_dir": str(model_dir),
                                        "trajectories_file": str(out_dir / "trajectories.jsonl")})
    inter = json.loads((out_dir / "interaction_metrics.json").read_text())
    assert inter["method"] == "si_demo" and inter["trajectories"] == len(exs) and "=== edited" in log
    recs = read_jsonl(out_dir / "train.jsonl")
    assert any(r["kind"] == "improvement" for r in recs)


def test_evaluation_notebook_runs(tmp_path, tiny_model_dir):
    from tripost.io import write_jsonl
    from tripost.tasks import get_task

    model_dir, exs = tiny_model_dir
    task = get_task("multistep_arithmetic")
    data_dir = tmp_path / "data"
    write_jsonl(data_dir / "test.jsonl", (e.to_dict() for e in exs[:2] + task.generate(2, "unseen", seed=1)))
    out_dir = tmp_path / "eval" / "multistep_arithmetic" / "ft"
    log = _run_nb("05_evaluation", tmp_path, {"task": "multistep_arithmetic", "method": "ft", "model_dir": str(model_dir),
                                              "out_dir": str(out_dir), "params_file": str(_small_params(tmp_path)),
                                              "data_dir": str(data_dir)})
    m = json.loads((out_dir / "metrics.json").read_text())
    assert m["method"] == "ft" and m["n"] == {"seen": 2, "unseen": 2, "total": 4}
    assert all(0 <= m[k] <= 1 for k in ("seen", "unseen", "total", "si_freq", "si_contrib"))
    assert len(read_jsonl(out_dir / "predictions.jsonl")) == 4
    assert "si_contrib" in log and "=== " in log


def test_figures_notebook_runs_from_saved_metrics(tmp_path):
    def row(total, si=0.2):
        return {"seen": total + 0.1, "unseen": total - 0.1, "total": total, "si_freq": si, "si_contrib": si / 2}

    metrics = {t: {"ft": row(0.3, 0.0), "ft_si_demo": row(0.25), "lmsi": row(0.32, 0.0), "tripost_t1": row(0.33),
                   "tripost_t2": row(0.35, 0.3), "tripost_auto_t2": row(0.31, 0.5)}
               for t in ("multistep_arithmetic", "logical_deduction")}
    sweep = [{"task": "multistep_arithmetic", "ratio": r, "total": 0.3 + r / 100, "si_freq": r / 10} for r in (0.1, 1.5, 4.67)]
    mf, sf = tmp_path / "metrics.json", tmp_path / "sweep.json"
    mf.write_text(json.dumps(metrics))
    sf.write_text(json.dumps(sweep))
    figs, results = tmp_path / "figures", tmp_path / "results.md"
    _run_nb("06_figures", tmp_path, {"metrics_file": str(mf), "sweep_file": str(sf), "out_dir": str(figs),
                                     "results_file": str(results), "sft_dir": str(tmp_path / "no-sft")})
    assert sorted(p.name for p in figs.glob("*.png")) == ["accuracy_by_method.png", "ratio_sweep.png",
                                                           "si_by_iteration.png"]
    table = results.read_text()
    assert "| TriPosT (t=2) |" in table and "MSA seen" in table and "SI freq" in table
    assert "M0 (+ft), greedy" not in table  # no sft summaries: no M0 table, no learning curves
    sft = tmp_path / "sft" / "logical_deduction"
    sft.mkdir(parents=True)
    (sft / "metrics.json").write_text(json.dumps({"seen": 0.38, "unseen": 0.15, "total": 0.265, "steps": 1200,
                                                  "train_wall_time_s": 720.0, "tokens_per_s": 7511.0,
                                                  "final_loss": 0.236}))
    (sft / "loss_history.json").write_text(json.dumps([{"step": s, "loss": 6.0 / s} for s in (1, 20, 40)]))
    _run_nb("06_figures", tmp_path, {"metrics_file": str(mf), "sweep_file": str(sf), "out_dir": str(figs),
                                     "results_file": str(results), "sft_dir": str(tmp_path / "sft")})
    assert (figs / "sft_loss_curves.png").read_bytes()[:4] == b"\x89PNG"
    assert "| LD | 38.0 | 15.0 | 26.5 | 1200 | 12.0 | 7,511 | 0.236 |" in results.read_text()
    (figs / "ratio_sweep.png").unlink()
    _run_nb("06_figures", tmp_path, {"metrics_file": str(mf), "sweep_file": str(tmp_path / "missing.json"),
                                     "out_dir": str(figs), "results_file": str(results), "sft_dir": str(tmp_path / "no-sft")})
    assert not (figs / "ratio_sweep.png").exists()


def test_lmsi_data_notebook_writes_records(tmp_path, tiny_model_dir):
    from tripost.io import write_jsonl

    model_dir, exs = tiny_model_dir
    data_dir = tmp_path / "data"
    write_jsonl(data_dir / "train.jsonl", (e.to_dict() for e in exs))
    out_dir = tmp_path / "lmsi"
    log = _run_nb("08_lmsi_data", tmp_path, {"task": "multistep_arithmetic", "model_dir": str(model_dir),
                                             "out_dir": str(out_dir), "params_file": str(_small_params(tmp_path)),
                                             "data_dir": str(data_dir)})
    m = json.loads((out_dir / "lmsi_metrics.json").read_text())
    assert m["samples"] == 2 * len(exs) and m["train_examples"] == len(read_jsonl(out_dir / "train.jsonl"))
    assert "LMSI:" in log
