"""Trajectory editing (docs/method.md §2.2-2.5) on hand-written attempts, and collection with kill-and-resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from _fake_task import AddTask, fake_model_generate
from _tiny import edit_limits, repo_params
from tripost import formats
from tripost.feedback import ScriptedBackend
from tripost.interaction import FILTERS, clean_prediction, collect, edit, legit_update, progressed, trajectory_text

Q, GOLD = "1 + 2 + 3 =", "6"
A_RIGHT = "(1) Let's calculate 1 + 2 = 3.\n(2) Let's calculate 3 + 3 = 6.\n(Final response) So the answer is 6."
A_W1 = "(1) Let's calculate 1 + 2 = 4.\n(2) Let's calculate 4 + 3 = 7.\n(Final response) So the answer is 7."
A_W2 = "(1) Let's calculate 1 + 2 = 3.\n(2) Let's calculate 3 + 3 = 7.\n(Final response) So the answer is 7."
A_WF = "(1) Let's calculate 1 + 2 = 3.\n(2) Let's calculate 3 + 3 = 6.\n(Final response) So the answer is 5."
FB_OK = "Step (1) to (2) are correct. The final response is also correct."
UPD = "Updated Answer: Let's think step by step."
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def task():
    return AddTask()


def fb_of(task, attempt):
    return task.feedback(Q, attempt)


class Stub(ScriptedBackend):
    """The scripted backend with hand-written overrides: `fbk[attempt]` and a list of IMP outputs."""

    def __init__(self, task, fbk=None, imp=None):
        super().__init__(task)
        self.fbk = fbk or {}
        self.imp = list(imp) if imp is not None else None
        self.imp_calls = 0

    def feedback(self, question, attempt, *, gold_ok, content_ok):
        if attempt in self.fbk:
            return self.fbk[attempt]
        return super().feedback(question, attempt, gold_ok=gold_ok, content_ok=content_ok)

    def improve(self, question, attempt, feedback):
        self.imp_calls += 1
        if self.imp is None:
            return super().improve(question, attempt, feedback)
        out = self.imp.pop(0)
        return out(attempt, feedback) if callable(out) else out


def run(task, prediction, backend=None, **kw):
    return edit(task, backend or ScriptedBackend(task), Q, GOLD, prediction, **{**edit_limits(), **kw})


# ------------------------------------------------------------------------------------------- editing


def test_direct_correct_kept_with_correct_feedback(task):
    r = run(task, "\n" + A_RIGHT)
    assert (r.status, r.attempts, r.feedbacks, r.needed_editing) == ("direct_correct", [A_RIGHT], [FB_OK], False)
    assert trajectory_text(task, Q, r.attempts, r.feedbacks) == (
        f"Q: {Q}\nAnswer: Let's think step by step.\n{A_RIGHT}\nFeedback: {FB_OK}")


def test_wrong_first_attempt_is_edited_with_the_paper_text(task):
    r = run(task, "\n" + A_W1)
    fb = fb_of(task, A_W1)
    assert r.status == "edited" and r.needed_editing and r.edit_start == 0 and r.imp_rounds == 1
    assert r.attempts == [A_W1, A_RIGHT] and r.feedbacks == [fb.text, FB_OK]
    assert trajectory_text(task, Q, r.attempts, r.feedbacks) == (
        f"Q: {Q}\nAnswer: Let's think step by step.\n{A_W1}\nFeedback: {fb.text}\n{UPD}\n{A_RIGHT}\nFeedback: {FB_OK}")


def test_editing_starts_at_the_first_wrong_self_feedback_and_keeps_the_prefix(task):
    """t >= 2: attempt 1's self-feedback matches FBK (kept, model's own words); attempt 2's self-feedback
    says 'correct' but FBK finds step (2) wrong -> editing starts there; IMP keeps step (1) verbatim."""
    own1 = 'In step (1) the part "1 + 2 = 4" is incorrect. This is because 1 + 2 is 3.'  # same step, overlapping
    pred = f"\n{A_W1}\nFeedback: {own1}\n{UPD}\n{A_W2}\nFeedback: {FB_OK}"
    seen = []
    r = run(task, pred, Stub(task, imp=[lambda a, fb: (seen.append((a, fb)), task.improve(Q, a, fb))[1]]))
    fb2 = fb_of(task, A_W2)
    assert r.status == "edited" and r.edit_start == 1 and r.model_attempts == 2
    assert r.attempts == [A_W1, A_W2, A_RIGHT] and r.feedbacks == [own1, fb2.text, FB_OK]
    assert seen == [(A_W2, fb2)]  # IMP saw attempt 2 with FBK's feedback
    assert A_RIGHT.split("\n")[0] == A_W2.split("\n")[0]  # the correct prefix step (1) is unchanged


def test_disagreeing_segment_starts_editing_at_that_attempt(task):
    own1 = 'In step (1) the part "Let\'s calculate" is incorrect. This is because it is.'  # no overlap
    pred = f"\n{A_W1}\nFeedback: {own1}\n{UPD}\n{A_RIGHT}"
    r = run(task, pred)
    assert r.status == "edited" and r.edit_start == 0 and r.attempts == [A_W1, A_RIGHT]
    assert r.feedbacks[0] == fb_of(task, A_W1).text


def test_model_self_improvement_with_correct_self_feedback_is_kept(task):
    own1 = fb_of(task, A_W1).text
    r = run(task, f"\n{A_W1}\nFeedback: {own1}\n{UPD}\n{A_RIGHT}\nFeedback: {FB_OK}")
    assert r.status == "self_improved" and not r.needed_editing
    assert r.attempts == [A_W1, A_RIGHT] and r.feedbacks == [own1, FB_OK]


# ------------------------------------------------------------------------------------------- filters


def test_filter_1_format(task):
    assert run(task, f"\n{A_RIGHT}\n\nsome words").filter == "format"
    assert run(task, "\nI think it is 6.").filter == "format"
    assert clean_prediction(f"Q: {Q}\nAnswer: Let's think step by step.\n{A_RIGHT}\nQ: 1 + 1 =\n(1) x") == A_RIGHT
    assert clean_prediction("\n(1) a\n(1) a again\n(Final response) b") == "(1) a\n(Final response) b"


def test_filter_2_too_long(task):
    assert run(task, "\n" + A_W1, max_attempt_words=10).filter == "too_long"


def test_filter_3_fbk_error(task):
    # FBK fails (the original's "[ERROR]")
    assert run(task, "\n" + A_W1, Stub(task, fbk={A_W1: None})).filter == "fbk_error"
    # the model criticised a correct attempt: FBK cannot give an error -> dropped, never trained on
    own = 'In step (2) the part "3 + 3 = 6" is incorrect. This is because it is 7.'
    r = run(task, f"\n{A_RIGHT}\nFeedback: {own}\n{UPD}\n{A_W2}")
    assert (r.status, r.filter) == ("dropped", "fbk_error")
    # FBK says correct although the gold answer says wrong: correctness comes from gold, not FBK
    ok = formats.parse_feedback(FB_OK)
    assert run(task, "\n" + A_W1, Stub(task, fbk={A_W1: ok})).filter == "fbk_error"
    # FBK fails on the improved attempt
    assert run(task, "\n" + A_W1, Stub(task, fbk={A_RIGHT: None})).filter == "fbk_error"


def test_filter_4_self_feedback_agrees_but_never_fixed(task):
    own = fb_of(task, A_W1).text
    r = run(task, f"\n{A_W1}\nFeedback: {own}")
    assert (r.status, r.filter) == ("dropped", "agree_but_wrong")


@pytest.mark.parametrize("bad_new,why", [
    ("garbage", "unparsable"),
    (None, "unparsable IMP reply"),
    (A_W2.replace("(Final response) So the answer is 7.", "(Final response) Done."), "no final answer"),
    (A_W2, "unchanged"),
    ("(1) Let's calculate 1 + 2 = 30.\n(2) Let's calculate 3 + 3 = 6.\n(Final response) So the answer is 6.", "prefix changed"),
    ("(1) Let's calculate 1 + 2 = 3.\n(2) Let's calculate 3 + 3 = 7 or 6.\n(Final response) So the answer is 6.",
     "error segment still present"),
])
def test_filter_5_imp_not_legit(task, bad_new, why):
    r = run(task, "\n" + A_W2, Stub(task, imp=[bad_new]))
    assert (r.status, r.filter, r.detail) == ("dropped", "imp_not_legit", why)


def _wrong_again(r):
    """IMP that rewrites step (1) with a new wrong sum each round: legit and progressing, never right."""
    def imp(attempt, fb):
        total = 1 + 2 + 5 + r[0]
        r[0] += 1
        return (f"(1) Let's calculate 1 + 2 = {total}.\n(2) Let's calculate {total} + 3 = {total + 3}.\n"
                f"(Final response) So the answer is {total + 3}.")
    return imp


def test_filter_6_five_round_cap(task):
    counter = [0]
    backend = Stub(task, imp=[_wrong_again(counter)] * 5)
    r = run(task, "\n" + A_W1, backend)
    assert (r.status, r.filter, r.imp_rounds, backend.imp_calls) == ("dropped", "not_correct", 5, 5)
    # the same chain with one more allowed round that gets it right is kept: the cap is the reason
    counter = [0]
    backend = Stub(task, imp=[_wrong_again(counter)] * 5 + [lambda a, fb: task.improve(Q, a, fb)])
    r = run(task, "\n" + A_W1, backend, max_rounds=6)
    assert r.status == "edited" and r.imp_rounds == 6 and len(r.attempts) == 7 and r.attempts[-1] == A_RIGHT


def test_filter_7_no_progress_truncates_to_first_pair(task):
    # FBK on A_W2 points at step (2) "3 + 3 = 7"; IMP rewrites step (2) (legit), but an LLM-like FBK
    # repeats the same step and segment -> no progress; the next IMP round gets it right. The chain
    # ends correct but is truncated to (attempt, FBK feedback), docs/method.md §2.5.
    fb2 = fb_of(task, A_W2)
    a_x = A_W2.replace("3 + 3 = 7", "3 + 3 = 8").replace("is 7", "is 8")
    backend = Stub(task, fbk={a_x: fb2}, imp=[a_x, A_RIGHT])
    r = run(task, "\n" + A_W2, backend)
    assert (r.status, r.filter, r.imp_rounds) == ("truncated", "no_progress", 2)
    assert r.attempts == [A_W2] and r.feedbacks == [fb2.text] and r.needed_editing
    # the same chain with a consistent FBK progresses (the error moves later) and is kept whole
    r = run(task, "\n" + A_W2, Stub(task, imp=[A_WF, A_RIGHT]))
    assert r.status == "edited" and r.attempts == [A_W2, A_WF, A_RIGHT] and r.imp_rounds == 2


def test_progress_check_rules():
    def f(step, seg):
        return formats.Feedback(False, step, seg, "r", "t")

    assert progressed(f("2", "a"), f("3", "a"))
    assert progressed(f("2", "a"), f("2", "b"))
    assert not progressed(f("2", "a"), f("2", "a"))
    assert not progressed(f("3", "a"), f("2.1", "x"))
    assert progressed(f("2.1", "a"), f("Final response", "x"))
    assert not progressed(f("Final response", "a"), f("4", "x"))


def test_legit_update_duplicated_reason_allows_one_occurrence():
    fb = formats.Feedback(False, "1", "x", "the word is duplicated", "t")
    assert legit_update("(1) x x\n(Final response) the answer is 1.", "(1) x y\n(Final response) the answer is 2.", fb) is None
    fb = formats.Feedback(False, "1", "x", "it is wrong", "t")  # one wrong copy of two removed: legit
    assert legit_update("(1) x x\n(Final response) the answer is 1.", "(1) x y\n(Final response) the answer is 2.", fb) is None
    assert legit_update("(1) x z\n(Final response) the answer is 1.", "(1) x y\n(Final response) the answer is 2.", fb) == "error segment still present"


def test_filter_8_invalid_content(task):
    class Strict(AddTask):
        def has_valid_content(self, question, attempt):
            return "3 + 3 = 6" not in attempt

    t = Strict()
    r = edit(t, ScriptedBackend(t), Q, GOLD, "\n" + A_RIGHT, **edit_limits())
    assert (r.status, r.filter) == ("dropped", "invalid_content")
    r = edit(t, ScriptedBackend(t), Q, GOLD, "\n" + A_W1,
             **edit_limits())  # the improved attempt lacks valid content
    assert (r.status, r.filter, r.needed_editing) == ("dropped", "invalid_content", True)


def test_every_interaction_filter_has_a_test():
    names = {"format", "too_long", "fbk_error", "agree_but_wrong", "imp_not_legit", "not_correct", "no_progress",
             "invalid_content"}
    assert names | {"duplicate", "too_many_tokens"} == set(FILTERS)


# ------------------------------------------------------------------------------------------- collection


def _params(**inter):
    cfg = {"temperature": 1.0, "max_new_tokens": 64, "max_generation_calls": 3, "batch_size": 4, "chunk_size": 4,
           "max_rounds": 5, "max_attempt_words": 512, "max_passes": 2, "pass_seed": 40, "max_data_length": 10**6}
    cfg.update(inter)
    return repo_params({"seed": 0, "interaction": {**cfg, "pool_limit": None}, "processing": {"improvement_ratio": 1.5},
                        "feedback_backend": {"backend": "scripted"}})


def test_collect_t1_counts_and_rows(task, tmp_path):
    pool = task.generate(10, "seen", seed=3)
    m = collect(task, pool, backend=ScriptedBackend(task), params=_params(), iteration=1, out_dir=tmp_path,
                generate_fn=fake_model_generate(task), progress=False)
    rows = [json.loads(ln) for ln in (tmp_path / "trajectories.jsonl").read_text().splitlines()]
    assert len(rows) == m["trajectories"] == 20 and m["passes"] == 2
    assert m["direct_correct"] > 0 and m["edited"] > 0 and m["dropped_by_filter"]["format"] > 0
    assert m["needed_editing"] == m["edited_successfully"] + sum(
        1 for r in rows if r["needed_editing"] and r["status"] == "dropped")
    for r in rows:
        assert (r["text"] is None) == (r["status"] == "dropped")
        if r["status"] == "edited":
            assert r["text"].startswith(f"Q: {r['question']}\nAnswer: Let's think step by step.\n")
            assert r["text"].endswith("The final response is also correct.")
    assert json.loads((tmp_path / "interaction_metrics.json").read_text())["trajectories"] == 20


def test_collect_t2_uses_self_improving_inference(task, tmp_path):
    pool = task.generate(6, "seen", seed=4)
    m = collect(task, pool, backend=ScriptedBackend(task), params=_params(max_passes=1), iteration=2,
                out_dir=tmp_path, generate_fn=fake_model_generate(task, kinds=("gold", "wrong")), progress=False)
    gens = [json.loads(ln) for ln in (tmp_path / "generations.jsonl").read_text().splitlines()]
    assert all("model_revisions" in it for g in gens for it in g["items"])
    assert m["trajectories"] == 6


def test_collect_stops_when_enough_data(task, tmp_path):
    pool = task.generate(8, "seen", seed=5)
    m = collect(task, pool, backend=ScriptedBackend(task), params=_params(max_passes=5, max_data_length=3),
                iteration=1, out_dir=tmp_path, generate_fn=fake_model_generate(task), progress=False)
    assert m["passes"] == 1 and m["collected_examples"] >= 3


SCRIPT = textwrap.dedent("""
    import os, signal, sys
    sys.path[:0] = [{tests!r}]
    from _fake_task import AddTask, fake_model_generate
    from tripost.feedback import ScriptedBackend
    from tripost.interaction import collect

    task = AddTask()
    kill_imp, kill_gen = int(os.environ.get("KILL_IMP", 0)), int(os.environ.get("KILL_GEN", 0))

    class Killable(ScriptedBackend):
        n = 0
        def improve(self, *a):
            Killable.n += 1
            if Killable.n == kill_imp:
                os.kill(os.getpid(), signal.SIGKILL)
            return super().improve(*a)

    gen = fake_model_generate(task)
    calls = [0]
    def generate_fn(*a, **k):
        calls[0] += 1
        if calls[0] == kill_gen:
            os.kill(os.getpid(), signal.SIGKILL)
        return gen(*a, **k)

    params = {params!r}
    collect(task, task.generate(13, "seen", seed=7), backend=Killable(task), params=params, iteration=1,
            out_dir=sys.argv[1], generate_fn=generate_fn, progress=False)
""")


def test_kill_and_resume_gives_the_uninterrupted_output(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT.format(tests=str(ROOT / "tests"), params=_params(max_passes=2)))
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))

    def go(out, **kill):
        e = dict(env, **{k: str(v) for k, v in kill.items()})
        return subprocess.run([sys.executable, str(script), str(out)], env=e, capture_output=True, text=True)

    clean = tmp_path / "clean"
    assert go(clean).returncode == 0
    out = tmp_path / "killed"
    p = go(out, KILL_IMP=3)  # killed while editing (pass 0)
    assert p.returncode == -signal.SIGKILL
    n_rows = len((out / "trajectories.jsonl").read_text().splitlines())
    assert 0 < n_rows < 26
    with (out / "trajectories.jsonl").open("a") as f:  # a torn row, as a kill during a write leaves
        f.write('{"id": "p0/q99", "pass": 0, "ind')
    p = go(out, KILL_GEN=3)  # resumed, then killed again while generating chunk 3 (pass 0, none was done)
    assert p.returncode == -signal.SIGKILL
    p = go(out, KILL_IMP=4)  # resumed, killed once more while editing
    assert p.returncode == -signal.SIGKILL
    assert go(out).returncode == 0  # resumed to the end
    for name in ("trajectories.jsonl", "generations.jsonl"):
        assert (out / name).read_bytes() == (clean / name).read_bytes(), name
    a = json.loads((out / "interaction_metrics.json").read_text())
    b = json.loads((clean / "interaction_metrics.json").read_text())
    for d in (a, b):
        d.pop("seconds"), d.pop("llm")
    assert a == b


def test_a_second_writer_is_refused_while_another_process_holds_the_output(tmp_path):
    """An orphaned writer (here: a live process holding the lock, as a killed dvc's kernel would) makes a
    rerun fail at once naming it; once that process is killed (SIGKILL), the rerun runs normally."""
    import signal
    import subprocess
    import sys
    import time

    from tripost.io import LockedError

    out = tmp_path / "interactions" / "ft"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from tripost.io import exclusive\n"
        f"with exclusive({str(out)!r}):\n    print('held', flush=True); time.sleep(600)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        task = AddTask()
        pool = task.generate(4, "seen", seed=1)
        kw = dict(backend=ScriptedBackend(task), params=_params(), iteration=1, out_dir=out,
                  generate_fn=fake_model_generate(task), progress=False)
        with pytest.raises(LockedError, match=rf"{out.name} is being written by another process \(pid {holder.pid}\)"):
            collect(task, pool, **kw)
        assert not (out / "trajectories.jsonl").exists()
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        collect(task, pool, **kw)
        collect(task, pool, **{**kw, "out_dir": tmp_path / "reference"})
        assert (out / "trajectories.jsonl").read_bytes() == (tmp_path / "reference" / "trajectories.jsonl").read_bytes()
    finally:
        holder.kill()
