"""The research probes' own data builders (experiments/): what they plant is what they claim."""

import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))

from tripost.tasks.word_sorting import WordSorting, parse_words  # noqa: E402
from ws_copy_faults import corrupt_like_m0  # noqa: E402

REASONS = {  # the scripted FBK's reason for each planted copying error
    "double": "is listed more times than it appears",
    "alien": "is not in the list of words",
    "renumber": "according to step (",
    "renumber_dup": "appears more than once",
}


@pytest.mark.parametrize("kind", sorted(REASONS))
def test_each_copying_error_is_planted_and_named_by_fbk(kind):
    task = WordSorting(vocabulary_size=300)
    rng = random.Random(kind)
    for _ in range(60):
        question, answer = task.sample("2-3", rng)
        attempt, label = corrupt_like_m0(task, question, rng, mix={kind: 1.0})
        fb = task.feedback(question, attempt)
        assert not fb.is_correct, attempt
        assert REASONS[kind] in fb.text, (kind, fb.text)
        assert f"({label})" in fb.text, (label, fb.text)  # FBK's first wrong step is the planted one
        if kind == "alien":  # the alien word comes from the task's vocabulary, never from the question
            listed = {w.strip('"') for w in attempt.splitlines()[0].split('"')[1::4]}
            assert listed - set(parse_words(question)) and listed <= set(task.words)


def test_the_default_mix_follows_m0s_error_census():
    """The census of 4,429 edited M0 attempts (docs/research.md): 2,594 doubled words, 670 alien
    words, 739 + 241 orderings with numbers step (1) did not give / a number twice."""
    task = WordSorting(vocabulary_size=300)
    rng = random.Random(0)
    counts = {k: 0 for k in REASONS}
    n = 600
    for _ in range(n):
        question, _ = task.sample("2-3", rng)
        text = task.feedback(question, corrupt_like_m0(task, question, rng)[0]).text
        for k, reason in REASONS.items():
            if reason in text:
                counts[k] += 1
                break
    assert abs(counts["double"] / n - 2594 / 4429) < 0.07
    assert abs(counts["alien"] / n - 670 / 4429) < 0.05
    assert abs((counts["renumber"] + counts["renumber_dup"]) / n - (739 + 241) / 4429) < 0.07


def _judged_attempts(task, bucket: str, n: int = 40, seed: int = 3):
    """Judge-layout records of n questions, every other attempt with a planted mistake, judged and revised
    by the real scripted FBK/IMP; also the number of rejected attempts and the attempts themselves."""
    from own_attempts import judge_records

    rng = random.Random(seed)
    records, planted, attempts = [], 0, []
    for i in range(n):
        question, _answer = task.sample(bucket, rng)
        gold = task.solve(question)
        attempt, _ = task.corrupt(question, gold, rng) if i % 2 else (gold, None)
        fb = task.feedback(question, attempt)
        planted += not fb.is_correct
        attempts.append((question, attempt, fb.is_correct))
        row = {"question": question, "attempts": [attempt], "feedbacks": [fb.text], "status": "direct_correct"}
        if not fb.is_correct:
            fixed = task.improve(question, attempt, fb)
            row = {**row, "attempts": [attempt, fixed], "feedbacks": [fb.text, task.feedback(question, fixed).text],
                   "status": "edited"}
        records += judge_records(task, row)  # the probe's own layout: the attempt sits in the prompt
    return records, planted, attempts


def test_the_error_census_groups_fbks_reasons_over_the_rejected_attempts():
    """Planted arithmetic and copying mistakes, judged by the real scripted FBK, land in the census
    under their step and one blanked reason each; accepted attempts and gold records are not counted."""
    from error_census import census

    from tripost.tasks.multistep_arithmetic import MultistepArithmetic

    task = MultistepArithmetic()
    records, planted, _ = _judged_attempts(task, "l2d2")
    # a gold record is never one of the model's attempts, whatever its text says
    records.append({"kind": "gold", "prompt": "Q", "completion": "\nFeedback: In step (1) the part x is incorrect."})
    c = census(records)
    assert 0 < planted <= 20 and c["wrong"] == planted
    assert sum(c["steps"].values()) == planted and sum(c["reasons"].values()) == planted
    calc = [k for k in c["reasons"] if "calculation error" in k]
    assert calc and all("#" in k and not any(ch.isdigit() for ch in k) for k in calc), c["reasons"]


def test_the_error_census_counts_answers_that_are_not_among_the_questions_options():
    """Date understanding lists options: the census counts right and wrong attempts by whether their
    answer is one of them, as the task's own question parser and answer parser say."""
    from error_census import census

    from tripost.tasks.date_understanding import DateUnderstanding, _num, _split_question

    task = DateUnderstanding(option_letters=False)
    records, planted, attempts = _judged_attempts(task, "1", n=60)
    expected = {"right": [0, 0], "wrong": [0, 0]}
    for question, attempt, right in attempts:
        _stem, options = _split_question(question)
        expected["right" if right else "wrong"][task.parse_answer(attempt) in [_num(o) for o in options]] += 1
    got = census(records)["answer_in_options"]
    assert planted > 10 and expected["right"][0] == 0  # a gold answer is always an option
    assert expected["wrong"][0] > 0  # some planted dates are not options: the check is not vacuous
    for k in ("right", "wrong"):
        assert got[f"{k} attempts"] == {"listed": expected[k][1], "not listed": expected[k][0]}, (k, got)


def test_the_options_check_opens_every_feedback_and_keeps_its_verdict():
    """With `--options-check` each feedback of a judge-layout record opens with whether the answer it
    judges is one of the question's options (as the task's own parsers say), and still parses to the
    same verdict and step; the prompt (the model's attempt) is untouched."""
    from own_attempts import with_options_check

    from tripost.formats import FEEDBACK_TAG, parse_feedback
    from tripost.tasks.date_understanding import DateUnderstanding, _num, _split_question

    task = DateUnderstanding(option_letters=False)
    records, _planted, attempts = _judged_attempts(task, "1", n=60)
    listed = {}
    for question, attempt, _right in attempts:
        _stem, options = _split_question(question)
        listed[question] = task.parse_answer(attempt) in [_num(o) for o in options]
    assert set(listed.values()) == {True, False}  # both verdicts occur: the check is not vacuous
    for rec in records:
        new = with_options_check(task, rec)
        assert new["prompt"] == rec["prompt"]
        old_fbs = [ln for ln in rec["completion"].splitlines() if ln.startswith(FEEDBACK_TAG)]
        new_fbs = [ln for ln in new["completion"].splitlines() if ln.startswith(FEEDBACK_TAG)]
        assert len(old_fbs) == len(new_fbs) >= 1
        for i, (old, fb) in enumerate(zip(old_fbs, new_fbs)):
            a, b = parse_feedback(old), parse_feedback(fb)
            assert (a.is_correct, a.step, a.segment) == (b.is_correct, b.step, b.segment)
            assert fb.startswith(f"{FEEDBACK_TAG} The answer ") and fb.endswith(old[len(FEEDBACK_TAG):].strip())
            if i == 0:  # the first feedback judges the attempt in the prompt
                question = rec["prompt"].split("Q: ", 1)[1].split("\nAnswer:", 1)[0]
                assert ("is not one of the options." in fb) == (not listed[question]), fb
            else:  # later ones judge FBK/IMP's revision, always a right answer
                assert "is one of the options." in fb


def test_the_options_check_needs_options_and_an_answer():
    """No options (MSA) or no stated answer: no sentence. Lettered options (LD): the letter is listed."""
    from tripost.feedback import options_check
    from tripost.tasks.logical_deduction import LogicalDeduction
    from tripost.tasks.multistep_arithmetic import MultistepArithmetic

    rng = random.Random(0)
    msa = MultistepArithmetic()
    q, _ = msa.sample(msa.default_buckets["seen"][0], rng)
    assert options_check(msa, q, msa.solve(q)) == ""
    ld = LogicalDeduction()
    q, answer = ld.sample(ld.default_buckets["seen"][0], rng)
    gold = ld.solve(q)
    assert options_check(ld, q, gold) == f"The answer {ld.parse_answer(gold)} is one of the options."
    assert options_check(ld, q, gold.rsplit("\n", 1)[0]) == ""  # the final response cut off
    assert len(q.split("\nOptions:\n", 1)[1].splitlines()) == 3  # (A)-(C): a (G) is not listed
    assert options_check(ld, q, gold.replace(f"answer is ({answer})", "answer is (G)")) == (
        "The answer G is not one of the options.")


def test_wrong_attempts_are_split_by_whether_their_answer_is_listed():
    """`by_options` counts, per side of the options check, the wrong first attempts, those whose first
    feedback rejects them (here FBK's own on every other one) and those the inference fixed."""
    from own_attempts import by_options

    from tripost.tasks.date_understanding import DateUnderstanding, _num, _split_question

    task = DateUnderstanding(option_letters=False)
    _records, _planted, attempts = _judged_attempts(task, "1", n=60)
    preds, expected = [], {}
    for i, (question, attempt, right) in enumerate(attempts):
        judged = i % 4 == 1  # every other wrong attempt gets FBK's (rejecting) feedback, the rest none
        preds.append({"question": question, "first_attempt": attempt, "first_attempt_correct": right,
                      "first_feedback": task.feedback(question, attempt).text if judged else None,
                      "correct": right or i % 3 == 0})
        if right:
            continue
        _stem, options = _split_question(question)
        side = "listed" if task.parse_answer(attempt) in [_num(o) for o in options] else "not listed"
        d = expected.setdefault(side, {"wrong": 0, "rejected": 0, "fixed": 0})
        d["wrong"] += 1
        d["rejected"] += judged
        d["fixed"] += i % 3 == 0
    assert len(expected) == 2 and all(d["rejected"] and d["fixed"] for d in expected.values())
    assert by_options(task, preds) == expected
