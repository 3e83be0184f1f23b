"""Date Understanding world: generator, solver (real BIG-Bench-style questions), scripted FBK/IMP."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tripost import formats
from tripost.tasks import get_task
from tripost.tasks.date_understanding import DateUnderstanding

TASK = DateUnderstanding()
BUCKETS = ["1", "2", "3", "4+"]
HYP = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
OPTION_RE = re.compile(r"^\(([A-F])\) (\d{2})/(\d{2})/(\d{4})$")


def _options(question: str) -> dict[str, str]:
    block = question.split("\nOptions:\n", 1)[1]
    out = {}
    for line in block.splitlines():
        m = OPTION_RE.match(line)
        assert m, line
        out[m.group(1)] = line[4:]
    return out


def _sample(bucket: str, seed: int):
    return TASK.sample(bucket, random.Random(f"t/{bucket}/{seed}"))


# ------------------------------------------------------------------------------------------------
# hand-written questions in BIG-Bench-Hard's style; answers computed by hand
# ------------------------------------------------------------------------------------------------

Q = " What is the date {} in MM/DD/YYYY?\nOptions:\n"


def _q(premise: str, ask: str, options: list[str]) -> str:
    return premise + Q.format(ask) + "\n".join(f"({'ABCDEF'[i]}) {o}" for i, o in enumerate(options))


# (question, expected letter or None when the solver must abstain)
REAL = [
    (_q("Today is Christmas Eve of 1937.", "10 days ago",
        ["12/14/2026", "12/14/1950", "12/14/2007", "12/14/1937", "07/14/1938", "12/14/1988"]), "D"),
    (_q("Tomorrow is 11/12/2019.", "one year ago from today",
        ["09/04/2018", "11/11/2018", "08/25/2018", "11/02/2018", "11/04/2018"]), "B"),
    (_q("Jane and John married on Jan 2, 1958. It is their 5-year anniversary today.", "tomorrow",
        ["01/11/1961", "01/03/1963", "01/18/1961", "10/14/1960", "01/03/1982", "12/03/1960"]), "B"),
    (_q("Jane thought today is 3/11/2002, but today is in fact Mar 12, which is 1 day later.", "24 hours later",
        ["03/13/2002", "03/12/2002", "04/13/2002", "03/13/2102", "02/13/2002", "03/14/2002"]), "A"),
    (_q("In the UK, people usually put the day before the month when formatting the date. Therefore, today is "
        "02/01/1987 to them.", "a month ago",
        ["12/02/1986", "12/01/1986", "03/02/1986", "12/02/2032", "12/02/2062", "02/06/1987"]), "A"),
    (_q("The first day of 2019 is a Tuesday, and today is the first Monday of 2019.", "today",
        ["01/07/2019", "01/06/2019", "12/31/2018", "01/14/2019", "01/08/2019", "07/01/2019"]), "A"),
    (_q("Yesterday, Jan 21, 2011, Jane ate 2 pizzas and 5 wings.", "one week from today",
        ["01/28/2011", "01/29/2011", "01/22/2011", "02/05/2011", "01/30/2011", "12/29/2010"]), "B"),
    (_q("Today is the last day of the first quarter of 2008.", "one week from today",
        ["04/06/2008", "03/07/2008", "04/07/2008", "04/08/2008", "04/07/2007", "03/24/2008"]), "C"),
    (_q("The deadline is Jun 1, 2021, which is 2 days away from now.", "10 days ago",
        ["05/22/2021", "05/20/2021", "05/21/2021", "05/18/2021", "06/20/2021", "05/20/2022"]), "B"),
    (_q("Today, 8/3/1997, is a day that we will never forget.", "one week ago from today",
        ["07/27/1997", "08/10/1997", "07/26/1997", "07/28/1997", "08/27/1997", "03/27/1997"]), "A"),
    (_q("Today is Apr 10, 1985. Jane's appointment will be 3 days later.", "10 days ago",
        ["04/13/1985", "04/03/1985", "03/31/1985", "04/01/1985", "03/30/1985", "04/20/1985"]), "C"),
    (_q("2015 is coming in 36 hours.", "one week from today",
        ["01/05/2015", "01/06/2015", "12/30/2014", "01/13/2015", "01/06/2016", "12/23/2014"]), "B"),
    (_q("Today is 9/7. Jane is watching NFL 2003.", "one week ago from today",
        ["08/31/2003", "09/14/2003", "08/31/2002", "08/30/2003", "09/01/2003", "07/31/2003"]), "A"),
    (_q("Jane was born on the last day of Feburary in 2001. Today is her 16-year-old birthday.", "yesterday",
        ["02/28/2017", "02/27/2017", "03/01/2017", "02/26/2017", "02/27/2016", "01/27/2017"]), "B"),
    (_q("The concert was scheduled to be on 06/01/1943, but was delayed by one day to today.", "10 days ago",
        ["05/22/1943", "05/24/1943", "06/12/1943", "05/23/1944", "04/23/1943", "05/23/1943"]), "F"),
    (_q("It was Sept. 1st, 2021 a week ago.", "10 days ago",
        ["08/22/2021", "08/29/2021", "08/28/2021", "09/18/2021", "08/29/2020", "08/30/2021"]), "B"),
    (_q("Jane quited her job on Mar 20, 2020. 176 days have passed since then.", "one week from today",
        ["09/18/2020", "09/20/2020", "09/12/2020", "09/19/2020", "10/19/2020", "09/19/2021"]), "D"),
    (_q("Today is the palindrome day of 2020, because the MMDDYYYY format of the date is the same backwards as "
        "forwards.", "tomorrow",
        ["02/03/2020", "02/02/2020", "02/04/2020", "03/02/2020", "02/03/2021", "01/03/2020"]), "A"),
    (_q("On May 9th, 2017 Jane bought 40 eggs. She ate one per day. Today she ran out of eggs.", "24 hours later",
        ["07/13/2017", "06/19/2017", "06/20/2017", "06/19/2060", "05/19/2017", "06/19/2016"]), "B"),
    (_q("Jane got her job in 2016. Today is her 3-year work anniversary. She still remember that on Dec 2, her "
        "second day at work, she had to attend a meeting.", "one year ago from today",
        ["12/02/2018", "11/30/2018", "12/01/2018", "12/01/2019", "12/01/2017", "01/12/2018"]), "C"),
    (_q("Today is 3/5, and it is Jane's second time in the year 1973 to see a meteor shower.", "a month ago",
        ["03/05/1973", "01/05/1973", "02/05/1973", "02/05/1972", "02/04/1973", "05/02/1973"]), "C"),
    (_q("Yesterday was 12/31/1929. Today could not be 12/32/1929 because December has only 31 days.",
        "10 days ago", ["12/21/1929", "01/22/1930", "12/22/1930", "12/23/1929", "10/22/1929", "12/22/1929"]), "F"),
    (_q("Jane visits the bookstore on the 16th of each month starting from the October of 2009. It is her 5th "
        "visit to the bookstore today.", "one week ago from today",
        ["02/16/2010", "02/09/2010", "02/08/2010", "01/09/2010", "02/09/2009", "09/02/2010"]), "B"),
    (_q("May 6, 1992 is like yesterday to Jane, but that is actually ten years ago.", "tomorrow",
        ["05/06/2002", "05/07/1992", "05/07/2002", "05/08/2002", "06/07/2002", "05/07/2012"]), "C"),
    (_q("Jane scheduled 3 apointments with 5 poeple for tomorrow (Tue, 7/9/1972).", "one week ago from today",
        ["07/02/1972", "07/01/1972", "06/30/1972", "07/08/1972", "07/15/1972", "07/01/1971"]), "B"),
    (_q("The current local time is 3:02 pm of 5/4/2004.", "one week from today",
        ["05/10/2004", "04/27/2004", "05/11/2005", "06/11/2004", "04/05/2004", "05/11/2004"]), "F"),
    (_q("Today's meeting is rescheduled to 11 am tomorrow, 10/16/1924.", "yesterday",
        ["10/15/1924", "10/14/1924", "10/13/1924", "10/16/1924", "10/14/2002", "09/14/1924"]), "B"),
    (_q("Jane is celebrating the last day of Jan 2012.", "tomorrow",
        ["01/31/2012", "02/02/2012", "02/01/2012", "01/01/2012", "02/01/2011", "01/02/2012"]), "C"),
    (_q("This is the last day of 1899.", "24 hours later",
        ["12/31/1899", "01/01/1900", "01/02/1900", "01/01/1899", "12/30/1899", "02/01/1900"]), "B"),
    (_q("Today is the second day of the third month of 1966.", "one week ago from today",
        ["02/24/1966", "02/22/1966", "03/09/1966", "02/23/1966", "02/23/1967", "01/23/1966"]), "D"),
    (_q("Jane thinks today is 6/18/2019, but John thinks today is 6/19/2019. John is correct.",
        "one week from today", ["06/25/2019", "06/26/2019", "06/27/2019", "07/26/2019", "06/26/2018", "06/12/2019"]),
     "B"),
    (_q("Jane thinks today is 6/18/2019, but John thinks today is 6/19/2019. Jane is correct.",
        "one week from today", ["06/25/2019", "06/26/2019", "06/27/2019", "07/26/2019", "06/26/2018", "06/12/2019"]),
     "A"),
    (_q("The day before yesterday was 11/23/1933.", "yesterday",
        ["11/23/1933", "11/25/1933", "11/22/1933", "12/24/1933", "11/24/1934", "11/24/1933"]), "F"),
    (_q("Jane booked a flight for tomorrow, Jul 29, 2002.", "one year ago from today",
        ["07/29/2001", "07/28/2001", "07/27/2001", "07/28/2002", "08/28/2001", "07/28/2000"]), "B"),
    (_q("It is 4/19/1969 today.", "24 hours later",
        ["04/19/1969", "04/21/1969", "04/20/1969", "04/20/1970", "05/20/1969", "04/20/1996"]), "C"),
    (_q("Today is Sep 9, 1909.", "tomorrow",
        ["09/09/1909", "09/11/1909", "10/10/1909", "09/10/1910", "09/10/1909", "09/10/1809"]), "E"),
    (_q("Jane and John married on Jan 2, 1958. Today is their golden wedding anniversary.", "a month ago",
        ["12/02/2007", "01/02/2008", "12/02/2008", "11/02/2007", "12/03/2007", "02/12/2007"]), "A"),
    # only the "last day of the month" reading of "a month ago" (February 31 does not exist) is an option
    (_q("Today is the last day of the first quarter of 2008.", "a month ago",
        ["02/29/2008", "03/31/2008", "02/28/2007", "01/31/2008", "02/29/2012", "03/30/2008"]), "A"),
    # --- the solver must abstain on these ---
    # both readings of "ran out of eggs" (June 18 or June 17 as today) are options
    (_q("On May 9th, 2017 Jane bought 40 eggs. She ate one per day. Today she ran out of eggs.", "24 hours later",
        ["06/19/2017", "06/18/2017", "06/20/2017", "06/19/2060", "05/19/2017", "06/19/2016"]), None),
    # both readings of "36 hours" (December 30 or 31) are options
    (_q("2015 is coming in 36 hours.", "yesterday",
        ["12/29/2014", "12/30/2014", "12/28/2014", "01/29/2015", "12/29/2013", "11/29/2014"]), None),
    # February 31 does not exist and both the clamped and the overflowing date are options
    (_q("Today is the last day of the first quarter of 2008.", "a month ago",
        ["02/29/2008", "03/02/2008", "02/28/2007", "01/31/2008", "02/29/2012", "03/30/2008"]), None),
    # the computed date (12/14/1937) is not an option
    (_q("Today is Christmas Eve of 1937.", "10 days ago",
        ["12/14/2026", "12/14/1950", "12/15/1937", "12/13/1937", "07/14/1938", "12/14/1988"]), None),
    # families the solver does not know
    (_q("Jane is 3 days late for her dentist appointment on 4/5/2001.", "tomorrow",
        ["04/09/2001", "04/08/2001", "04/06/2001", "04/05/2001", "05/09/2001", "04/09/2002"]), None),
    (_q("Today is 9/7. Jane is watching a movie.", "tomorrow",
        ["09/08/2003", "09/08/2002", "09/08/2001", "09/07/2003", "10/08/2003", "09/09/2003"]), None),
    (_q("Today is Apr 10, 1985. Tomorrow is Jane's birthday, which was moved to next week.", "tomorrow",
        ["04/11/1985", "04/18/1985", "04/10/1985", "04/12/1985", "05/11/1985", "04/11/1986"]), None),
    (_q("Today is the day before Christmas Eve of 1937.", "tomorrow",
        ["12/24/1937", "12/23/1937", "12/25/1937", "12/22/1937", "11/24/1937", "12/24/1938"]), None),
    ("Today is Apr 10, 1985. What day of the week is it?\nOptions:\n(A) Monday\n(B) Wednesday", None),
]


def test_real_style_questions_precise_and_covering():
    answered, wrong = 0, []
    for question, expected in REAL:
        try:
            rationale = TASK.solve(question)
        except ValueError:
            got = None
        else:
            got = TASK.parse_answer(rationale)
            assert TASK.feedback(question, rationale).is_correct
        if got is not None:
            answered += 1
        if got != expected:
            wrong.append((question.split("\n")[0], expected, got))
    assert not wrong, wrong
    assert answered >= 0.6 * len(REAL)


def test_spec_example_rationale_is_reproduced_exactly():
    question = REAL[0][0]
    assert TASK.solve(question) == (
        "(1) If today is Christmas Eve of 1937, then today's date is December 24, 1937.\n"
        "(2) 10 days before today is December 14, 1937, that is 12/14/1937.\n"
        "(Final response) So the answer is (D).")
    assert TASK.bucket_of(question) == "2"


def test_solver_with_q_prefix_and_bbh_style_steps():
    assert TASK.solve("Q: " + REAL[1][0]).splitlines()[0] == (
        "(1) Tomorrow is November 12, 2019, so today is November 11, 2019.")
    r = TASK.solve(REAL[13][0])  # last day of February 2001
    assert "2001 is not a leap year" in r and "February 28, 2001" in r
    assert TASK.bucket_of(REAL[13][0]) == "3"


# ------------------------------------------------------------------------------------------------
# generation
# ------------------------------------------------------------------------------------------------


def test_registry_and_buckets():
    task = get_task("date_understanding")
    assert isinstance(task, DateUnderstanding) and task.name == "date_understanding"
    assert task.default_buckets == {"seen": ["1", "2"], "unseen": ["3", "4+"]}
    assert task.split_of("2") == "seen" and task.split_of("4+") == "unseen"
    with pytest.raises(ValueError):
        task.check_bucket("5")
    with pytest.raises(ValueError):
        task.generate(2, "unseen", 0, buckets=["7"])


def test_generate_is_deterministic_and_balanced():
    a = TASK.generate(8, "unseen", seed=3)
    b = TASK.generate(8, "unseen", seed=3)
    c = TASK.generate(8, "unseen", seed=4)
    assert a == b and a != c
    assert [e.bucket for e in a] == ["3", "4+"] * 4
    assert all(e.split == "unseen" for e in a)
    seen = TASK.generate(6, "seen", seed=0)
    assert [e.bucket for e in seen] == ["1", "2"] * 3


@pytest.mark.parametrize("bucket", BUCKETS)
def test_generated_questions_are_well_formed(bucket):
    for seed in range(40):
        question, answer = _sample(bucket, seed)
        stem, _ = question.split("\nOptions:\n")
        assert stem.endswith("in MM/DD/YYYY?") and "Q:" not in question
        opts = _options(question)
        assert list(opts) == list("ABCDEF") and len(set(opts.values())) == 6
        rationale = TASK.solve(question)
        lines = rationale.splitlines()
        n_steps = len(lines) - 1
        assert (n_steps >= 4) if bucket == "4+" else n_steps == int(bucket)
        assert lines[-1] == f"(Final response) So the answer is ({answer})."
        # exactly one option is the MM/DD/YYYY date the rationale ends with
        final_date = re.search(r"that is (\d{2}/\d{2}/\d{4})\.$", lines[-2]).group(1)
        assert [k for k, v in opts.items() if v == final_date] == [answer]
        assert TASK.parse_answer(rationale) == answer
        assert TASK.is_correct(TASK.parse_answer(rationale), answer)
        assert TASK.bucket_of(question) == bucket
        assert TASK.feedback(question, rationale).is_correct


def test_answer_letters_are_shuffled():
    letters = {_sample(b, s)[1] for b in BUCKETS for s in range(20)}
    assert letters == set("ABCDEF")


FAMILY_MARKERS = [
    "Today is", "It is", "Tomorrow is", "Yesterday was", "Yesterday,", "for tomorrow", "rescheduled",
    "could not be", "The day before yesterday", "The day after tomorrow", "Christmas", "New Year's",
    "US Thanksgiving", "quarter of", "month of", "the last day of", "The first day of", "married on",
    "golden", "born on", "work anniversary", "thought today", "thinks today", "In the UK", "deadline",
    "delayed", "ago.", "passed since", "palindrome", "is coming in", "like yesterday", "bookstore", "NFL",
    "meteor", "local time", "appointment will be",
]


def test_generator_covers_the_families():
    premises = " || ".join(_sample(b, s)[0].split(" What is the date")[0] for b in BUCKETS for s in range(250))
    missing = [m for m in FAMILY_MARKERS if m not in premises]
    assert not missing, missing
    asks = {re.search(r"What is the date (.*?) in", _sample(b, s)[0]).group(1) for b in BUCKETS for s in range(60)}
    for kind in ("ago", "later", "tomorrow", "yesterday", "today", "month", "year", "week"):
        assert any(kind in a for a in asks), kind


# ------------------------------------------------------------------------------------------------
# FBK / IMP
# ------------------------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(BUCKETS), st.integers(0, 10**6), st.integers(0, 10**6))
def test_planted_error_is_located_and_improve_fixes_it(bucket, seed, seed2):
    question, answer = _sample(bucket, seed)
    gold = TASK.solve(question)
    attempt, label = TASK.corrupt(question, gold, random.Random(seed2))
    assert attempt != gold
    fb = TASK.feedback(question, attempt)
    assert not fb.is_correct and fb.step == label
    assert formats.parse_feedback(fb.text) == fb
    assert fb.segment and fb.segment in attempt
    improved = TASK.improve(question, attempt, fb)
    assert TASK.feedback(question, improved).is_correct
    assert TASK.parse_answer(improved) == answer
    old, new = attempt.splitlines(), improved.splitlines()
    k = len(old) - 1 if label == "Final response" else int(label) - 1
    assert new[:k] == old[:k]  # the steps before the error are kept verbatim
    assert new[k] != old[k]  # the wrong step (or final response) is rewritten


def test_corrupt_plants_every_kind_of_error():
    reasons = []
    for seed in range(150):
        question, _ = _sample(BUCKETS[seed % 4], seed)
        attempt, _label = TASK.corrupt(question, TASK.solve(question), random.Random(seed))
        reasons.append(TASK.feedback(question, attempt).text)
    text = "\n".join(reasons)
    assert "in MM/DD/YYYY format, not" in text  # conversion
    assert "the option with" in text  # option letter
    assert re.search(r"(plus|minus) \d+ days?", text)  # a day shift
    assert "has only" in text or "leap year" in text  # month length / leap year


DECEMBER = REAL[0][0]


@pytest.mark.parametrize("attempt,step,segment,reason", [
    # off by one day
    ("(1) If today is Christmas Eve of 1937, then today's date is December 24, 1937.\n"
     "(2) 10 days before today is December 15, 1937, that is 12/15/1937.\n(Final response) So the answer is (D).",
     "2", "December 15, 1937", "December 24, 1937 minus 10 days is December 14, 1937, not December 15, 1937"),
    # wrong date (holiday)
    ("(1) If today is Christmas Eve of 1937, then today's date is December 25, 1937.\n"
     "(2) 10 days before today is December 15, 1937, that is 12/15/1937.\n(Final response) So the answer is (A).",
     "1", "December 25, 1937", "Christmas Eve is on December 24, so Christmas Eve of 1937 is December 24, 1937, "
                               "not December 25, 1937"),
    # wrong option letter
    ("(1) If today is Christmas Eve of 1937, then today's date is December 24, 1937.\n"
     "(2) 10 days before today is December 14, 1937, that is 12/14/1937.\n(Final response) So the answer is (C).",
     "Final response", "the answer is (C).", "the option with 12/14/1937 is (D)"),
    # wrong MM/DD/YYYY conversion
    ("(1) If today is Christmas Eve of 1937, then today's date is December 24, 1937.\n"
     "(2) 10 days before today is December 14, 1937, that is 12/14/1973.\n(Final response) So the answer is (D).",
     "2", "12/14/1973", "December 14, 1937 is 12/14/1937 in MM/DD/YYYY format, not 12/14/1973"),
    # wrong number of days taken from the question
    ("(1) If today is Christmas Eve of 1937, then today's date is December 24, 1937.\n"
     "(2) 9 days before today is December 15, 1937, that is 12/15/1937.\n(Final response) So the answer is (D).",
     "2", "9", "the question asks for the date 10 days ago, so the number is 10, not 9"),
])
def test_feedback_reasons(attempt, step, segment, reason):
    fb = TASK.feedback(DECEMBER, attempt)
    assert (fb.is_correct, fb.step, fb.segment, fb.reason) == (False, step, segment, reason)
    assert formats.parse_feedback(fb.text) == fb
    assert TASK.feedback(DECEMBER, TASK.improve(DECEMBER, attempt, fb)).is_correct


def test_feedback_month_length_and_leap_year():
    q = _q("Yesterday was April 30, 2021.", "tomorrow",
           ["05/02/2021", "05/01/2021", "04/31/2021", "05/03/2021", "06/02/2021", "05/02/2022"])
    assert TASK.solve(q).endswith("(A).")
    attempt = ("(1) Yesterday was April 30, 2021, so today is April 31, 2021.\n"
               "(2) The date tomorrow is May 1, 2021, that is 05/01/2021.\n(Final response) So the answer is (B).")
    fb = TASK.feedback(q, attempt)
    assert fb.step == "1" and fb.segment == "April 31, 2021"
    assert fb.reason == ("April 30, 2021 plus 1 day is May 1, 2021, not April 31, 2021 "
                         "(April 2021 has only 30 days)")
    leap_q = REAL[13][0]
    attempt = ("(1) 2001 is a leap year, so the last day of February 2001 is February 29, 2001.\n"
               "(2) Jane was born on February 29, 2001, so her 16-year-old birthday, today, is February 28, 2017.\n"
               "(3) The date yesterday is February 27, 2017, that is 02/27/2017.\n(Final response) So the answer is (B).")
    fb = TASK.feedback(leap_q, attempt)
    assert (fb.step, fb.segment) == ("1", "2001 is a leap year")
    assert "not divisible by 4" in fb.reason


def test_feedback_on_odd_attempts():
    gold = TASK.solve(DECEMBER)
    lines = gold.splitlines()
    # a missing final response
    fb = TASK.feedback(DECEMBER, "\n".join(lines[:2]))
    assert not fb.is_correct and fb.step == "2"
    assert TASK.feedback(DECEMBER, TASK.improve(DECEMBER, "\n".join(lines[:2]), fb)).is_correct
    # a step too few
    short = lines[0] + "\n(Final response) So the answer is (D)."
    fb = TASK.feedback(DECEMBER, short)
    assert fb.step == "Final response"
    assert TASK.improve(DECEMBER, short, fb) == gold
    # an extra step
    extra = "\n".join(lines[:2] + ["(3) So it is 12/14/1937.", lines[2]])
    fb = TASK.feedback(DECEMBER, extra)
    assert fb.step == "3"
    assert TASK.feedback(DECEMBER, TASK.improve(DECEMBER, extra, fb)).is_correct
    # a step that states nothing checkable
    vague = "(1) Let me think about Christmas.\n" + "\n".join(lines[1:])
    fb = TASK.feedback(DECEMBER, vague)
    assert fb.step == "1" and "the step should be:" in fb.reason
    # non-step lines are ignored; no step lines at all is a ValueError
    assert TASK.feedback(DECEMBER, "Answer: Let's think step by step.\n" + gold).is_correct
    with pytest.raises(ValueError):
        TASK.feedback(DECEMBER, "I do not know.")
    # a correct feedback is the paper's sentence
    assert TASK.feedback(DECEMBER, gold).text == "Step (1) to (2) are correct. The final response is also correct."
    assert TASK.improve(DECEMBER, gold, TASK.feedback(DECEMBER, gold)) == gold


@HYP
@given(st.integers(0, 10**6), st.lists(st.sampled_from([
    "(1) ", "(2) ", "(3) ", "(Final response) ", "So the answer is (B).", "December 14, 1937", "12/14/1937",
    "February 30, 2001", "13/45/1999", "2001 is a leap year", "Tuesday", "10", " days before today is ",
    "\n", "Feedback: ", "Updated Answer: Let's think step by step.", "that is ", "(A)", "answer is (z)",
]), max_size=30))
def test_feedback_and_parsers_never_raise(seed, pieces):
    question, _ = _sample(BUCKETS[seed % 4], seed)
    text = "".join(pieces)
    assert TASK.parse_answer(text) in (None, *"ABCDEF")
    try:
        fb = TASK.feedback(question, text)
    except ValueError:
        assert not any(formats.parse_step(line) for line in text.splitlines())
        return
    if not fb.is_correct:
        assert formats.parse_feedback(fb.text) is not None
        assert TASK.feedback(question, TASK.improve(question, text, fb)).is_correct


@HYP
@given(st.text(max_size=300))
def test_solver_and_readers_only_raise_value_error(text):
    assert TASK.parse_answer(text) in (None, *"ABCDEF")
    for call in (lambda: TASK.solve(text), lambda: TASK.bucket_of(text),
                 lambda: TASK.from_bigbench(text, "(A)"), lambda: TASK.solve(text + Q.format("tomorrow") + "(A) 01/01/2000")):
        try:
            call()
        except ValueError:
            pass


@HYP
@given(st.sampled_from([q for q, _ in REAL]), st.integers(0, 10**6))
def test_solver_is_robust_to_mangled_real_questions(question, seed):
    rng = random.Random(seed)
    chars = list(question)
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(chars))
        chars[i] = rng.choice(["", "1", "9", "/", ".", " ", "X", "\n", "May", "ago"])
    mangled = "".join(chars)
    try:
        rationale = TASK.solve(mangled)
    except ValueError:
        return
    # when it answers, the answer's date is the one the rationale computed
    letter = TASK.parse_answer(rationale)
    final_date = re.search(r"that is (\d{2}/\d{2}/\d{4})\.$", rationale.splitlines()[-2]).group(1)
    assert f"({letter}) {final_date}" in mangled


def test_has_valid_content():
    gold = TASK.solve(DECEMBER)
    assert TASK.has_valid_content(DECEMBER, gold)
    assert not TASK.has_valid_content(DECEMBER, gold.replace("(D).", "(C)."))  # option C is not 12/14/1937
    assert not TASK.has_valid_content(DECEMBER, gold.replace("12/14/1937.", "12/15/1937."))
    assert not TASK.has_valid_content(DECEMBER, gold.splitlines()[0])
    assert not TASK.has_valid_content("nonsense", gold)


def test_parse_answer_reads_the_last_attempt():
    gold = TASK.solve(DECEMBER)
    wrong = gold.replace("(D).", "(B).")
    text = (f"Q: {DECEMBER}\nAnswer: Let's think step by step.\n{wrong}\nFeedback: In step (Final response) the "
            f"part \" the answer is (B). \" is incorrect. This is because x.\nUpdated Answer: Let's think step by "
            f"step.\n{gold}\nFeedback: Step (1) to (2) are correct. The final response is also correct.")
    assert TASK.parse_answer(text) == "D"
    assert TASK.parse_answer(wrong) == "B"
    assert TASK.parse_answer("(1) so the answer is (C).") is None
    assert TASK.parse_answer("(Final response) So the answer is (b).") == "B"
    assert TASK.parse_answer("") is None


# ------------------------------------------------------------------------------------------------
# real BIG-Bench items
# ------------------------------------------------------------------------------------------------


def test_from_bigbench_bbh_format():
    ex = TASK.from_bigbench(DECEMBER, "(D)")
    assert (ex.answer, ex.bucket, ex.split) == ("D", "2", "seen")
    assert ex.question == DECEMBER and ex.rationale == TASK.solve(DECEMBER)
    thanks = _q("Yesterday was US Thanksgiving of 2001.", "tomorrow",
                ["11/24/2001", "11/23/2001", "11/25/2001", "11/22/2001", "12/24/2001", "11/24/2002"])
    ex = TASK.from_bigbench(thanks, "(A)")
    assert (ex.bucket, ex.split) == ("4+", "unseen")
    with pytest.raises(ValueError):
        TASK.from_bigbench(DECEMBER, "(A)")  # disagrees with the solver
    with pytest.raises(ValueError):
        TASK.from_bigbench(REAL[-4][0], "(A)")  # a family the solver does not know
    with pytest.raises(ValueError):
        TASK.from_bigbench(DECEMBER, "twelve")


def test_from_bigbench_task_json_format():
    stem = "Today is Christmas Eve of 1937. What is the date 10 days ago in MM/DD/YYYY?"
    choices = ["12/14/1937", "12/14/2026", "12/14/1950", "12/14/2007", "07/14/1938", "12/14/1988"]
    ex = TASK.from_bigbench(stem, "12/14/1937", choices=choices)
    assert ex.answer == "A" and ex.question.startswith(stem + "\nOptions:\n(A) 12/14/1937\n(B) 12/14/2026")
    assert TASK.feedback(ex.question, ex.rationale).is_correct
    assert TASK.from_bigbench(stem, ["12/14/1937"], choices=choices).answer == "A"
    with pytest.raises(ValueError):
        TASK.from_bigbench(stem, "01/01/2000", choices=choices)
    with pytest.raises(ValueError):
        TASK.from_bigbench(stem, "12/14/2026", choices=choices)  # the target is not what the solver computes


# ------------------------------------------------------------------------------------------------
# unlettered options (the default profile): answered with the option's date
# ------------------------------------------------------------------------------------------------

BARE = DateUnderstanding(option_letters=False)
BARE_DECEMBER = re.sub(r"^\([A-F]\) ", "", DECEMBER, flags=re.M)


def test_unlettered_questions_match_the_lettered_ones_without_letters():
    for bucket in BUCKETS:
        for seed in range(15):
            lq, la = TASK.sample(bucket, random.Random(f"u/{bucket}/{seed}"))
            bq, ba = BARE.sample(bucket, random.Random(f"u/{bucket}/{seed}"))
            assert bq == re.sub(r"^\([A-F]\) ", "", lq, flags=re.M)  # same question, same options
            assert ba == _options(lq)[la]  # the answer is the right option's date
            rationale = BARE.solve(bq)
            assert rationale.splitlines()[:-1] == TASK.solve(lq).splitlines()[:-1]
            assert rationale.splitlines()[-1] == f"(Final response) So the answer is {ba}."
            assert BARE.parse_answer(rationale) == ba and BARE.is_correct(BARE.parse_answer(rationale), ba)
            assert BARE.feedback(bq, rationale).is_correct and BARE.has_valid_content(bq, rationale)
            assert BARE.bucket_of(bq) == bucket


@HYP
@given(st.sampled_from(BUCKETS), st.integers(0, 10**6), st.integers(0, 10**6))
def test_unlettered_planted_error_is_located_and_improve_fixes_it(bucket, seed, seed2):
    question, answer = BARE.sample(bucket, random.Random(seed))
    gold = BARE.solve(question)
    attempt, label = BARE.corrupt(question, gold, random.Random(seed2))
    fb = BARE.feedback(question, attempt)
    assert not fb.is_correct and fb.step == label and fb.segment in attempt
    assert formats.parse_feedback(fb.text) == fb
    improved = BARE.improve(question, attempt, fb)
    assert BARE.feedback(question, improved).is_correct and BARE.parse_answer(improved) == answer


def test_unlettered_feedback_parse_and_valid_content():
    gold = BARE.solve(BARE_DECEMBER)
    assert gold.endswith("(Final response) So the answer is 12/14/1937.")
    wrong = gold.replace("answer is 12/14/1937.", "answer is 12/14/2026.")
    fb = BARE.feedback(BARE_DECEMBER, wrong)
    assert (fb.step, fb.segment, fb.reason) == (
        "Final response", "the answer is 12/14/2026.", "the answer is the date the last step found, 12/14/1937")
    assert BARE.improve(BARE_DECEMBER, wrong, fb) == gold
    assert BARE.parse_answer(wrong) == "12/14/2026"
    assert BARE.parse_answer("(Final response) So the answer is 2/3/2001.") == "02/03/2001"  # normalised
    assert BARE.parse_answer("(Final response) So the answer is 12/14/19377.") is None
    assert not BARE.has_valid_content(BARE_DECEMBER, wrong)  # 12/14/2026 is an option, not the last date
    assert not BARE.has_valid_content(BARE_DECEMBER, gold.replace("12/14/1937.", "12/15/1937."))
    # a lettered question is still solved and checked as lettered by the same task object
    assert BARE.solve(DECEMBER) == TASK.solve(DECEMBER)


def test_unlettered_from_task_json_and_bad_option():
    stem = "Today is Christmas Eve of 1937. What is the date 10 days ago in MM/DD/YYYY?"
    choices = ["12/14/1937", "12/14/2026", "12/14/1950", "12/14/2007", "07/14/1938", "12/14/1988"]
    ex = BARE.from_bigbench(stem, "12/14/1937", choices=choices)
    assert ex.answer == "12/14/1937" and ex.question == stem + "\nOptions:\n" + "\n".join(choices)
    assert BARE.feedback(ex.question, ex.rationale).is_correct
    assert BARE.from_bigbench(DECEMBER, "(D)").answer == "D"  # BBH items come lettered
    with pytest.raises(ValueError, match="option_letters"):
        get_task("date_understanding", option_letters="no")
    with pytest.raises(ValueError, match="option not understood"):
        BARE.solve(BARE_DECEMBER.replace("07/14/1938", "(E) 07/14/1938"))  # mixed styles


def test_stages_build_the_task_with_the_data_options_of_params():
    """Every stage builds its task with `task_from_params`, so with the default profile's
    `option_letters: false` the LLM's few-shot demonstrations list bare dates, as the data do."""
    from pathlib import Path

    from tripost.feedback import fewshot_examples
    from tripost.params import load_params
    from tripost.tasks import get_task, task_from_params

    params = load_params(Path(__file__).resolve().parent.parent / "params.yaml")
    assert params["per_task"]["date_understanding"]["data"]["options"]["option_letters"] is False
    task = task_from_params(params, "date_understanding")
    assert task.option_letters is False and get_task("date_understanding").option_letters is True
    shots = fewshot_examples(task, 2, 1234)
    assert shots and all("(A)" not in s.question for s in shots)
    assert all("(A)" in s.question for s in fewshot_examples(get_task("date_understanding"), 2, 1234))
