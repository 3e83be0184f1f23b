"""Multistep Arithmetic world: generator, solver, parser, scripted FBK / IMP, planted mistakes."""

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tripost import formats
from tripost.tasks import get_task
from tripost.tasks.multistep_arithmetic import MISSING, MultistepArithmetic

TASK = get_task("multistep_arithmetic")
PAPER_BUCKETS = TASK.default_buckets["seen"] + TASK.default_buckets["unseen"]
ALL_BUCKETS = PAPER_BUCKETS + ["l2d2", "l3d0"]

# The worked example of docs/method.md §1.3, written out by hand.
Q = "((-2 - -3 * -7) - (-5 * -4 - 2)) ="
GOLD = (
    '(1) This equation can be written as "(A - B)", where A = (-2 - -3 * -7) and B = (-5 * -4 - 2).\n'
    "(2) Let's calculate A = (-2 - -3 * -7) = (-2 - (-3 * -7)) = (-2 - 21) = -23.\n"
    "(3) Let's calculate B = (-5 * -4 - 2) = ((-5 * -4) - 2) = (20 - 2) = 18.\n"
    "(4) Then, the final equation is (A - B) = (-23 - 18) = -41.\n"
    "(Final response) So the answer is -41."
)
WRONG = (
    '(1) This equation can be written as "(A - B)", where A = (-2 - -3 * -7) and B = (-5 * -4 - 2).\n'
    "(2) Let's calculate A = (-2 - -3 * -7) = (-2 - (-3 * -7)) = (-2 - 21) = -19.\n"
    "(3) Let's calculate B = (-5 * -4 - 2) = ((-5 * -4) - 2) = (20 - 2) = 18.\n"
    "(4) Then, the final equation is (A - B) = (-19 - 18) = -37.\n"
    "(Final response) So the answer is -37."
)


def _question(bucket, seed):
    return TASK.sample(bucket, random.Random(f"{bucket}/{seed}"))


# -- solver ----------------------------------------------------------------------------------------


def test_solve_reproduces_the_papers_rationale():
    assert TASK.solve(Q) == GOLD
    assert TASK.solve("Q: " + Q + " ") == GOLD


@pytest.mark.parametrize(
    "question, answer",
    [
        ("((-1 + 2 + 9 * 5) - (-2 + -4 + -4 * -7)) =", "24"),  # 46 - 22
        ("Q: ((7 - -1 + -1 + -4) - (-7 + 7 * 3 * -9)) = ", "199"),  # 3 - -196
        ("((5 * -9 + 4 + 1) - (-2 * 8 * -9 * 6)) =", "-904"),  # -40 - 864
        ("(((-9 * 3 + -6) * (-2 + 7 * -6)) - ((-4 - -6 + 6) * (4 * -4 + 8))) =", "1516"),  # -33*-44 - 8*-8
        (
            "((((-6 + 0 - -6) * (1 * 7 + 3)) + ((3 + 9 * -6) - (1 + 6 * 8))) + "
            "(((0 + -5 + 5) - (-5 * -4 * -7)) + ((8 * 2 * -3) + (-8 * 3 - 0)))) =",
            "-32",  # (0 + -100) + (140 + -72)
        ),
        ("(1 + 1 + 1 + 1) =", "4"),  # a single group (depth [])
        ("(2*2-2) =", "2"),  # BIG-Bench without spaces
        ("((3+1)-(2-2))", "4"),
        ("((1 - -4 - 4 - 3 + -5 * 2) * (-9 * -9 * 9 * -9 * 9 * 9)) =", str(-12 * -531441)),
    ],
)
def test_solve_real_bigbench_questions(question, answer):
    rationale = TASK.solve(question)
    assert TASK.parse_answer(rationale) == answer
    assert TASK.feedback(question, rationale).is_correct


def test_nested_question_format():
    q = "(((7 * 3 - -7) + (-9 * -6 + -3)) - ((2 + 6 * -2) + (4 * -4 * 5))) ="
    lines = TASK.solve(q).splitlines()
    assert lines[0] == (
        '(1) This equation can be written as "((A + B) - (C + D))", where A = (7 * 3 - -7), '
        "B = (-9 * -6 + -3), C = (2 + 6 * -2) and D = (4 * -4 * 5)."
    )
    assert lines[5] == (
        "(6) Then, the final equation is ((A + B) - (C + D)) = ((28 + 51) - (-10 + -80)) = "
        "(79 - (-10 + -80)) = (79 - -90) = 169."
    )
    assert lines[6] == "(Final response) So the answer is 169."


@pytest.mark.parametrize("bad", ["", "((1 + 2) =", "(1 / 2) =", "(a + 1) =", "7 =", "((1 + 2) - (3 + x)) ="])
def test_unreadable_questions_raise_value_error(bad):
    with pytest.raises(ValueError):
        TASK.solve(bad)


@pytest.mark.parametrize("bucket", ALL_BUCKETS)
def test_gold_rationales_are_judged_correct_in_every_bucket(bucket):
    for seed in range(3):
        question, answer = _question(bucket, seed)
        rationale = TASK.solve(question)
        assert TASK.bucket_of(question) == bucket
        assert TASK.feedback(question, rationale).is_correct
        assert TASK.parse_answer(rationale) == answer
        example = formats.prompt(question, TASK.info) + "\n" + rationale
        assert TASK.parse_answer(example) == answer and TASK.is_correct(answer, answer)


# -- buckets, generation, BIG-Bench ------------------------------------------------------------------


def test_buckets():
    assert TASK.default_buckets["seen"] == ["l3d2", "l4d2", "l3d22", "l4d22"]
    assert len(TASK.default_buckets["unseen"]) == 8 and "l3d222" in TASK.default_buckets["unseen"]
    for bad in ["", "l3", "d2", "l1d2", "l0d2", "l3d1", "l3d21", "l3d", "L3d2", "l3d22222", "x", None]:
        with pytest.raises(ValueError):
            TASK.check_bucket(bad)
    question, _ = TASK.sample("l2d2", random.Random(0))
    assert question.endswith(") =") and not question.startswith("Q:")
    assert TASK.bucket_of("Q: ((1 + 2 * 3) - (4 * 5 - 6)) = ") == "l3d2"
    with pytest.raises(ValueError):
        TASK.bucket_of("((1 + 2) - (3 + 4 + 5)) =")  # groups of different lengths


def test_generate_is_deterministic_and_balanced():
    a = TASK.generate(24, "unseen", seed=3)
    assert a == TASK.generate(24, "unseen", seed=3)
    assert a != TASK.generate(24, "unseen", seed=4)
    buckets = [e.bucket for e in a]
    assert all(buckets.count(b) == 3 for b in TASK.default_buckets["unseen"])
    seen = TASK.generate(8, "seen", seed=0, buckets=["l2d2"])
    assert {e.bucket for e in seen} == {"l2d2"} and all(e.split == "seen" for e in seen)
    for e in a[:6]:
        assert TASK.bucket_of(e.question) == e.bucket and TASK.split_of(e.bucket) == "unseen"
        assert TASK.parse_answer(e.rationale) == e.answer


def test_from_bigbench():
    e = TASK.from_bigbench("((-1 + 2 + 9 * 5) - (-2 + -4 + -4 * -7)) =", "24")
    assert (e.question, e.answer) == ("((-1 + 2 + 9 * 5) - (-2 + -4 + -4 * -7)) =", "24")
    assert (e.bucket, e.split) == ("l4d2", "seen")
    assert e.rationale == TASK.solve(e.question)
    e2 = TASK.from_bigbench("((3+1)-(2-2)) = ", " 4")
    assert e2.question == "((3 + 1) - (2 - 2)) =" and e2.bucket == "l2d2" and e2.split == "unseen"
    with pytest.raises(ValueError):
        TASK.from_bigbench("((-1 + 2 + 9 * 5) - (-2 + -4 + -4 * -7)) =", "25")
    with pytest.raises(ValueError):
        TASK.from_bigbench("((-1 + 2 + 9 * 5) - (-2 + -4 + -4 * -7)) =", "twenty-four")


# -- answers -------------------------------------------------------------------------------------------


def test_parse_answer_uses_the_last_attempt():
    text = (
        f"Q: {Q}\n{formats.answer_header(TASK.info)}\n{WRONG}\nFeedback: something\n"
        f"{formats.answer_header(TASK.info, updated=True)}\n{GOLD}\nFeedback: {formats.CORRECT_PHRASE}"
    )
    assert TASK.parse_answer(text) == "-41"
    assert TASK.parse_answer(WRONG) == "-37"
    assert TASK.parse_answer("(Final response) So the answer is 7") == "7"
    assert TASK.parse_answer("(Final response) So the answer is 7. So the answer is 8.") is None
    assert TASK.parse_answer("(Final response) So the answer is seven.") is None
    assert TASK.parse_answer("(4) So the answer is 7.") is None
    assert TASK.is_correct("-41", "-41") and not TASK.is_correct("-40", "-41") and not TASK.is_correct(None, "1")


@settings(max_examples=100, deadline=None)
@given(st.text())
def test_parse_answer_never_raises(text):
    out = TASK.parse_answer(text)
    assert out is None or str(int(out)) == out


# -- FBK ---------------------------------------------------------------------------------------------


def test_feedback_sentences_of_the_paper():
    fb = TASK.feedback(Q, WRONG)
    assert fb.text == (
        'Step (1) is correct. In step (2) the part " (-2 - 21) = -19 " is incorrect. '
        "This is because there is a calculation error, since (-2 - 21) is not equal to -19."
    )
    assert (fb.step, fb.segment) == ("2", "(-2 - 21) = -19")
    assert formats.parse_feedback(fb.text) == fb
    fb = TASK.feedback(Q, GOLD.replace("is -41.", "is -40."))
    assert fb.text == (
        'Step (1) to (4) are correct. In step (Final response) the part " the answer is -40. " is incorrect. '
        "This is because this answer is inconsistent with the result in step (4)."
    )
    fb = TASK.feedback(Q, GOLD.replace("is (A - B)", "is (A + B)"))
    assert fb.text == (
        'Step (1) to (3) are correct. In step (4) the part " (A + B) " is incorrect. '
        "This is because this equation is inconsistent with the question statement."
    )
    assert TASK.feedback(Q, GOLD).text == "Step (1) to (4) are correct. The final response is also correct."


@pytest.mark.parametrize(
    "edit, step, segment",
    [
        (("A = (-2 - -3 * -7) and", "A = (-2 - -3 * -6) and"), "1", "A = (-2 - -3 * -6)"),
        (('"(A - B)"', '"(A + B)"'), "1", "(A + B)"),
        (("= (-2 - (-3 * -7))", "= ((-2 - -3) * -7)"), "2", "(-2 - -3 * -7) = ((-2 - -3) * -7)"),
        (("calculate B", "calculate C"), "3", "Let's calculate C"),
        (("(-23 - 18)", "(-23 - 19)"), "4", "(A - B) = (-23 - 19)"),
        (("(-23 - 18) = -41", "(-23 - 18) = -5"), "4", "(-23 - 18) = -5"),
        (("(-23 - 18) = -41", "(-23 - 18)"), "4", "(-23 - 18)"),
        (("(20 - 2) = 18", "(20 - 2) = 18 + x"), "3", "18 + x"),
        (("(3) Let's", "(2) Let's"), "2", "(2)"),
        (("(3) Let's", "(7) Let's"), "7", "(7)"),
    ],
)
def test_feedback_finds_the_first_wrong_step(edit, step, segment):
    attempt = GOLD.replace(*edit)
    assert attempt != GOLD
    fb = TASK.feedback(Q, attempt)
    assert (fb.is_correct, fb.step, fb.segment) == (False, step, segment)
    assert segment in [s for s in formats.parse_steps(attempt) if s.label == step][0].line
    assert TASK.feedback(Q, TASK.improve(Q, attempt, fb)).is_correct


def test_wrong_intermediate_with_a_lucky_answer_is_an_error():
    q = "((1 + 2 * 3) * (0 * 5 + 0)) ="
    lucky = TASK.solve(q).replace("(1 + 6) = 7", "(1 + 6) = 8").replace("(7 * 0)", "(8 * 0)")
    assert TASK.parse_answer(lucky) == "0" == TASK.parse_answer(TASK.solve(q))
    fb = TASK.feedback(q, lucky)
    assert not fb.is_correct and fb.step == "2" and fb.segment == "(1 + 6) = 8"


def test_missing_and_extra_steps_never_raise():
    lines = GOLD.splitlines()
    no_final = "\n".join(lines[:4])
    fb = TASK.feedback(Q, no_final)
    assert (fb.step, fb.segment) == (formats.FINAL_LABEL, MISSING)
    assert fb.text.startswith("Step (1) to (4) are correct. In step (Final response)")
    assert TASK.improve(Q, no_final, fb) == GOLD
    truncated = "\n".join(lines[:2])
    fb = TASK.feedback(Q, truncated)
    assert fb.step == "3" and "B has not been calculated yet" in fb.reason
    assert TASK.improve(Q, truncated, fb) == GOLD
    skipped = "\n".join(lines[:2] + ["(3) " + lines[3][4:], lines[4]])  # B never calculated
    fb = TASK.feedback(Q, skipped)
    assert fb.step == "3" and "B has not been calculated yet" in fb.reason
    early = "\n".join(lines[:2] + [lines[4]])
    assert TASK.feedback(Q, early).step == formats.FINAL_LABEL
    extra = GOLD + "\n(5) Let's calculate C = 1."
    fb = TASK.feedback(Q, extra)
    assert fb.step == formats.FINAL_LABEL and TASK.improve(Q, extra, fb) == GOLD
    noisy = "Answer: Let's think step by step.\n" + GOLD + "\nsome trailing words"
    assert TASK.feedback(Q, noisy).is_correct
    with pytest.raises(ValueError):
        TASK.feedback(Q, "no steps here\nat all")


def test_correct_but_non_canonical_prefix_is_kept_and_continued():
    # Another reduction order, loose spacing and the letters listed in a different order are all true.
    attempt = (
        '(1) This equation can be written as "(X-Y)", where Y = (-5 * -4 - 2) and X = (-2 - -3 * -7).\n'
        "(2) Let's calculate Y = (-5*-4 - 2) = (20 - 2) = 18.\n"
        "(3) Let's calculate X = (-2 - -3 * -7) = -23 + 0 = -20.\n"
    )
    fb = TASK.feedback(Q, attempt)
    assert (fb.step, fb.segment) == ("3", "-23 + 0 = -20")
    improved = TASK.improve(Q, attempt, fb)
    assert improved.splitlines()[:2] == attempt.splitlines()[:2]
    assert improved.splitlines()[2:] == [
        "(3) Let's calculate X = (-2 - -3 * -7) = (-2 - (-3 * -7)) = (-2 - 21) = -23.",
        "(4) Then, the final equation is (X - Y) = (-23 - 18) = -41.",
        "(Final response) So the answer is -41.",
    ]
    assert TASK.feedback(Q, improved).is_correct


def test_improve_never_keeps_a_wrong_step():
    wrong_feedback = formats.Feedback(False, "4", "x", "y", "")  # the real first error is in step (2)
    improved = TASK.improve(Q, WRONG, wrong_feedback)
    assert improved == GOLD


# -- planted mistakes (hypothesis) -------------------------------------------------------------------


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(ALL_BUCKETS), st.integers(0, 10**6), st.integers(0, 10**6))
def test_planted_mistake_is_found_and_improved(bucket, qseed, cseed):
    question, answer = _question(bucket, qseed)
    gold = TASK.solve(question)
    attempt, label = TASK.corrupt(question, gold, random.Random(cseed))
    assert TASK.parse_answer(attempt) != answer  # corrupt always ends with a wrong answer
    fb = TASK.feedback(question, attempt)
    assert not fb.is_correct and fb.step == label
    step_lines = [s.line for s in formats.parse_steps(attempt) if s.label == fb.step]
    assert fb.segment in step_lines[0]
    improved = TASK.improve(question, attempt, fb)
    assert TASK.feedback(question, improved).is_correct
    assert TASK.parse_answer(improved) == answer
    labels = [s.label for s in formats.parse_steps(attempt)]
    keep = labels.index(label)
    assert improved.splitlines()[:keep] == attempt.splitlines()[:keep]
    assert improved == gold  # a canonical prefix is continued canonically


_PIECES = st.sampled_from(
    GOLD.splitlines()
    + WRONG.splitlines()
    + [
        "(2) Let's calculate A = ((( = 3.",
        "(3) Let's calculate B =",
        "(4) Then, the final equation is",
        "(4) Then, the final equation is (A - B) = (A - 18) = -41.",
        '(1) This equation can be written as "", where .',
        '(1) This equation can be written as "(A - A)", where A = (1) and A = 2.',
        "(1) This equation can be written as",
        "(Final response) So the answer is",
        "(Final response)",
        "(2.1) Let's calculate A = 1.",
        "Feedback: Step (1) is correct.",
        "(5) " + "(" * 3000 + "1" + ")" * 3000,
        "(2) Let's calculate A = " + " + ".join(["1"] * 3000) + " = 3000.",
    ]
)


_NUMBERED_NOISE = st.text(max_size=40).map(lambda s: f"({s[:1] or 1}) {s}")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(_PIECES, st.text(max_size=40), _NUMBERED_NOISE), max_size=8))
def test_feedback_and_improve_never_raise_on_arbitrary_attempts(lines):
    attempt = "\n".join(lines)
    if not any(formats.parse_step(line) for line in attempt.splitlines()):
        with pytest.raises(ValueError):
            TASK.feedback(Q, attempt)
        return
    fb = TASK.feedback(Q, attempt)
    if fb.is_correct:
        assert TASK.parse_answer(attempt) == "-41"
    assert formats.parse_feedback(fb.text) is not None
    improved = TASK.improve(Q, attempt, fb)
    assert TASK.feedback(Q, improved).is_correct


def test_task_class_is_registered():
    assert isinstance(TASK, MultistepArithmetic) and TASK.name == "multistep_arithmetic"
    assert TASK.info.startswith("Recall that the order of operations") and "addition and multiplication" in TASK.info
