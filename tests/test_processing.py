"""Data post-processing (docs/method.md §3): turns, gold, rebalancing r : 1 : 1, duplicates, token cap, counts."""

from __future__ import annotations

import json
import math

import pytest

from _fake_task import AddTask, fake_model_generate
from _tiny import repo_params
from tripost.feedback import ScriptedBackend
from tripost.interaction import FILTERS, collect
from tripost.processing import collected_count, filter_table, gold_record, process, run, turn_records

A1 = "(1) Let's calculate 1 + 2 = 4.\n(Final response) So the answer is 4."
A2 = "(1) Let's calculate 1 + 2 = 5.\n(Final response) So the answer is 5."
A3 = "(1) Let's calculate 1 + 2 = 3.\n(Final response) So the answer is 3."
F1 = 'In step (1) the part " 1 + 2 = 4 " is incorrect. This is because 1 + 2 is not 4.'
F2 = 'In step (1) the part " 1 + 2 = 5 " is incorrect. This is because 1 + 2 is not 5.'
OK = "Step (1) is correct. The final response is also correct."
UPD = "Updated Answer: Let's think step by step."


@pytest.fixture
def task():
    return AddTask()


def row(q, status, attempts=(), feedbacks=(), p=0, i=0, filt=None, needed=False):
    return {"id": f"p{p}/q{i}", "pass": p, "index": i, "question": q, "status": status, "filter": filt,
            "attempts": list(attempts), "feedbacks": list(feedbacks), "needed_editing": needed}


def test_turn_conversion_exact_text(task):
    recs = turn_records(task, row("1 + 2 =", "edited", [A1, A2, A3], [F1, F2, OK], needed=True))
    prompt = "Q: 1 + 2 =\nAnswer: Let's think step by step."
    assert recs == [
        {"prompt": prompt, "completion": f"\n{A1}\nFeedback: {F1}\n{UPD}\n{A2}", "weighted": True, "kind": "improvement"},
        {"prompt": prompt, "completion": f"\n{A2}\nFeedback: {F2}\n{UPD}\n{A3}", "weighted": True, "kind": "improvement"},
        {"prompt": prompt, "completion": f"\n{A3}\nFeedback: {OK}", "weighted": True, "kind": "final_correct"},
    ]
    [d] = turn_records(task, row("1 + 2 =", "direct_correct", [A3], [OK]))
    assert d == {"prompt": prompt, "completion": f"\n{A3}\nFeedback: {OK}", "weighted": False, "kind": "direct_correct"}
    [t] = turn_records(task, row("1 + 2 =", "truncated", [A1], [F1], filt="no_progress"))
    assert t["kind"] == "truncated" and t["weighted"] and t["completion"] == f"\n{A1}\nFeedback: {F1}"
    assert turn_records(task, row("1 + 2 =", "dropped", filt="format")) == []


def test_info_in_prompt_and_updated_header(task):
    task.info = "Add left to right."
    [imp, _] = turn_records(task, row("1 + 2 =", "edited", [A1, A3], [F1, OK]))
    assert imp["prompt"].endswith("Let's think step by step. Add left to right.")
    assert f"\n{UPD} Add left to right.\n{A3}" in imp["completion"]


def test_gold_record_has_correct_feedback(task):
    ex = task.generate(1, "seen", seed=0)[0]
    g = gold_record(task, ex)
    assert g["kind"] == "gold" and not g["weighted"]
    assert g["completion"].startswith("\n(1) ") and g["completion"].endswith(
        "\nFeedback: Step (1) to (2) are correct. The final response is also correct.")


def _rows(n_edit, n_direct, p=0, offset=0):
    rows = []
    for i in range(n_edit):  # each edited row -> 1 improvement + 1 final_correct
        q = f"{i + offset} + 2 ="
        rows.append(row(q, "edited", [A1, A3], [F1, OK], p=p, i=i, needed=True))
    for j in range(n_direct):
        q = f"{100 + j + offset} + 1 ="
        rows.append(row(q, "direct_correct", [A3], [OK], p=p, i=n_edit + j))
    return rows


@pytest.mark.parametrize("ratio,n_imp,n_non,expect_other", [(1.5, 6, 10, 4), (1.5, 7, 10, 5), (1.0, 3, 10, 3),
                                                            (4.0, 6, 10, 2), (0.5, 4, 6, 6)])
def test_rebalancing_counts(task, ratio, n_imp, n_non, expect_other):
    rows = _rows(n_imp, n_non - n_imp)  # n_imp final_correct + (n_non - n_imp) direct_correct = n_non others
    pool = task.generate(50, "seen", seed=1)
    recs, m = process(task, rows, pool, ratio=ratio, seed=0)
    kinds = m["examples"]
    other = kinds["final_correct"] + kinds["direct_correct"]
    assert kinds["improvement"] == n_imp
    assert other == expect_other == min(math.ceil(n_imp / ratio), n_non)
    assert kinds["gold"] == other  # improvement : other : gold = r : 1 : 1
    assert len(recs) == m["train_examples"] == n_imp + 2 * other
    assert m["improvement_share"] == round(n_imp / len(recs), 4)
    assert sum(m["rebalanced_out"].values()) == n_non - other


def test_no_rebalancing_when_ratio_not_positive(task):
    rows = _rows(3, 7)
    pool = task.generate(50, "seen", seed=1)
    recs, m = process(task, rows, pool, ratio=-1, seed=0)
    assert m["examples"]["improvement"] == 3 and m["examples"]["final_correct"] + m["examples"]["direct_correct"] == 10
    assert m["examples"]["gold"] == 10 and not m["rebalanced_out"]
    recs0, _ = process(task, rows, pool, ratio=0, seed=0)
    assert len(recs0) == len(recs)


def test_gold_capped_by_pool(task):
    recs, m = process(task, _rows(6, 20), task.generate(3, "seen", seed=1), ratio=1.5, seed=0)
    assert m["examples"]["gold"] == 3


def test_rebalancing_is_per_pass_and_duplicates_dropped_across_passes(task):
    rows = _rows(3, 3, p=0) + _rows(3, 3, p=1) + _rows(2, 0, p=1, offset=50)
    recs, m = process(task, rows, task.generate(40, "seen", seed=1), ratio=1.5, seed=0)
    assert m["filters"]["duplicate"] == 9  # pass 1 repeats pass 0: 3 edited rows x 2 records + 3 direct
    assert m["examples"]["improvement"] == 5  # 3 (pass 0) + 2 new (pass 1)
    # pass 0: ceil(3/1.5)=2 of 6 others; pass 1: ceil(2/1.5)=2 of 2 others
    assert m["examples"]["final_correct"] + m["examples"]["direct_correct"] == 4 and m["examples"]["gold"] == 4
    assert collected_count(task, rows, ratio=1.5) == 5 + 4


def test_gold_deduplicated_among_gold_only(task):
    ex = task.generate(1, "seen", seed=2)[0]
    fb = gold_record(task, ex)["completion"].split("Feedback: ")[1]
    rows = [row(ex.question, "direct_correct", [ex.rationale], [fb])]
    recs, m = process(task, rows, [ex, ex], ratio=-1, seed=0)
    assert m["filters"]["duplicate"] == 1  # the repeated pool question
    assert m["examples"]["gold"] == 1 and m["examples"]["direct_correct"] == 1  # same text, other weighting


def test_token_cap(task):
    rows = _rows(4, 4)
    long_q = "1 + 2 + 3 + 4 + 5 + 6 + 7 + 8 + 9 ="
    rows.append(row(long_q, "edited", [A1, A3], [F1, OK], i=50, needed=True))
    recs, m = process(task, rows, [], ratio=-1, seed=0, max_tokens=60, count_tokens=lambda t: len(t.split()))
    assert m["filters"]["too_many_tokens"] >= 1
    assert all(len((r["prompt"] + r["completion"]).split()) + 1 <= 60 for r in recs)
    _, m2 = process(task, rows, [], ratio=-1, seed=0)  # without a tokenizer the cap is skipped
    assert m2["filters"]["too_many_tokens"] == 0


def test_filter_counts_table_and_record_contract(task, tmp_path):
    rows = _rows(2, 2) + [row("9 + 9 =", "dropped", filt=f, i=100 + k) for k, f in enumerate(
        ["format", "too_long", "fbk_error", "fbk_error", "agree_but_wrong", "imp_not_legit", "not_correct",
         "invalid_content"])] + [row("8 + 8 =", "truncated", [A1], [F1], i=200, filt="no_progress", needed=True)]
    params = repo_params({"seed": 3, "processing": {"improvement_ratio": 1.5, "max_tokens": 1024},
                          "interaction": {"min_data_length": 2}})
    m = run(task, rows, task.generate(10, "seen", seed=1), params, tmp_path)
    table = {r["filter"]: r["count"] for r in filter_table(m)}
    assert list(table) == list(FILTERS.values())
    assert m["filters"]["fbk_error"] == 2 and m["filters"]["no_progress"] == 1 and m["filters"]["format"] == 1
    assert m["enough_data"] is True
    recs = [json.loads(ln) for ln in (tmp_path / "train.jsonl").read_text().splitlines()]
    assert len(recs) == m["train_examples"]
    for r in recs:
        assert set(r) == {"prompt", "completion", "weighted", "kind"}
        assert r["prompt"].startswith("Q: ") and r["prompt"].endswith("Let's think step by step.")
        assert r["completion"].startswith("\n(1) ")
        assert r["weighted"] == (r["kind"] in ("improvement", "final_correct", "truncated"))
        if r["weighted"]:
            assert "\nFeedback:" in r["completion"]
    saved = json.loads((tmp_path / "processing_metrics.json").read_text())
    assert saved["filters"] == m["filters"]
    # deterministic
    run(task, rows, task.generate(10, "seen", seed=1), params, tmp_path / "again")
    assert (tmp_path / "again" / "train.jsonl").read_bytes() == (tmp_path / "train.jsonl").read_bytes()


def test_records_train_with_weights_from_feedback(task):
    """The records are what tripost.training expects: weighted ones get w from the first '\\nFeedback:'."""
    pytest.importorskip("torch")
    from _tiny import texts
    from tripost.modeling import build_tokenizer
    from tripost.training import encode_record

    recs = turn_records(task, row("1 + 2 =", "edited", [A1, A3], [F1, OK]))
    tok = build_tokenizer(texts(recs) * 3, vocab_size=512)
    enc = encode_record(tok, recs[0], section_weight=1.5, mask_prompt=False)
    assert enc["weights"][0] == 1.0 and enc["weights"][-1] == 1.5
    enc = encode_record(tok, turn_records(task, row("1 + 2 =", "direct_correct", [A3], [OK]))[0], section_weight=1.5,
                        mask_prompt=False)
    assert set(enc["weights"]) == {1.0}


def test_collect_then_process_end_to_end(task, tmp_path):
    pool = task.generate(12, "seen", seed=9)
    params = repo_params({"seed": 0, "interaction": {"temperature": 1.0, "max_new_tokens": 64, "batch_size": 4, "chunk_size": 4,
                                         "max_passes": 2, "max_data_length": 10**6},
              "processing": {"improvement_ratio": 1.5}})
    collect(task, pool, backend=ScriptedBackend(task), params=params, iteration=1, out_dir=tmp_path,
            generate_fn=fake_model_generate(task), progress=False)
    rows = [json.loads(ln) for ln in (tmp_path / "trajectories.jsonl").read_text().splitlines()]
    m = run(task, rows, pool, params, tmp_path)
    assert m["examples"]["improvement"] > 0 and m["examples"]["gold"] > 0
    assert m["filters"]["duplicate"] > 0  # pass 2 repeats some of pass 1's answers


def test_split_layout_gives_each_decision_its_own_record_exact_text(task):
    """An improvement turn -> a verification record (the attempt in the prompt, the rejecting feedback
    trained) and a revision record (attempt + feedback in the prompt, the next attempt trained); a
    direct-correct or final turn -> an accepting verification record; a truncated one -> a rejecting
    one; gold unchanged."""
    from tripost.processing import split_layout, split_record

    prompt = "Q: 1 + 2 =\nAnswer: Let's think step by step."
    imp1, imp2, final = turn_records(task, row("1 + 2 =", "edited", [A1, A2, A3], [F1, F2, OK], needed=True))
    assert split_record(task, imp1) == [
        {"prompt": f"{prompt}\n{A1}\nFeedback:", "completion": f" {F1}", "weighted": False, "kind": "verify_wrong"},
        {"prompt": f"{prompt}\n{A1}\nFeedback: {F1}\n{UPD}", "completion": f"\n{A2}", "weighted": False,
         "kind": "revision"}]
    assert split_record(task, final) == [
        {"prompt": f"{prompt}\n{A3}\nFeedback:", "completion": f" {OK}", "weighted": False, "kind": "verify_right"}]
    [t] = turn_records(task, row("1 + 2 =", "truncated", [A1], [F1], filt="no_progress"))
    assert split_record(task, t) == [split_record(task, imp1)[0]]
    gold = gold_record(task, task.generate(1, "seen", seed=2)[0])
    assert split_record(task, gold) == [gold]
    # the truncated turn's verification record repeats imp1's: kept once
    recs, m = split_layout(task, [imp1, imp2, final, t, gold])
    assert [r["kind"] for r in recs] == ["verify_wrong", "revision", "verify_wrong", "revision", "verify_right", "gold"]
    assert m == {"layout": "split", "split_duplicates": 1, "revision_share": round(2 / 6, 4),
                 "split_examples": {"verify_wrong": 2, "verify_right": 1, "revision": 2, "gold": 1}}
    # the prompt and the completion together are the paper record's text, up to the revision
    assert (recs[1]["prompt"] + recs[1]["completion"]) == imp1["prompt"] + imp1["completion"]
    with pytest.raises(ValueError, match="without its revision"):
        split_record(task, {**imp1, "completion": f"\n{A1}\nFeedback: {F1}"})


def test_split_layout_keeps_the_info_sentence_and_every_gold_record(task):
    from tripost.processing import split_layout, split_record

    task.info = "Add left to right."
    [imp, _] = turn_records(task, row("1 + 2 =", "edited", [A1, A3], [F1, OK]))
    verify, revision = split_record(task, imp)
    assert verify["prompt"] == f"Q: 1 + 2 =\nAnswer: Let's think step by step. Add left to right.\n{A1}\nFeedback:"
    assert revision["prompt"].endswith(f"Feedback: {F1}\n{UPD} Add left to right.") and revision["completion"] == f"\n{A3}"
    # an attempt equal to the gold rationale: its verify_right record has the gold record's text, not its
    # trained part; both are kept, as the paper layout keeps direct_correct and gold (filter 9)
    task.info = ""
    ex = task.generate(1, "seen", seed=2)[0]
    gold = gold_record(task, ex)
    fb = gold["completion"].split("Feedback: ")[1]
    [direct] = turn_records(task, row(ex.question, "direct_correct", [ex.rationale], [fb]))
    recs, m = split_layout(task, [gold, direct, gold])
    assert [r["kind"] for r in recs] == ["gold", "verify_right", "gold"] and m["split_duplicates"] == 0
    assert recs[1]["prompt"] + recs[1]["completion"] == gold["prompt"] + gold["completion"]


def test_split_layout_through_run_trains_only_the_decision_and_only_with_masked_prompts(task, tmp_path):
    pytest.importorskip("torch")
    from _tiny import texts
    from tripost.modeling import build_tokenizer
    from tripost.training import IGNORE, encode_record, encode_records

    rows = _rows(2, 2) + [row("8 + 8 =", "truncated", [A1], [F1], i=200, filt="no_progress", needed=True)]
    pool = task.generate(10, "seen", seed=1)
    with pytest.raises(ValueError, match=r"processing.layout must be one of paper, split, got 'judge'"):
        run(task, rows, pool, repo_params({"processing": {"layout": "judge"}}), tmp_path / "bad")
    params = repo_params({"seed": 3, "processing": {"layout": "split"}, "train": {"mask_prompt": True},
                          "interaction": {"min_data_length": 2}})
    paper = run(task, rows, pool, repo_params({"seed": 3, "interaction": {"min_data_length": 2}}), tmp_path / "paper")
    m = run(task, rows, pool, params, tmp_path)
    recs = [json.loads(ln) for ln in (tmp_path / "train.jsonl").read_text().splitlines()]
    assert m["layout"] == "split" and paper["layout"] == "paper"
    assert len(recs) == m["train_examples"] == sum(m["split_examples"].values())
    ex = paper["examples"]
    assert m["split_examples"]["revision"] == ex["improvement"]
    assert m["split_examples"]["gold"] == ex["gold"]
    assert m["split_examples"]["verify_right"] + m["split_examples"]["verify_wrong"] + m["split_duplicates"] == (
        ex["improvement"] + ex["final_correct"] + ex["direct_correct"] + ex["truncated"])
    assert m["enough_data"] == paper["enough_data"] and m["examples"] == paper["examples"]  # counted in turns
    assert m["revision_share"] == round(m["split_examples"]["revision"] / len(recs), 4)
    tok = build_tokenizer(texts(recs) * 3, vocab_size=512)
    cfg = {"section_weight": 1.5, "mask_prompt": False, "max_length": 1024}
    with pytest.raises(ValueError, match=r"records \(processing.layout: split\) need mask_prompt: true"):
        encode_records(tok, recs, cfg)
    assert len(encode_records(tok, recs, {**cfg, "mask_prompt": True})[0]) == len(recs)
    for r in recs:
        if r["kind"] == "gold":
            continue
        enc = encode_record(tok, r, section_weight=1.5, mask_prompt=True)
        trained = tok.decode([i for i, lab in zip(enc["input_ids"], enc["labels"]) if lab != IGNORE],
                             skip_special_tokens=True)
        # only the decision is trained: a feedback line, or the revision without a verdict after it
        assert "Feedback" not in trained and "Q:" not in trained
        assert trained.strip() == r["completion"].strip()
