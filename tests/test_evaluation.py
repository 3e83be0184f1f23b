"""Self-improving evaluation (docs/method.md §5.2): SI frequency / contribution on a scripted model, a real tiny
model run, and the combined metrics / ratio-sweep files."""

from __future__ import annotations

import json

import pytest

from _fake_task import AddTask, Gen
from tripost.report import combine_metrics, sweep_rows
from tripost.tasks import Example

UPD = "Updated Answer: Let's think step by step."
FB_OK = "Step (1) to (2) are correct. The final response is also correct."


def _fb_err(attempt):
    step = attempt.split("\n")[0]
    seg = step.split("calculate ")[1].rstrip(".")
    return f'In step (1) the part " {seg} " is incorrect. This is because it is wrong.'


def _wrong(question, delta=1):
    """The gold rationale with step (1)'s sum off by `delta`, carried forward."""
    nums = [int(x) for x in question.replace("=", "").split(" + ")]
    total, lines = nums[0], []
    for i, n in enumerate(nums[1:], 1):
        new = total + n + (delta if i == 1 else 0)
        lines.append(f"({i}) Let's calculate {total} + {n} = {new}.")
        total = new
    return "\n".join(lines + [f"(Final response) So the answer is {total}."])


class Scripted:
    """generate_fn replaying (text, stop_reason) per question (the prompt's first line)."""

    def __init__(self, scripts):
        self.scripts = {q: list(v) for q, v in scripts.items()}

    def __call__(self, model, tokenizer, prompts, *, max_new_tokens, do_sample=False, temperature=1.0, top_p=1.0,
                 stop=None, batch_size=32, seed=0, progress=False):
        assert do_sample is False  # evaluation is greedy
        return [Gen(*self.scripts[p.split("\n")[0][3:]].pop(0)) for p in prompts]


def _case(task):
    q1, q2, q3, q4, q5 = "1 + 2 + 3 =", "2 + 2 + 2 =", "1 + 1 + 1 + 1 + 1 =", "4 + 4 + 1 + 1 =", "3 + 3 + 3 + 3 + 3 ="
    g = {q: task.solve(q) for q in (q1, q2, q3, q4, q5)}
    w = {q: _wrong(q) for q in (q1, q3, q4)}
    w5 = _wrong(q5, delta=2)
    scripts = {
        # wrong, revised to right, says correct: correct, first wrong, 1 revision
        q1: [(f"\n{w[q1]}\nFeedback: {_fb_err(w[q1])}\n{UPD}\n{g[q1]}", "eos"), (f" {FB_OK}", "eos")],
        # right at once
        q2: [(f"\n{g[q2]}\nFeedback: {FB_OK}", "eos")],
        # wrong, revised to another wrong answer, then wrong again until the call limit
        q3: [(f"\n{w[q3]}\nFeedback: {_fb_err(w[q3])}\n{UPD}\n{_wrong(q3, 3)}", "eos"),
             (f" {_fb_err(_wrong(q3, 3))}", "eos"), (f"\n{_wrong(q3, 4)}", "eos")],
        # wrong, model believes it is correct
        q4: [(f"\n{w[q4]}\nFeedback: {FB_OK}", "eos")],
        # right, criticised, revised into a wrong answer
        q5: [(f"\n{g[q5]}\nFeedback: {_fb_err(g[q5])}\n{UPD}\n{w5}", "eos"), (f" {FB_OK}", "eos")],
    }
    exs = [Example(q1, "6", g[q1], "n3", "seen"), Example(q2, "6", g[q2], "n3", "seen"),
           Example(q3, "5", g[q3], "n5", "unseen"), Example(q4, "10", g[q4], "n4", "seen"),
           Example(q5, "15", g[q5], "n5", "unseen")]
    return exs, Scripted(scripts)


def test_si_numbers_on_a_hand_built_case():
    from tripost.evaluation import evaluate_self_improve

    task = AddTask()
    exs, gen = _case(task)
    cfg = {"max_generation_calls": 3, "max_new_tokens": 64, "batch_size": 8, "seed": 0}
    res = evaluate_self_improve(task, None, None, exs, cfg, generate_fn=gen)
    rows = res["predictions"]
    assert [r["correct"] for r in rows] == [True, True, False, False, False]
    assert [r["first_attempt_correct"] for r in rows] == [False, True, False, False, True]
    assert [r["num_revisions"] for r in rows] == [1, 0, 2, 0, 1]
    assert rows[2]["answer"] == str(5 + 4) and rows[2]["stop"] == "max_calls"
    assert res["seen"] == pytest.approx(2 / 3) and res["unseen"] == 0.0 and res["total"] == pytest.approx(2 / 5)
    assert res["buckets"] == {"n3": 1.0, "n4": 0.0, "n5": 0.0}
    assert res["si_freq"] == pytest.approx(3 / 5)  # q1, q3, q5 revised
    assert res["si_contrib"] == pytest.approx(1 / 2)  # of the 2 correct, q1 was fixed by revising
    assert res["mean_revisions"] == pytest.approx(4 / 5)
    assert res["first_attempt_accuracy"] == pytest.approx(2 / 5)
    assert res["by_split"]["seen"]["si_freq"] == pytest.approx(1 / 3)
    assert res["by_split"]["unseen"]["si_contrib"] == 0.0  # no correct answer: 0, not undefined
    assert res["n"] == {"seen": 3, "unseen": 2, "total": 5}
    assert rows[0]["text"].startswith("Q: 1 + 2 + 3 =\nAnswer: Let's think step by step.\n(1)")
    assert set(rows[0]) >= {"question", "gold", "bucket", "split", "answer", "correct", "first_attempt_correct",
                            "num_revisions", "text"}


def test_run_evaluation_writes_metrics_and_predictions(tmp_path, monkeypatch):
    import tripost.evaluation as ev
    from tripost.io import read_jsonl, write_jsonl

    task = AddTask()
    exs, gen = _case(task)
    monkeypatch.setattr("tripost.tasks.get_task", lambda name: task)
    write_jsonl(tmp_path / "test.jsonl", (e.to_dict() for e in exs))
    params = {"evaluation": {"max_generation_calls": 3, "max_new_tokens": 64, "batch_size": 8, "seed": 0},
              "per_task": {"fake_add": {"evaluation": {"batch_size": 2}}}}
    res = ev.run_evaluation("fake_add", "tripost_t2", "", tmp_path / "test.jsonl", params, tmp_path / "out",
                            generate_fn=gen)
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert m["task"] == "fake_add" and m["method"] == "tripost_t2" and "predictions" not in m
    assert m["config"]["batch_size"] == 2 and m["si_freq"] == pytest.approx(0.6)
    assert len(read_jsonl(tmp_path / "out" / "predictions.jsonl")) == 5 == res["n"]["total"]
    combined = ev.combine_metrics([tmp_path / "out" / "metrics.json"])
    row = combined["fake_add"]["tripost_t2"]
    assert {k: row[k] for k in ("seen", "unseen", "total", "si_freq", "si_contrib")} == {
        k: m[k] for k in ("seen", "unseen", "total", "si_freq", "si_contrib")}
    assert row["intervals"]["total"]["mean"] == pytest.approx(0.4) and row["verification"]["wrong"] == 3
    assert "vs_ft" not in row  # no ft row to compare with

    # the same run as M0's: `ft` is its greedy first attempt, `ft_si` the self-improving run (diagnostic)
    _, gen = _case(task)
    ev.run_evaluation("fake_add", "ft", "", tmp_path / "test.jsonl", params, tmp_path / "ft", generate_fn=gen)
    combined = ev.combine_metrics([tmp_path / "out" / "metrics.json", tmp_path / "ft" / "metrics.json"])
    ft, ft_si, t2 = (combined["fake_add"][k] for k in ("ft", "ft_si", "tripost_t2"))
    assert list(combined["fake_add"]) == ["ft", "ft_si", "tripost_t2"]
    assert (ft["seen"], ft["unseen"], ft["total"]) == (pytest.approx(1 / 3), pytest.approx(1 / 2), pytest.approx(2 / 5))
    assert ft["si_freq"] is None and ft_si["total"] == pytest.approx(2 / 5)
    # per question: SI right/greedy wrong on q1, SI wrong/greedy right on q5 -> difference 0
    assert t2["vs_ft"]["mean"] == 0 and t2["vs_ft"]["low"] < 0 < t2["vs_ft"]["high"]


def test_self_improve_evaluation_with_a_real_tiny_model():
    from _tiny import TINY
    from tripost.evaluation import evaluate_self_improve
    from tripost.modeling import build_tiny_llama, build_tokenizer
    from tripost.tasks import get_task

    task = get_task("multistep_arithmetic")
    exs = task.generate(2, "seen", seed=0) + task.generate(2, "unseen", seed=0)
    tok = build_tokenizer([task.gold_text(e) for e in exs] * 3, vocab_size=512)
    model = build_tiny_llama(TINY, tok)
    res = evaluate_self_improve(task, model, tok, exs, {"max_generation_calls": 2, "max_new_tokens": 12, "batch_size": 4,
                                                     "seed": 0})
    assert res["n"] == {"seen": 2, "unseen": 2, "total": 4} and len(res["predictions"]) == 4
    for k in ("seen", "unseen", "total", "si_freq", "si_contrib"):
        assert 0.0 <= res[k] <= 1.0
    assert all(r["text"].startswith(task.prompt(r["question"])) for r in res["predictions"])
    assert all(1 <= r["calls"] <= 2 for r in res["predictions"])


def _write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


def test_combine_metrics_orders_tasks_and_methods_and_reads_paths(tmp_path):
    row = {"seen": 0.5, "unseen": 0.25, "total": 0.4, "si_freq": 0.1, "si_contrib": 0.0, "buckets": {"x": 1.0}}
    paths = [
        _write(tmp_path / "eval" / "word_sorting" / "tripost_t2" / "metrics.json", row),
        _write(tmp_path / "eval" / "word_sorting" / "ft" / "metrics.json", {**row, "total": 0.3}),
        _write(tmp_path / "eval" / "multistep_arithmetic" / "tripost_auto_t1" / "metrics.json", row),
        _write(tmp_path / "eval" / "multistep_arithmetic" / "lmsi" / "metrics.json", row),
        _write(tmp_path / "other.json", {**row, "task": "multistep_arithmetic", "method": "tripost_t1"}),
    ]
    c = combine_metrics(paths)
    assert list(c) == ["multistep_arithmetic", "word_sorting"]
    assert list(c["multistep_arithmetic"]) == ["lmsi", "tripost_t1", "tripost_auto_t1"]
    assert list(c["word_sorting"]) == ["ft", "ft_si", "tripost_t2"]
    assert {k: c["word_sorting"]["ft_si"][k] for k in ("seen", "unseen", "total", "si_freq", "si_contrib")} == {
        "seen": 0.5, "unseen": 0.25, "total": 0.3, "si_freq": 0.1, "si_contrib": 0.0}


def test_sweep_rows_from_dvc_exp_show(tmp_path):
    from tripost.report import main

    def run(ratio, total, name):
        return {"rev": "abc", "name": name, "data": {
            "params": {"params.yaml": {"data": {"processing": {"improvement_ratio": ratio}}}},
            "metrics": {"reports/metrics.json": {"data": {"multistep_arithmetic": {
                "ft": {"total": 0.1}, "tripost_t1": {"total": 0.0, "si_freq": 0.0},
                "tripost_t2": {"total": total, "si_freq": ratio / 10, "si_contrib": 0.1}}}}}}}

    exp_show = [{"rev": "workspace", **run(1.5, 0.3, None)},
                {"rev": "main", **run(1.5, 0.3, None),
                 "experiments": [{"revs": [run(0.1, 0.2, "exp-a")]}, {"revs": [run(4.67, 0.25, "exp-b")]}]}]
    rows = sweep_rows(exp_show)
    assert [(r["ratio"], r["total"], r["method"]) for r in rows] == [(0.1, 0.2, "tripost_t2"), (1.5, 0.3, "tripost_t2"),
                                                                     (4.67, 0.25, "tripost_t2")]
    assert rows[0]["exp"] == "exp-a"
    f = _write(tmp_path / "exp.json", exp_show)
    main(["sweep", str(tmp_path / "sweep.json"), str(f)])
    assert len(json.loads((tmp_path / "sweep.json").read_text())) == 3
    assert rows[1]["share"] == 1.5 / 3.5


def test_sweep_rows_prefer_per_stage_metrics_and_keep_only_swept_tasks():
    """An experiment that reran only some tasks (`dvc exp run -S ... evaluate@<task>-tripost_t2`)
    leaves the combined file stale: the per-stage files are read, and `tasks` drops the others."""
    def run(ratio, ws_total, name):
        return {"name": name, "data": {
            "params": {"params.yaml": {"data": {"processing": {"improvement_ratio": ratio}}}},
            "metrics": {
                "reports/metrics.json": {"data": {"word_sorting": {"tripost_t2": {"total": 0.99}}}},
                "reports/eval/word_sorting/tripost_t2/metrics.json": {"data": {"total": ws_total, "si_freq": 0.2}},
                "reports/eval/word_sorting/tripost_t1/metrics.json": {"data": {"total": 0.0}},
                "reports/eval/date_understanding/tripost_t2/metrics.json": {"data": {"total": 0.5}},
                "interactions/word_sorting/ft/interaction_metrics.json": {"data": {"trajectories": 3}}}}}

    exp_show = [{"rev": "main", **run(1.5, 0.3, None), "experiments": [{"revs": [run(4.67, 0.1, "exp-b")]}]}]
    rows = sweep_rows(exp_show, tasks=["word_sorting"])
    assert [(r["task"], r["ratio"], r["method"], r["total"]) for r in rows] == [
        ("word_sorting", 1.5, "tripost_t2", 0.3), ("word_sorting", 4.67, "tripost_t2", 0.1)]
    assert rows[1]["si_contrib"] is None and rows[1]["exp"] == "exp-b"
    assert {r["task"] for r in sweep_rows(exp_show)} == {"word_sorting", "date_understanding"}


def test_sweep_cli_task_filter(tmp_path):
    from tripost.report import main

    run = {"data": {"params": {"params.yaml": {"data": {"processing": {"improvement_ratio": 0.5}}}},
                    "metrics": {"reports/eval/logical_deduction/tripost_t2/metrics.json": {"data": {"total": 0.2}},
                                "reports/eval/word_sorting/tripost_t2/metrics.json": {"data": {"total": 0.4}}}}}
    f = _write(tmp_path / "exp.json", [run])
    main(["sweep", str(tmp_path / "sweep.json"), str(f), "--tasks", "logical_deduction"])
    rows = json.loads((tmp_path / "sweep.json").read_text())
    assert [(r["task"], r["total"]) for r in rows] == [("logical_deduction", 0.2)]
    # a later sweep of another task, merged into the same file: LD's rows stay, WS's are added
    main(["sweep", str(tmp_path / "sweep.json"), str(f), "--tasks", "word_sorting", "--merge"])
    rows = json.loads((tmp_path / "sweep.json").read_text())
    assert [(r["task"], r["total"]) for r in rows] == [("logical_deduction", 0.2), ("word_sorting", 0.4)]
    main(["sweep", str(tmp_path / "sweep.json"), str(f), "--tasks", "word_sorting"])  # no --merge: replaced
    assert [r["task"] for r in json.loads((tmp_path / "sweep.json").read_text())] == ["word_sorting"]


def test_combine_cli(tmp_path):
    from tripost.report import main

    m = _write(tmp_path / "e" / "word_sorting" / "ft" / "metrics.json", {"total": 0.5, "first_attempt_accuracy": 0.6})
    main(["combine", str(tmp_path / "metrics.json"), str(m)])
    rows = json.loads((tmp_path / "metrics.json").read_text())["word_sorting"]
    assert rows["ft"]["total"] == 0.6 and rows["ft_si"]["total"] == 0.5


def test_self_verification_counts_on_the_hand_built_case():
    from tripost.evaluation import evaluate_self_improve

    task = AddTask()
    exs, gen = _case(task)
    cfg = {"max_generation_calls": 3, "max_new_tokens": 64, "batch_size": 8, "seed": 0}
    res = evaluate_self_improve(task, None, None, exs, cfg, generate_fn=gen)
    v = res["verification"]
    # q2 right/accepted, q5 right/rejected; q1 and q3 wrong/rejected at FBK's step (1); q4 wrong/accepted
    assert (v["right"], v["wrong"]) == (2, 3)
    assert (v["right_accepted"], v["right_rejected"], v["wrong_accepted"], v["wrong_rejected"]) == (1, 1, 1, 2)
    assert v["step_located"] == 2 and v["no_feedback"] == 0 and v["unparsable"] == 0
    assert v["wrong_rejected_rate"] == pytest.approx(2 / 3) and v["agreement"] == pytest.approx(3 / 5)


def test_self_verification_step_must_match_fbk_and_no_feedback_accepts():
    from tripost.evaluation import self_verification

    task = AddTask()
    q = "1 + 2 + 3 ="
    wrong = _wrong(q)  # step (1) is FBK's first wrong step
    fb_step2 = 'Step (1) is correct. In step (2) the part " 3 + 3 = 7 " is incorrect. This is because it is wrong.'
    rows = [
        {"question": q, "first_attempt": wrong, "first_attempt_correct": False, "first_feedback": fb_step2},
        {"question": q, "first_attempt": wrong, "first_attempt_correct": False, "first_feedback": None},
        {"question": q, "first_attempt": task.solve(q), "first_attempt_correct": True, "first_feedback": "garbage"},
    ]
    v = self_verification(task, rows)
    assert v["wrong_rejected"] == 1 and v["step_located"] == 0  # rejected, but at the wrong step
    assert v["wrong_accepted"] == 1 and v["no_feedback"] == 1
    assert v["unparsable"] == 1 and v["right_accepted"] == 0


def test_bootstrap_interval_and_paired_difference():
    from tripost.evaluation import bootstrap_interval, paired_difference

    ci = bootstrap_interval([1] * 50 + [0] * 150)
    assert ci["mean"] == pytest.approx(0.25) and ci["n"] == 200
    assert 0.18 < ci["low"] < 0.25 < ci["high"] < 0.32  # about +-6 points at n = 200
    assert bootstrap_interval([1] * 50 + [0] * 150) == ci  # deterministic
    assert bootstrap_interval([])["mean"] is None
    same = paired_difference([1, 0, 1, 0], [1, 0, 1, 0])
    assert same["mean"] == 0 and same["low"] == 0 and same["high"] == 0
    better = paired_difference([1] * 30 + [0] * 70, [0] * 100)
    assert better["low"] > 0.2
    with pytest.raises(ValueError, match="equal lengths"):
        paired_difference([1], [1, 0])


def _seed_run(seed, ratio, ft_first, t2_total, name, wrong_rejected=0.25):
    """One `dvc exp show` entry: params with `seed`, the per-stage metrics of one task's ft and tripost_t2."""
    e = "reports/eval/word_sorting"
    return {"name": name, "data": {
        "params": {"params.yaml": {"data": {"seed": seed, "processing": {"improvement_ratio": ratio}}}},
        "metrics": {
            f"{e}/ft/metrics.json": {"data": {"total": ft_first - 0.1, "first_attempt_accuracy": ft_first,
                                              "si_contrib": 0.0}},
            f"{e}/tripost_t2/metrics.json": {"data": {"total": t2_total, "si_contrib": 0.5,
                                                      "verification": {"wrong_rejected_rate": wrong_rejected}}}}}}


def test_seed_rows_average_the_seeds_of_one_recipe_and_leave_other_experiments_out(tmp_path):
    from tripost.report import main, seed_rows, seeds_markdown

    exp_show = [{"rev": "workspace", **_seed_run(2, 1.5, 0.30, 0.40, None)},
                {"rev": "main", **_seed_run(0, 1.5, 0.30, 0.34, None),
                 "experiments": [{"revs": [_seed_run(1, 1.5, 0.30, 0.37, "seed-1")]},
                                 {"revs": [_seed_run(0, 0.5, 0.30, 0.90, "ratio-0.5")]},
                                 {"revs": [_seed_run(2, 1.5, 0.30, 0.99, "seed-2-again")]}]}]
    res = seed_rows(exp_show)
    assert res["seeds"] == [0, 1, 2] and res["ignored"] == 1  # the ratio run (a repeated seed keeps its first run)
    assert res["runs"] == {"0": "main", "1": "seed-1", "2": "workspace"}
    rows = {r["method"]: r for r in res["rows"]}
    assert set(rows) == {"ft", "ft_si", "tripost_t2"}
    t2 = rows["tripost_t2"]
    assert t2["totals"] == {"0": 0.34, "1": 0.37, "2": 0.40}
    # mean 0.37, sd 0.03, half-width t(2) * 0.03 / sqrt(3) = 4.303 * 0.017321 = 0.07453
    assert t2["total"]["mean"] == pytest.approx(0.37)
    assert t2["total"]["high"] - t2["total"]["mean"] == pytest.approx(0.07453, abs=1e-4)
    assert t2["vs_ft"]["mean"] == pytest.approx(0.07) and t2["vs_ft"]["low"] == pytest.approx(0.07 - 0.07453, abs=1e-4)
    assert t2["wrong_rejected"]["mean"] == pytest.approx(0.25)
    assert rows["ft"]["total"]["mean"] == pytest.approx(0.30) and rows["ft"]["vs_ft"] is None
    md = seeds_markdown(res)
    assert "| WS | TriPosT (t=2) | 37.0 [29.5, 44.5] | 34.0 / 37.0 / 40.0 | +7.0 [-0.5, +14.5] |" in md
    f = _write(tmp_path / "exp.json", exp_show)
    main(["seeds", str(tmp_path / "seeds.json"), str(f), "--markdown", str(tmp_path / "seeds.md")])
    assert json.loads((tmp_path / "seeds.json").read_text())["seeds"] == [0, 1, 2]
    assert (tmp_path / "seeds.md").read_text() == md


def test_seed_interval_is_students_t():
    from tripost.stats import seed_interval, t975

    assert seed_interval([0.5])["low"] is None and seed_interval([])["mean"] is None
    r = seed_interval([0.1, 0.3])  # mean 0.2, sd 0.141421, t(1) = 12.706
    assert r["high"] == pytest.approx(0.2 + 12.706 * 0.141421 / 2 ** 0.5, abs=1e-5)
    assert t975(11) == 2.201 and t975(31) == pytest.approx(2.0395, abs=5e-4) and t975(120) == pytest.approx(1.9799, abs=5e-4)
