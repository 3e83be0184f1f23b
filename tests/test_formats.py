from hypothesis import given, settings
from hypothesis import strategies as st

from tripost import formats

ATTEMPT = "(1) a = 1.\n(2) b = 2.\n(3) c = 3.\n(Final response) So the answer is 3."


def test_step_parsing_and_joining_round_trip():
    steps = formats.parse_steps(ATTEMPT)
    assert [s.label for s in steps] == ["1", "2", "3", "Final response"]
    assert formats.join_steps(steps) == ATTEMPT


def test_error_feedback_sentences_match_the_paper():
    steps = formats.parse_steps(ATTEMPT)
    first = formats.error_feedback_text(steps, "1", "a = 1", "x")
    assert first == 'In step (1) the part " a = 1 " is incorrect. This is because x.'
    second = formats.error_feedback_text(steps, "2", "b = 2", "y.")
    assert second == 'Step (1) is correct. In step (2) the part " b = 2 " is incorrect. This is because y.'
    final = formats.error_feedback_text(steps, "Final response", "the answer is 3.", "z")
    assert final.startswith("Step (1) to (3) are correct. In step (Final response) the part")
    assert formats.correct_feedback_text(steps) == "Step (1) to (3) are correct. The final response is also correct."


def test_parse_feedback_reads_back_what_we_write():
    steps = formats.parse_steps(ATTEMPT)
    text = formats.error_feedback_text(steps, "2", "b = 2", "there is an calculation error")
    fb = formats.parse_feedback("Feedback: " + text)
    assert fb == formats.Feedback(False, "2", "b = 2", "there is an calculation error", text)
    assert formats.parse_feedback(formats.correct_feedback_text(steps)).is_correct


def test_same_error_uses_segment_containment():
    a = formats.Feedback(False, "2", "(-2 - 21) = -19", "r", "")
    b = formats.Feedback(False, "2", "= -19", "other", "")
    c = formats.Feedback(False, "3", "= -19", "r", "")
    assert formats.same_error(a, b) and not formats.same_error(a, c)


def test_split_attempts_of_a_self_improving_output():
    text = (
        "(1) x.\n(Final response) So the answer is 1.\nFeedback: In step (1) the part \" x \" is incorrect. "
        "This is because r.\nUpdated Answer: Let's think step by step.\n(1) y.\n(Final response) So the answer is 2."
    )
    attempts, feedbacks = formats.split_attempts(text)
    assert attempts == ["(1) x.\n(Final response) So the answer is 1.", "(1) y.\n(Final response) So the answer is 2."]
    assert len(feedbacks) == 1 and feedbacks[0].startswith("In step (1)")
    assert formats.last_attempt(text) == attempts[-1]


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_parsers_never_raise(text):
    formats.parse_feedback(text)
    formats.split_attempts(text)
    formats.parse_step(text)


# The error sentence as a (backtracking) regex: the reference the linear-time parser must agree with.
_REFERENCE_ERROR_RE = __import__("re").compile(
    r'In step \((\d+(?:\.\d+)*|Final response)\) the part "(.*)" is incorrect\. This is because (.*)$')
_PIECES = ['In step (1) the part "', 'In step (2.1) the part "', 'In step (Final response) the part "',
           '" is incorrect. This is because ', '"', " ", "x", "(", ")", "1", "."]


@given(st.lists(st.sampled_from(_PIECES), max_size=12))
@settings(max_examples=400, deadline=None)
def test_error_feedback_parser_agrees_with_the_reference_regex(pieces):
    from tripost.formats import _match_error

    text = "".join(pieces)
    m = _REFERENCE_ERROR_RE.search(text)
    assert _match_error(text) == (m.groups() if m else None)


def test_feedback_parser_is_linear_on_a_long_hostile_line():
    import time

    from tripost.formats import parse_feedback

    for line in ('In step (1) the part "' * 12000, 'In step (1) the part "x" ' * 12000):
        t0 = time.process_time()
        assert parse_feedback(line) is None
        assert time.process_time() - t0 < 1.0  # the backtracking regex took ~20 s on each of these 250 KB lines
