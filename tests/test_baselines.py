"""Baselines (docs/method.md §6): +ft SI. demo trajectories (corrupted gold edited by FBK/IMP, same schema and
processing as TriPosT) and LMSI records (gold- and FBK-correct samples of M0, deduplicated)."""

from __future__ import annotations

import pytest

from _fake_task import AddTask, Gen, fake_model_generate
from _tiny import repo_params
from tripost.baselines import baseline_config, lmsi_records, run_lmsi, run_si_demo, si_demo_trajectories
from tripost.feedback import ScriptedBackend
from tripost.interaction import _row, collect
from tripost.io import read_json, read_jsonl
from tripost.params import deep_merge
from tripost.processing import run
from tripost.training import baseline_params

PARAMS = repo_params({"seed": 0, "interaction": {"temperature": 1.0, "max_new_tokens": 64, "batch_size": 8,
                                                 "chunk_size": 8, "max_passes": 1, "max_data_length": 10**6,
                                                 "pool_limit": None},
                       "processing": {"improvement_ratio": 1.5}, "train": {"section_weight": 1.5, "epochs": 4},
                       "baselines": {"si_demo": {"seed": 3}, "lmsi": {"k": 3, "temperature": 1.2, "pool_limit": None}}})
SAMPLING = {k: PARAMS["interaction"][k] for k in ("max_new_tokens", "batch_size", "top_p")}


def test_si_demo_rows_have_the_interaction_schema_and_process_like_tripost(tmp_path):
    task = AddTask()
    pool = task.generate(10, "seen", seed=5)
    rows = si_demo_trajectories(task, pool, ScriptedBackend(task), PARAMS)
    assert rows == si_demo_trajectories(task, pool, ScriptedBackend(task), PARAMS)  # seeded
    assert rows != si_demo_trajectories(task, pool, ScriptedBackend(task), PARAMS, seed=4)
    # the same keys as a TriPosT interaction row
    ref = collect(task, pool[:2], backend=ScriptedBackend(task), params=PARAMS, iteration=1, out_dir=tmp_path / "ref",
                  generate_fn=fake_model_generate(task), progress=False)
    assert ref["trajectories"] == 2
    assert set(rows[0]) == set(read_jsonl(tmp_path / "ref" / "trajectories.jsonl")[0])
    assert len(rows) == 10 and all(r["status"] == "edited" and r["needed_editing"] for r in rows)
    for r, ex in zip(rows, pool):
        assert r["prediction"].strip() != ex.rationale  # a planted mistake ...
        assert r["attempts"][-1] == ex.rationale  # ... fixed by IMP back to the gold rationale
        assert task.parse_answer(r["attempts"][0]) != ex.answer
        assert r["text"].startswith(task.prompt(ex.question))
    m = run(task, rows, pool, PARAMS, tmp_path / "proc")
    assert m["examples"]["improvement"] == 10 and m["train_examples"] > 10
    recs = read_jsonl(tmp_path / "proc" / "train.jsonl")
    assert any(r["kind"] == "improvement" and r["weighted"] for r in recs)


def test_run_si_demo_writes_stage_files_and_weight_one(tmp_path):
    task = AddTask()
    pool = task.generate(4, "seen", seed=6)
    m = run_si_demo(task, pool, ScriptedBackend(task), PARAMS, tmp_path)
    assert m["method"] == "si_demo" and m["trajectories"] == 4 and m["edited"] == 4
    assert read_json(tmp_path / "interaction_metrics.json")["collected_examples"] == m["collected_examples"]
    assert baseline_config(PARAMS, "lmsi")["direct_answer"] is False


def test_a_baseline_trains_with_its_own_overrides_of_train():
    """What the training notebook runs with `baseline=...`: params.yaml's `train:` with the baseline's
    section weight (SI. demo) and its `baselines.<method>.train` overrides; nothing else changes."""
    tp = baseline_params(PARAMS, "ft_si_demo", "fake_add")
    assert tp["train"] == {**PARAMS["train"], "section_weight": 1.0} and PARAMS["train"]["section_weight"] == 1.5
    assert {k: v for k, v in tp.items() if k != "train"} == {k: v for k, v in PARAMS.items() if k != "train"}
    assert baseline_params(PARAMS, "lmsi", "fake_add")["train"]["section_weight"] == 1.5
    params = deep_merge(PARAMS, {"baselines": {"lmsi": {"train": {"epochs": 5}}}})
    assert baseline_params(params, "lmsi", "fake_add")["train"]["epochs"] == 5
    with pytest.raises(ValueError, match="baseline must be ft_si_demo or lmsi"):
        baseline_params(PARAMS, "si_demo")


def test_si_demo_on_a_real_task():
    from tripost.tasks import get_task

    task = get_task("multistep_arithmetic")
    pool = task.generate(4, "seen", seed=0)
    rows = si_demo_trajectories(task, pool, ScriptedBackend(task), PARAMS)
    assert sum(r["status"] in ("edited", "truncated") for r in rows) >= 3
    assert all(r["filter"] != "format" for r in rows)


def _samples(task, q):
    gold = task.solve(q)
    wrong = gold.replace("So the answer is", "So the answer is 1")  # wrong final answer
    inconsistent = gold.rsplit("\n", 1)[0] + "\n(Final response) So the answer is " + task.sample.__name__
    return [f"\n{gold}", f"\n{gold}", f"\n{wrong}", f"\n{gold}\nFeedback: whatever", "\nnot a step", inconsistent]


def test_lmsi_keeps_gold_and_fbk_correct_samples_deduplicated():
    task = AddTask()
    pool = task.generate(3, "seen", seed=7)
    k = 6
    calls = []

    def gen(model, tokenizer, prompts, *, max_new_tokens, do_sample, temperature, top_p, stop, batch_size, seed,
            progress):
        calls.append((len(prompts), do_sample, temperature))
        out = []
        for i, p in enumerate(prompts):
            q = p[3:].split("\nAnswer:")[0]
            out.append(Gen(_samples(task, q)[i % k].split("\nFeedback:")[0]))  # generation stops at Feedback
        return out

    recs, stats = lmsi_records(task, pool, None, None, k, 1.2, seed=1, generate_fn=gen, **SAMPLING)
    assert calls == [(18, True, 1.2)]
    assert [r["completion"] for r in recs] == ["\n" + e.rationale for e in pool]  # one per question after dedup
    assert all(r == {"prompt": task.prompt(e.question), "completion": "\n" + e.rationale, "weighted": False,
                     "kind": "lmsi"} for r, e in zip(recs, pool))
    assert stats["kept"] == 3 and stats["rejected"]["duplicate"] == 6 and stats["rejected"]["wrong"] >= 3
    assert stats["rejected"]["format"] == 3 and stats["questions_with_kept_attempt"] == 3

    recs, stats = lmsi_records(task, pool, None, None, k, 1.2, 0, direct_answer=True, generate_fn=gen, **SAMPLING)
    direct = [r for r in recs if r["kind"] == "lmsi_direct"]
    assert len(direct) == 3 and direct[0]["prompt"] == f"Q: {pool[0].question}\nAnswer:"
    assert direct[0]["completion"] == f" So the answer is {pool[0].answer}."


def test_run_lmsi_writes_train_jsonl(tmp_path):
    task = AddTask()
    pool = task.generate(6, "seen", seed=8)
    params = deep_merge(PARAMS, {"baselines": {"lmsi": {"k": 2, "pool_limit": 4, "train": {"epochs": 5}}}})
    m = run_lmsi(task, pool, None, None, params, tmp_path, generate_fn=fake_model_generate(task))
    recs = read_jsonl(tmp_path / "train.jsonl")
    assert m["questions"] == 4 and m["samples"] == 8 and len(recs) == m["train_examples"] == m["kept"]
    assert all(r["kind"] == "lmsi" and task.parse_answer(r["completion"]) is not None for r in recs)
    assert read_json(tmp_path / "lmsi_metrics.json")["k"] == 2


def test_row_helper_is_reused():
    # the SI demo rows come from interaction._row itself (one schema, no copy)
    import tripost.baselines as b

    assert b._row is _row
