"""Word Sorting world: generator, scripted rationale, answer parser, scripted FBK / IMP, corruptions."""

import json
import random
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tripost import formats
from tripost.tasks import get_task
from tripost.tasks.word_sorting import word_list

TASK = get_task("word_sorting")
FIXTURES = Path(__file__).parent / "fixtures"
FAST = settings(max_examples=100, deadline=None)


def question(*words):
    return "Sort the following words alphabetically:\nList: " + " ".join(words)


def lines(text):
    return text.splitlines()


# -- words for property tests: real words, and short words over a tiny alphabet (prefixes, copies)
tiny_word = st.text(alphabet="abc", min_size=1, max_size=4)
odd_word = st.text(alphabet="ab'&-Z0", min_size=1, max_size=4)
real_word = st.sampled_from(word_list())
word_lists = st.one_of(
    st.lists(real_word, min_size=1, max_size=12),
    st.lists(tiny_word, min_size=1, max_size=9),
    st.lists(st.one_of(tiny_word, odd_word), min_size=1, max_size=7),
)


# ---------------------------------------------------------------------------------------------
# the scripted rationale

PAPER_RATIONALE = """\
(1) The first letter: "alchemist"="a" (1), "pliable"="p" (16), "adsorbate"="a" (1).
(2) We now have: (1) ["alchemist" ? "adsorbate"] < (16) "pliable".
(3) Now sort this subpart ["alchemist" ? "adsorbate"] by looking at their second letters: "alchemist"="l" (12), "adsorbate"="d" (4).
(3.1) We now have: (4) "adsorbate" < (12) "alchemist".
(3.2) Hence, we have "adsorbate" < "alchemist".
(4) Hence, we have "adsorbate" < "alchemist" < "pliable".
(Final response) So the answer is: adsorbate alchemist pliable."""

# a subpart that does not split at its second letter goes on at the same level (3.1 .. 3.4)
SAME_LEVEL_RATIONALE = """\
(1) The first letter: "cobalt"="c" (3), "copper"="c" (3), "coral"="c" (3), "apple"="a" (1).
(2) We now have: (1) "apple" < (3) ["cobalt" ? "copper" ? "coral"].
(3) Now sort this subpart ["cobalt" ? "copper" ? "coral"] by looking at their second letters: "cobalt"="o" (15), "copper"="o" (15), "coral"="o" (15).
(3.1) We now have: (15) ["cobalt" ? "copper" ? "coral"].
(3.2) Now sort this subpart ["cobalt" ? "copper" ? "coral"] by looking at their third letters: "cobalt"="b" (2), "copper"="p" (16), "coral"="r" (18).
(3.3) We now have: (2) "cobalt" < (16) "copper" < (18) "coral".
(3.4) Hence, we have "cobalt" < "copper" < "coral".
(4) Hence, we have "apple" < "cobalt" < "copper" < "coral".
(Final response) So the answer is: apple cobalt copper coral."""


def test_solve_writes_the_papers_format():
    assert TASK.solve(question("alchemist", "pliable", "adsorbate")) == PAPER_RATIONALE
    assert TASK.solve(question("cobalt", "copper", "coral", "apple")) == SAME_LEVEL_RATIONALE
    nested = TASK.solve(question("spiderwort", "spiritual", "salient", "dog"))
    assert "(3.2) Now sort this subpart [\"spiderwort\" ? \"spiritual\"] by looking at their third letters" in nested
    assert "(3.2.2) Now sort this subpart" in nested and "fourth letters" in nested
    assert "(3.3) Hence, we have \"salient\" < \"spiderwort\" < \"spiritual\"." in nested


@pytest.mark.parametrize(
    "text, answer",
    [
        ("Sort the following words alphabetically: List: oven costume counterpart", "costume counterpart oven"),
        ("Q: Sort the following words alphabetically: List: syndrome therefrom", "syndrome therefrom"),
        (
            "Sort the following words alphabetically:\nList:   bauer  o'connell  accelerate it&t  ",
            "accelerate bauer it&t o'connell",
        ),
        # a repeated word and words that are prefixes of each other
        ("Sort the following words alphabetically: List: catalog cat dog cat cats", "cat cat catalog cats dog"),
        ("Sort the following words alphabetically: List: you've you young", "you you've young"),
    ],
)
def test_solve_bigbench_questions(text, answer):
    rationale = TASK.solve(text)
    assert TASK.parse_answer(rationale) == answer
    assert TASK.feedback(text, rationale).is_correct


def test_short_words_and_copies_follow_the_documented_conventions():
    rationale = TASK.solve(question("catalog", "cat", "dog", "cat", "cats"))
    assert '"cat"="" (0)' in rationale  # no 4th letter: the empty letter, number 0, sorts first
    assert '(0) "cat" = "cat" < (1) "catalog" < (19) "cats"' in rationale
    assert 'Hence, we have "cat" = "cat" < "catalog" < "cats" < "dog".' in rationale
    one = TASK.solve(question("apple"))
    assert one.endswith('(3) Hence, we have "apple".\n(Final response) So the answer is: apple.')


@pytest.mark.parametrize(
    "bad",
    [
        "Sort these words: a b",
        "Sort the following words alphabetically: List:   ",
        'Sort the following words alphabetically: List: a "b"',
        42,
    ],
)
def test_invalid_questions_raise_value_error(bad):
    with pytest.raises(ValueError):
        TASK.solve(bad)


@FAST
@given(word_lists)
def test_solve_is_right_on_any_word_list(words):
    q = question(*words)
    rationale = TASK.solve(q)
    assert TASK.parse_answer(rationale) == " ".join(sorted(words))
    assert TASK.feedback(q, rationale).is_correct


# ---------------------------------------------------------------------------------------------
# generation, buckets, BIG-Bench items


def test_generated_gold_in_every_bucket_is_judged_correct():
    for split in ("seen", "unseen"):
        examples = TASK.generate(10, split, seed=3)
        for e in examples:
            lo, hi = map(int, e.bucket.split("-"))
            words = e.question.split("List: ")[1].split()
            assert e.question.startswith("Sort the following words alphabetically:\nList: ")
            assert lo <= len(words) <= hi and len(set(words)) == len(words)
            assert e.answer == " ".join(sorted(words)) and e.split == split
            assert TASK.parse_answer(TASK.gold_text(e)) == e.answer
            assert TASK.is_correct(TASK.parse_answer(e.rationale), e.answer)
            assert TASK.feedback(e.question, e.rationale).is_correct
            assert TASK.bucket_of(e.question) == e.bucket
    single = TASK.generate(3, "seen", seed=0, buckets=["5"])
    assert all(len(e.question.split("List: ")[1].split()) == 5 for e in single)


def test_generation_is_deterministic_and_balanced():
    a = TASK.generate(12, "unseen", seed=7)
    assert a == TASK.generate(12, "unseen", seed=7)
    assert a != TASK.generate(12, "unseen", seed=8)
    assert Counter(e.bucket for e in a) == {"8-10": 4, "11-15": 4, "16-20": 4}
    assert Counter(e.bucket for e in TASK.generate(10, "seen", seed=7)) == {"2-3": 5, "4-7": 5}


def test_buckets():
    for ok in ("2-3", "16-20", "5"):
        TASK.check_bucket(ok)
    for bad in ("3-2", "0", "0-4", "abc", "2-3 ", "", None, "1-1000"):
        with pytest.raises(ValueError):
            TASK.check_bucket(bad)
    assert TASK.bucket_of(question("a")) == "2-3"
    assert TASK.bucket_of(question(*"abcdefghi")) == "8-10"
    assert TASK.bucket_of(question(*word_list()[:25])) == "16-20"


def test_from_bigbench_on_bbh_items():
    items = json.loads((FIXTURES / "bbh_word_sorting.json").read_text())["examples"]
    examples = [TASK.from_bigbench(i["input"], i["target"]) for i in items]
    assert examples[0].question == "Sort the following words alphabetically:\nList: oven costume counterpart"
    assert examples[0].answer == "costume counterpart oven"
    assert [e.bucket for e in examples] == ["2-3", "4-7", "2-3", "8-10"]
    assert [e.split for e in examples] == ["seen", "seen", "seen", "unseen"]
    for e in examples:
        assert TASK.parse_answer(e.rationale) == e.answer
    with pytest.raises(ValueError, match="not the sorted"):
        TASK.from_bigbench(items[0]["input"], "oven costume counterpart")


# ---------------------------------------------------------------------------------------------
# answer parsing


def test_parse_answer_reads_the_last_attempt():
    text = (
        "Q: x\nAnswer: Let's think step by step.\n(1) a.\n(Final response) So the answer is: b a.\n"
        "Feedback: In step (1) the part \" a \" is incorrect. This is because r.\n"
        "Updated Answer: Let's think step by step.\n(1) b.\n(Final response) So the answer is:  a   b.\n"
    )
    assert TASK.parse_answer(text) == "a b"
    assert TASK.parse_answer("(1) a.\n(2) b.") is None
    assert TASK.parse_answer("(Final response) So the answer is: .") is None
    assert TASK.is_correct("a  b", "a b") and not TASK.is_correct("b a", "a b") and not TASK.is_correct(None, "a")


@settings(max_examples=100, deadline=None)
@given(st.text())
def test_parse_answer_and_feedback_never_raise_on_random_text(text):
    TASK.parse_answer(text)
    try:
        fb = TASK.feedback(question("oven", "costume", "counterpart"), text)
    except ValueError:
        assert not any(formats.parse_step(line) for line in text.splitlines())
    else:
        assert formats.parse_feedback(fb.text) is not None


# ---------------------------------------------------------------------------------------------
# scripted FBK


def feedback_after(rationale, old, new, q=None):
    assert old in rationale
    return TASK.feedback(q or question("alchemist", "pliable", "adsorbate"), rationale.replace(old, new, 1))


def test_feedback_sentences_in_the_papers_style():
    q = question("clothesman", "cobalt", "apple")
    wrong = TASK.solve(q).replace('"clothesman"="l" (12)', '"clothesman"="l" (11)')
    fb = TASK.feedback(q, wrong)
    assert fb.text == (
        'Step (1) to (2) are correct. In step (3) the part " "clothesman"="l" (11) " is incorrect. '
        'This is because the alphabetical order for the character "l" should be 12.'
    )
    assert formats.parse_feedback(fb.text) == fb

    fb = feedback_after(PAPER_RATIONALE, '"alchemist"="l" (12)', '"alchemist"="c" (3)')
    assert (fb.step, fb.segment) == ("3", '"alchemist"="c" (3)')
    assert fb.reason == 'the second letter of "alchemist" should be "l"'
    fb = feedback_after(PAPER_RATIONALE, '"pliable"="p" (16)', '"pliant"="p" (16)')
    assert fb.reason == '"pliant" is not in the list of words provided by the question statement'
    fb = feedback_after(PAPER_RATIONALE, '(4) "adsorbate" < (12) "alchemist"', '(4) "alchemist" < (12) "adsorbate"')
    assert fb.step == "3.1" and "does not have words with the numbers (4) (12) sorted correctly" in fb.reason
    fb = feedback_after(PAPER_RATIONALE, '(3.2) Hence, we have "adsorbate" <', '(3.2) Hence, we have "adsorbate" ?')
    assert fb.step == "3.2" and 'has not yet been sorted completely (contains "?")' in fb.reason
    fb = feedback_after(PAPER_RATIONALE, '"adsorbate" < "alchemist" <', '"alchemist" < "adsorbate" <')
    assert fb.step == "4" and fb.reason == 'in step (3.1) it is established that: "adsorbate" < "alchemist"'
    fb = feedback_after(PAPER_RATIONALE, "is: adsorbate alchemist pliable.", "is: adsorbate pliable.")
    assert fb.step == "Final response" and fb.segment == "the answer is: adsorbate pliable."
    assert fb.text.startswith("Step (1) to (4) are correct. In step (Final response)")


def test_feedback_on_structure_errors():
    fb = feedback_after(PAPER_RATIONALE, "(3.1) We now", "(3.2) We now")
    assert (fb.step, fb.segment, fb.reason) == ("3.2", "(3.2)", "the step number should be (3.1)")
    truncated = "\n".join(lines(PAPER_RATIONALE)[:-1])
    fb = TASK.feedback(question("alchemist", "pliable", "adsorbate"), truncated)
    assert fb.step == "4" and "without a final response" in fb.reason
    fb = TASK.feedback(question("alchemist", "pliable", "adsorbate"), PAPER_RATIONALE + "\n(5) Hence, we have \"a\".")
    assert fb.step == "5" and not fb.is_correct
    early = "\n".join(lines(PAPER_RATIONALE)[:2] + lines(PAPER_RATIONALE)[-1:])
    fb = TASK.feedback(question("alchemist", "pliable", "adsorbate"), early)
    assert fb.step == "Final response" and "not yet sorted all the words" in fb.reason
    fb = feedback_after(PAPER_RATIONALE, '(1) ["alchemist" ? "adsorbate"]', '(1) "alchemist" = "adsorbate"')
    assert fb.step == "2" and "unsorted subpart" in fb.reason
    with pytest.raises(ValueError):
        TASK.feedback(question("a", "b"), "no steps here")


def test_attempt_in_another_valid_order_is_accepted():
    # words listed in another order inside the extraction and a subpart are still correct
    attempt = PAPER_RATIONALE.replace(
        '"alchemist"="a" (1), "pliable"="p" (16), "adsorbate"="a" (1)',
        '"adsorbate"="a" (1), "alchemist"="a" (1), "pliable"="p" (16)',
    ).replace('["alchemist" ? "adsorbate"]', '["adsorbate" ? "alchemist"]')
    assert TASK.feedback(question("alchemist", "pliable", "adsorbate"), attempt).is_correct


# ---------------------------------------------------------------------------------------------
# planted errors, scripted IMP


@FAST
@given(word_lists.filter(lambda ws: len(ws) >= 2), st.integers(0, 10**6))
def test_planted_error_is_found_and_improved(words, seed):
    q = question(*words)
    gold = TASK.solve(q)
    attempt, label = TASK.corrupt(q, gold, random.Random(seed))
    fb = TASK.feedback(q, attempt)
    assert not fb.is_correct and fb.step == label
    assert formats.parse_feedback(fb.text) == fb
    assert fb.segment in next(line for line in lines(attempt) if line.startswith(f"({label})"))
    k = [formats.parse_step(line).label for line in lines(attempt)].index(label)
    assert lines(attempt)[:k] == lines(gold)[:k]  # the planted step is the first difference
    assert lines(attempt)[k] != lines(gold)[k]

    improved = TASK.improve(q, attempt, fb)
    assert lines(improved)[:k] == lines(attempt)[:k]  # prefix kept verbatim
    assert TASK.feedback(q, improved).is_correct
    assert TASK.parse_answer(improved) == " ".join(sorted(words))


def test_corrupt_plants_every_kind_of_error():
    q = question("conference", "apparition", "ignore", "dutton", "coupe", "copra", "implement")
    rng = random.Random(0)
    reasons = set()
    for _ in range(60):
        attempt, label = TASK.corrupt(q, TASK.solve(q), rng)
        fb = TASK.feedback(q, attempt)
        assert fb.step == label
        reasons.add(fb.reason.split(" ")[0] + " " + fb.reason.split(" ")[1])
    assert TASK.parse_answer(attempt) is not None
    assert len(reasons) >= 5


@FAST
@given(word_lists.filter(lambda ws: len(ws) >= 2), st.data())
def test_feedback_and_improve_survive_mangled_attempts(words, data):
    q = question(*words)
    rows = lines(TASK.solve(q))
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(rows) - 1))
        action = data.draw(st.sampled_from(["delete", "cut", "insert", "duplicate"]))
        if action == "delete" and len(rows) > 1:
            del rows[i]
        elif action == "cut":
            rows[i] = rows[i][: data.draw(st.integers(0, len(rows[i])))]
        elif action == "insert":
            pos = data.draw(st.integers(0, len(rows[i])))
            rows[i] = rows[i][:pos] + data.draw(st.text(alphabet='"()[]<=?.:, 0123abc', max_size=6)) + rows[i][pos:]
        else:
            rows.insert(i, rows[i])
    attempt = "\n".join(rows)
    if not any(formats.parse_step(r) for r in rows):
        return
    fb = TASK.feedback(q, attempt)
    if not fb.is_correct:
        assert formats.parse_feedback(fb.text) == fb
        flagged = [s.line for s in map(formats.parse_step, rows) if s and s.label == fb.step]
        assert any(fb.segment in line for line in flagged)
        assert TASK.feedback(q, TASK.improve(q, attempt, fb)).is_correct


def test_vocabulary_size_draws_from_a_fixed_subset():
    task = get_task("word_sorting", vocabulary_size=150)
    again = get_task("word_sorting", vocabulary_size=150)
    assert len(task.words) == 150 and task.words == again.words
    assert set(task.words) <= set(get_task("word_sorting").words)
    examples = task.generate(200, "seen", seed=3, buckets=["2-3"])
    used = {w for e in examples for w in e.answer.split()}
    assert used <= set(task.words)
    assert len(used) > 100  # the whole subset is in use, not a handful of words
    for e in examples[:20]:
        assert task.is_correct(task.parse_answer(e.rationale), e.answer)


def test_bad_task_options_are_clear_errors():
    with pytest.raises(ValueError, match="vocabulary_size"):
        get_task("word_sorting", vocabulary_size=5)
    with pytest.raises(ValueError, match="unsupported task options"):
        get_task("multistep_arithmetic", vocabulary_size=300)
