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
    assert "answer_in_options" not in census(records)  # without the task the census does not guess
    got = census(records, task)["answer_in_options"]
    assert planted > 10 and expected["right"][0] == 0  # a gold answer is always an option
    assert expected["wrong"][0] > 0  # some planted dates are not options: the check is not vacuous
    for k in ("right", "wrong"):
        assert got[f"{k} attempts"] == {"listed": expected[k][1], "not listed": expected[k][0]}, (k, got)


def test_the_error_census_counts_lettered_options_by_their_letter():
    """Logical deduction answers with a letter: "(B)" is one of the options, whatever its text says;
    a letter the question does not list is not."""
    from error_census import census

    from tripost.tasks.logical_deduction import LogicalDeduction

    task = LogicalDeduction()
    records, planted, attempts = _judged_attempts(task, "3", n=30)
    got = census(records, task)["answer_in_options"]
    assert planted > 5 and got["wrong attempts"] == {"listed": planted, "not listed": 0}, got
    question, attempt, _ = attempts[0]
    outside = attempt.replace(f"({task.parse_answer(attempt)})", "(F)")
    rec = {"kind": "improvement", "prompt": f"{task.prompt(question)}\n{outside}",
           "completion": "\nFeedback: In step (Final response) the part \" (F) \" is incorrect."}
    assert census([rec], task)["answer_in_options"]["wrong attempts"] == {"listed": 0, "not listed": 1}


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


def test_the_verdict_gate_reads_each_feedback_after_what_the_model_saw_and_cuts_the_loops_chain():
    """experiments/verdict_margin.py records, through the loop's generate_fn, the text each feedback was
    written after — a revision in the same call, a re-prompt after a final response, a continuation
    after the token limit — and the gate cuts the chain only at a rejection below tau (a feedback that
    accepts in the middle of a call was passed by the loop too)."""
    import math

    from _fake_task import AddTask, Gen
    from tripost.inference import self_improve
    from verdict_margin import Recorder, chain, gated, mismatches

    task = AddTask()
    q = "1 + 2 + 3 ="
    calc = "(1) Let's calculate 1 + 2 = {}.\n(2) Let's calculate {} + 3 = {}.\n(Final response) So the answer is {}."
    wrong1, wrong2, wrong3, right = calc.format(4, 4, 7, 7), calc.format(3, 3, 5, 5), calc.format(3, 3, 8, 8), calc.format(3, 3, 6, 6)
    err1 = 'In step (1) the part " 1 + 2 = 4 " is incorrect. This is because 1 + 2 is not equal to 4.'
    err2 = 'Step (1) is correct. In step (2) the part " 3 + 3 = 5 " is incorrect. This is because 3 + 3 is 6.'
    ok = "Step (1) to (2) are correct. The final response is also correct."
    upd = "Updated Answer: Let's think step by step."
    cut = wrong3.index("ulate 3 + 3")
    script = [(f"\n{wrong1}\nFeedback: {err1}\n{upd}\n{wrong2}", "eos"),  # ends on a final response: re-prompted
              (f" {err2}\n{upd}\n{wrong3[:cut]}", "length"),  # continued from the text so far
              (f"{wrong3[cut:]}\nFeedback: {ok}\n{upd}\n{right}\nFeedback: {ok}", "eos")]
    sent = []

    def scripted(model, tok, prompts, **kw):
        sent.extend(prompts)
        text, reason = script.pop(0)
        return [Gen(text, reason, 10)]

    rec = Recorder(scripted)
    [r] = self_improve(task, [q], max_generation_calls=4, max_new_tokens=50, batch_size=1, seed=0, generate_fn=rec)
    assert r.stop == "correct" and r.attempts == [wrong1, wrong2, wrong3, right]
    pred = {"question": q, "gold": "6", "text": r.text, "correct": r.answer == "6", "answer": r.answer,
            "num_revisions": r.num_revisions}
    links = chain(task, pred, rec.seen[q])
    assert [x["answer"] for x in links] == ["7", "5", "8", "6"]
    assert [x["rejects"] for x in links] == [True, True, False, False]
    assert sent[1].endswith(f"{wrong2}\nFeedback:") and wrong1 not in sent[1]
    assert links[0]["context"] == f"{sent[0]}\n{wrong1}\nFeedback:"
    assert links[1]["context"] == sent[1]  # the re-prompt after the final response: nothing of the first call
    assert sent[2].startswith(sent[1]) and sent[2].endswith(wrong3[:cut])
    assert links[2]["context"] == f"{sent[2]}{wrong3[cut:]}\nFeedback:"  # the continuation keeps the call's text
    assert links[3]["context"] == f"{sent[2]}{wrong3[cut:]}\nFeedback: {ok}\n{upd}\n{right}\nFeedback:"
    assert links[0]["accept_text"] == ok
    for link, m in zip(links, (None, 0.5, None, None)):
        link["margin"] = m
    out = {tau: gated(task, pred, links, tau) for tau in (-math.inf, 0.5, 0.6, math.inf)}
    assert out[-math.inf] == out[0.5] == {"correct": True, "first_correct": False, "revisions": 3, "answer": "6"}
    assert out[0.6]["revisions"] == 1 and out[0.6]["answer"] == "5"  # below tau: stops at the "5"
    assert out[math.inf]["revisions"] == 1  # an unscored rejection counts as confident
    links[0]["margin"] = 2.0
    assert gated(task, pred, links, math.inf)["revisions"] == 0
    assert mismatches(task, [pred], [links]) == 0
    assert mismatches(task, [{**pred, "num_revisions": 2}], [links]) == 1


def test_the_verdict_margin_is_the_models_log_odds_where_the_two_feedbacks_part():
    pytest.importorskip("torch")
    import torch

    from _fake_task import AddTask
    from _tiny import TINY
    from tripost.modeling import build_tiny_llama, build_tokenizer
    from verdict_margin import accept_text, margin

    task = AddTask()
    q = "1 + 2 + 3 ="
    attempt = "(1) Let's calculate 1 + 2 = 4.\n(2) Let's calculate 4 + 3 = 7.\n(Final response) So the answer is 7."
    reject = 'Step (1) is correct. In step (2) the part " 4 + 3 = 7 " is incorrect. This is because 1 + 2 is 3.'
    accept = accept_text(attempt, reject)
    assert accept == "Step (1) to (2) are correct. The final response is also correct."
    lead = "The answer 7 is not one of the options."
    assert accept_text(attempt, f"{lead} {reject}") == f"The answer 7 is one of the options. {accept}"
    assert accept_text(attempt, f"The answer 7 is one of the options. {reject}") == f"The answer 7 is one of the options. {accept}"
    ctx = f"{task.prompt(q)}\n{attempt}\nFeedback:"
    tok = build_tokenizer([f"{ctx} {reject}", f"{ctx} {accept}"] * 5, vocab_size=512)
    torch.manual_seed(0)
    model = build_tiny_llama(TINY, tok).eval()
    m = margin(model, tok, ctx, reject, accept)
    a, b = tok(f"{ctx} {reject}").input_ids, tok(f"{ctx} {accept}").input_ids
    k = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
    assert k > len(tok(ctx).input_ids)  # "Step (1)" is shared: the feedbacks part later
    with torch.no_grad():
        la = torch.log_softmax(model(torch.tensor([a])).logits[0, k - 1].float(), -1)
        lb = torch.log_softmax(model(torch.tensor([b])).logits[0, k - 1].float(), -1)
    assert m == pytest.approx(float(la[a[k]] - lb[b[k]]), abs=1e-4) and m != 0
    assert margin(model, tok, ctx, accept, reject) == pytest.approx(-m, abs=1e-5)
    assert margin(model, tok, ctx, accept, accept) is None


def test_the_verdict_fit_prior_counts_every_trained_verdict_at_a_feedback_cue():
    from verdict_fit import cue_prior, judged_prompt, verdict

    attempt = "Q: q\nAnswer: Let's think step by step.\n(1) a.\n(Final response) So the answer is a."
    improvement = {"kind": "improvement", "prompt": attempt,
                   "completion": "\nFeedback: In step (1) the part \" a \" is incorrect. This is because b.\n"
                                 "Updated Answer: Let's think step by step.\n(1) b.\n(Final response) So the answer "
                                 "is b.\nFeedback: Step (1) is correct. The final response is also correct."}
    direct = {"kind": "direct_correct", "prompt": attempt,
              "completion": "\nFeedback: Step (1) to (1) are correct. The final response is also correct."}
    verify = {"kind": "verify_wrong", "prompt": attempt + "\nFeedback:",
              "completion": " Step (1) is correct. In step (2) the part \" a \" is incorrect."}
    # the revision's trailing "correct" is a second, accepting verdict at the same cue
    assert cue_prior([improvement, direct, verify]) == {"improvement": {"reject": 1, "accept": 1},
                                                       "direct_correct": {"accept": 1},
                                                       "verify_wrong": {"reject": 1}}
    assert verdict(" Step (1) to (2) are correct. The final response is also correct.") == "accept"
    assert verdict("Step (1) is correct. In step (2) the part") == "reject"
    assert verdict("Step (1) is correct. The final response is also correct.") == "accept"  # one step
    assert verdict("The finrere response") == "other"
    # the verification drill reads with the rule its logged runs used: a one-step accept is "other"
    from verify_drill import verdict_counts

    rows = [{"first_feedback": f, "first_attempt_correct": ok} for f, ok in (
        ("Step (1) to (3) are correct. The final response is also correct.", True),
        ("Step (1) is correct. The final response is also correct.", True),
        ("Step (1) is correct. In step (2) the part", False), ("Stete (1) to", False))]
    assert verdict_counts(rows) == {"right": {"accept": 1, "reject": 0, "other": 1},
                                    "wrong": {"accept": 0, "reject": 1, "other": 1}}
    assert judged_prompt(improvement) == attempt + "\nFeedback:" == judged_prompt(verify)
    paper = {"kind": "improvement", "prompt": "Q: q\nAnswer: Let's think step by step.", "completion": "\n(1) a."}
    assert judged_prompt(paper) is None  # the paper layout's prompt holds no attempt
