"""Logical Deduction world: generator, solver, scripted FBK / IMP, parsers (docs/method.md §1.1, §2.3, §2.5)."""

from __future__ import annotations

import itertools
import random
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tripost import formats
from tripost.tasks import get_task
from tripost.tasks.logical_deduction import INFO, LogicalDeduction

TASK = LogicalDeduction()
PRE = ("The following paragraphs each describe a set of {} objects arranged in a fixed order. "
       "The statements are logically consistent within each paragraph. ")
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _q(n: str, body: str, options: list[str]) -> str:
    return PRE.format(n) + body + "\nOptions:\n" + "\n".join(f"({chr(65 + i)}) {o}" for i, o in enumerate(options))


# Hand-written BIG-Bench-style questions (all five scenarios, 3 / 5 / 7 objects), answers worked out by hand.
HANDWRITTEN = [
    (_q("three", "On a shelf, there are three books: a white book, a green book, and an orange book. "
                 "The green book is to the right of the white book. The orange book is the rightmost.",
        ["The white book is the leftmost", "The green book is the leftmost", "The orange book is the leftmost"]),
     "A"),
    (_q("five", "In a golf tournament, there were five golfers: Ana, Rob, Amy, Dan, and Joe. Rob finished below "
                "Dan. Joe finished second. Joe finished below Amy. Ana finished third-to-last.",
        ["Ana finished last", "Rob finished last", "Amy finished last", "Dan finished last", "Joe finished last"]),
     "B"),
    (_q("seven", "On a branch, there are seven birds: a hummingbird, a cardinal, a blue jay, an owl, a raven, a "
                 "quail, and a robin. The owl is the second from the left. The cardinal is the rightmost. The raven "
                 "is the second from the right. The quail is to the left of the owl. The hummingbird is the fourth "
                 "from the left. The blue jay is to the right of the robin.",
        [f"The {b} is the third from the left" for b in
         ("hummingbird", "cardinal", "blue jay", "owl", "raven", "quail", "robin")]),
     "G"),
    (_q("three", "In an antique car show, there are three vehicles: a motorcyle, a bus, and a tractor. The motorcyle "
                 "is the oldest. The bus is newer than the tractor.",
        ["The motorcyle is the second-newest", "The bus is the second-newest", "The tractor is the second-newest"]),
     "C"),
    (_q("five", "A fruit stand sells five fruits: apples, peaches, mangoes, loquats, and kiwis. The apples are the "
                "second-cheapest. The peaches are more expensive than the loquats. The mangoes are the third-most "
                "expensive. The kiwis are less expensive than the apples.",
        [f"The {f} are the cheapest" for f in ("apples", "peaches", "mangoes", "loquats", "kiwis")]),
     "E"),
    (_q("seven", "In a golf tournament, there were seven golfers: Rob, Amy, Eve, Mel, Joe, Ada, and Eli. Eve "
                 "finished first. Rob finished second-to-last. Mel finished third. Amy finished below Rob. Ada "
                 "finished above Mel. Eli finished below Joe.",
        [f"{g} finished fourth" for g in ("Rob", "Amy", "Eve", "Mel", "Joe", "Ada", "Eli")]),
     "E"),
    (_q("five", "On a shelf, there are five books: a green book, a red book, a white book, a gray book, and a blue "
                "book. The red book is the leftmost. The white book is the second from the right. The blue book is "
                "to the left of the white book. The gray book is to the left of the blue book.",
        [f"The {c} book is the third from the left" for c in ("green", "red", "white", "gray", "blue")]),
     "E"),
    (_q("seven", "In an antique car show, there are seven vehicles: a limousine, a truck, a minivan, a tractor, a "
                 "hatchback, a bus, and a convertible. The convertible is the newest. The tractor is the "
                 "fourth-newest. The minivan is older than the tractor. The truck is older than the minivan. The "
                 "limousine is the oldest. The bus is newer than the hatchback.",
        [f"The {v} is the third-oldest" for v in
         ("limousine", "truck", "minivan", "tractor", "hatchback", "bus", "convertible")]),
     "C"),
    (_q("three", "A fruit stand sells three fruits: watermelons, plums, and pears. The plums are the cheapest. The "
                 "watermelons are less expensive than the pears.",
        [f"The {f} are the most expensive" for f in ("watermelons", "plums", "pears")]),
     "C"),
    (_q("three", "On a branch, there are three birds: a falcon, a hawk, and a crow. The crow is to the right of the "
                 "hawk. The falcon is to the right of the crow.",
        [f"The {b} is the second from the left" for b in ("falcon", "hawk", "crow")]),
     "C"),
    (_q("five", "A fruit stand sells five fruits: oranges, kiwis, cantaloupes, loquats, and mangoes. The kiwis are "
                "cheaper than the loquats. The oranges are the second-most expensive. The mangoes are the cheapest. "
                "The cantaloupes are more expensive than the oranges.",
        [f"The {f} are the second-cheapest" for f in ("oranges", "kiwis", "cantaloupes", "loquats", "mangoes")]),
     "B"),
]

SPEC_QUESTION = _q(
    "three", "A fruit stand sells three fruits: pears, plums, and kiwis. The pears are less expensive than the plums. "
             "The kiwis are less expensive than the pears.",
    [f"The {f} are the second-most expensive" for f in ("pears", "plums", "kiwis")])
SPEC_RATIONALE = """(1) The pears are less expensive than the plums: "(most expensive) ?? plums ?? pears ?? (least expensive)".
(2) The kiwis are less expensive than the pears: "(most expensive) ?? pears ?? kiwis ?? (least expensive)".
(3) There are in total three fruits: pears, plums, and kiwis.
(4) Combining (1) and (2) we get the following ordering: "(most expensive) ?? plums ?? pears ?? kiwis ?? (least expensive)".
(5) Combining (3) and (4) we get the following ordering: "(most expensive) plums pears kiwis (least expensive)".
(6) According to this ordering, the fruit that is the second-most expensive is the pears.
(Final response) The pears are the second-most expensive. So the answer is (A)."""


# ---------------------------------------------------------------------------------------------
# an independent brute-force reader of generated questions (regexes for the generator's phrasing)
# ---------------------------------------------------------------------------------------------
_ORDS = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh"]


def _independent_truths(question: str) -> tuple[list[tuple[str, ...]], list[tuple[str, str]]]:
    """All orders (start -> end) consistent with the statements, and the options."""
    para, opts = question.split("\nOptions:\n")
    m = re.search(r"(?:there are|there were|sells) \w+ (\w+): ([^.]*)\.", para)
    items = [re.sub(r"^(an?|and) ", "", x.strip()) for x in re.split(r", (?:and )?", m.group(2))]
    names = [re.sub(r" book$", "", x) for x in items]
    sentences = [s for s in re.split(r"\.\s*", para[m.end():]) if s.strip()]

    def name_in(s):
        return [x for x in sorted(names, key=len, reverse=True) if re.search(rf"\b{x}\b", s)]

    def pos_pred(s, n):  # -> index from the start
        for word, side in (("left", 0), ("right", 1), ("to-last", 1), ("oldest", 0), ("newest", 1),
                           ("most expensive", 0), ("cheapest", 1)):
            mm = re.search(rf"(\w+)[ -](?:from the )?{word}$", s)
            if mm and mm.group(1) in _ORDS:
                k = _ORDS.index(mm.group(1))
                return k if side == 0 else n - 1 - k
        for word, idx in (("leftmost", 0), ("rightmost", -1), ("oldest", 0), ("newest", -1),
                          ("most expensive", 0), ("cheapest", -1), ("first", 0), ("last", -1)):
            if s.endswith(word):
                return idx % n
        mm = re.search(r"finished (\w+)$", s)
        return _ORDS.index(mm.group(1))

    n = len(names)
    checks = []
    for s in sentences:
        found = name_in(s)
        if len(found) == 2:
            a, b = sorted(found, key=lambda x: re.search(rf"\b{x}\b", s).start())
            fwd = any(w in s for w in ("left of", "above", "older than", "more expensive than"))
            first, second = (a, b) if fwd else (b, a)
            checks.append(lambda o, first=first, second=second: o.index(first) < o.index(second))
        else:
            (x,) = found
            p = pos_pred(s, n)
            checks.append(lambda o, x=x, p=p: o[p] == x)
    orders = [o for o in itertools.permutations(names) if all(c(o) for c in checks)]
    options = []
    for line in opts.splitlines():
        letter, text = re.match(r"\((\w)\) (.*)$", line).groups()
        options.append((letter, text))
    return orders, options


def _option_true(order, text):
    n = len(order)
    (x,) = [y for y in sorted(order, key=len, reverse=True) if re.search(rf"\b{y}\b", text)][:1]
    for word, side in (("left", 0), ("right", 1), ("to-last", 1), ("oldest", 0), ("newest", 1),
                       ("most expensive", 0), ("cheapest", 1)):
        mm = re.search(rf"(\w+)[ -](?:from the )?{word}$", text)
        if mm and mm.group(1) in _ORDS:
            k = _ORDS.index(mm.group(1))
            return order[k if side == 0 else n - 1 - k] == x
    for word, idx in (("leftmost", 0), ("rightmost", -1), ("oldest", 0), ("newest", -1),
                      ("most expensive", 0), ("cheapest", -1), ("first", 0), ("last", -1)):
        if text.endswith(word):
            return order[idx] == x
    mm = re.search(r"finished (\w+)$", text)
    return order[_ORDS.index(mm.group(1))] == x


# ---------------------------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------------------------
def test_registry_and_constants():
    task = get_task("logical_deduction")
    assert isinstance(task, LogicalDeduction)
    assert task.info == INFO == 'Let "??" represents 0 or more objects, and "?" represents exactly 1 object.'
    assert task.default_buckets == {"seen": ["3", "5"], "unseen": ["7"]}
    for b in ("3", "5", "7"):
        task.check_bucket(b)
    for b in ("4", "8", "", "three"):
        with pytest.raises(ValueError):
            task.check_bucket(b)


def test_spec_example_rationale_verbatim():
    assert TASK.solve(SPEC_QUESTION) == SPEC_RATIONALE
    assert TASK.feedback(SPEC_QUESTION, SPEC_RATIONALE).text == \
        "Step (1) to (6) are correct. The final response is also correct."
    assert TASK.prompt(SPEC_QUESTION).endswith(f"Answer: Let's think step by step. {INFO}")


@pytest.mark.parametrize("question,answer", HANDWRITTEN)
def test_solve_handwritten(question, answer):
    rationale = TASK.solve(question)
    assert TASK.parse_answer(rationale) == answer
    assert TASK.feedback(question, rationale).is_correct
    assert TASK.bucket_of(question) == str(len(re.findall(r"^\([A-G]\)", question, re.M)))


def test_solve_accepts_variants():
    """Q: prefix, the misspelling "motorcycle", spacing and hyphen variants."""
    q = ("Q: " + PRE.format("three") + "In an antique car show, there are three vehicles: a motorcyle, a bus, and a "
         "tractor.  The motorcycle is the oldest.  The bus is newer than the tractor.\nOptions:\n"
         "(A) The motorcyle is the second newest\n(B) The bus is the second newest\n"
         "(C) The tractor is the second newest")
    assert TASK.parse_answer(TASK.solve(q)) == "C"


@pytest.mark.parametrize("split", ["seen", "unseen"])
def test_generated_gold_correct_unique_and_deterministic(split):
    examples = TASK.generate(24, split, seed=7)
    assert examples == TASK.generate(24, split, seed=7)
    assert examples != TASK.generate(24, split, seed=8)
    buckets = {"seen": {"3", "5"}, "unseen": {"7"}}[split]
    assert {e.bucket for e in examples} == buckets
    scenarios = set()
    for e in examples:
        assert e.split == split
        assert TASK.bucket_of(e.question) == e.bucket
        assert TASK.feedback(e.question, e.rationale).is_correct
        assert TASK.parse_answer(e.rationale) == e.answer
        steps = formats.parse_steps(e.rationale)
        assert [s.label for s in steps] == [str(i) for i in range(1, len(steps))] + ["Final response"]
        # independent check: exactly one ordering, exactly one true option, and it is the gold letter
        orders, options = _independent_truths(e.question)
        assert len(orders) == 1, e.question
        assert len(options) == int(e.bucket)
        true = [letter for letter, text in options if _option_true(orders[0], text)]
        assert true == [e.answer], e.question
        scenarios.add(re.search(r"(books|birds|golfers|vehicles|fruits):", e.question).group(1))
        # the final ordering step lists every object in the true order
        final_order = [s.text for s in steps if s.text.startswith("Combining")][-1]
        assert " ".join(orders[0]) in final_order
    assert len(scenarios) >= 3


def test_generated_phrasing_like_bigbench():
    text = "\n".join(e.question for e in TASK.generate(60, "unseen", seed=1))
    assert "seventh" not in text and "sixth" not in text and "fifth" not in text  # nearer end is used
    for phrase in ("to the left of", "from the", "finished", "older than", "newer than", "expensive", "cheap"):
        assert phrase in text
    assert re.search(r"On a shelf, there are seven books: a \w+ book, ", text)


def test_from_bigbench_both_formats():
    bbh_input, answer = HANDWRITTEN[0]
    ex = TASK.from_bigbench(bbh_input, "(A)")
    assert (ex.answer, ex.bucket, ex.split) == ("A", "3", "seen")
    assert ex.question == bbh_input and TASK.feedback(ex.question, ex.rationale).is_correct
    paragraph = bbh_input.split("\nOptions:")[0].split("paragraph. ", 1)[1]
    choices = ["The white book is the leftmost.", "The green book is the leftmost.", "The orange book is the leftmost."]
    ex2 = TASK.from_bigbench(paragraph, "The white book is the leftmost.", choices=choices)
    assert ex2.question == bbh_input and ex2.answer == "A"
    ex7 = TASK.from_bigbench(HANDWRITTEN[2][0], "(G)")
    assert (ex7.bucket, ex7.split) == ("7", "unseen")
    with pytest.raises(ValueError):
        TASK.from_bigbench(bbh_input, "(B)")  # disagrees with the solver
    with pytest.raises(ValueError):
        TASK.from_bigbench("no paragraph here", "(A)")


def test_parse_answer_forms():
    text = TASK.prompt(SPEC_QUESTION) + "\n" + SPEC_RATIONALE
    assert TASK.parse_answer(text) == "A"
    assert TASK.parse_answer("(1) x\n(Final response) The pears are. So The answer is (b).") == "B"
    two = ("(1) x\n(Final response) So the answer is (A).\nFeedback: In step (1) the part \" x \" is incorrect. "
           "This is because no.\nUpdated Answer: Let's think step by step.\n(1) y\n"
           "(Final response) So the answer is (C).")
    assert TASK.parse_answer(two) == "C"
    assert TASK.parse_answer("So the answer is (A).") is None
    assert TASK.parse_answer("(1) x\n(Final response) I do not know.") is None
    assert TASK.parse_answer("") is None


def test_feedback_reasons_and_improve_examples():
    q = SPEC_QUESTION
    wrong_stmt = SPEC_RATIONALE.replace(
        '(2) The kiwis are less expensive than the pears: "(most expensive) ?? pears ?? kiwis',
        '(2) The kiwis are less expensive than the pears: "(most expensive) ?? kiwis ?? pears')
    fb = TASK.feedback(q, wrong_stmt)
    assert fb.step == "2"
    assert fb.text.startswith('Step (1) is correct. In step (2) the part " (most expensive) ?? kiwis')
    assert "so the ordering should be" in fb.reason
    assert formats.parse_feedback(fb.text) == fb
    wrong_letter = SPEC_RATIONALE.replace("answer is (A)", "answer is (C)")
    fb = TASK.feedback(q, wrong_letter)
    assert fb.step == "Final response" and fb.segment == "answer is (C)"
    assert fb.text.startswith("Step (1) to (6) are correct. In step (Final response)")
    fixed = TASK.improve(q, wrong_letter, fb)
    assert fixed == SPEC_RATIONALE
    bad_total = SPEC_RATIONALE.replace("in total three fruits", "in total four fruits")
    assert TASK.feedback(q, bad_total).step == "3"
    nonsense = SPEC_RATIONALE.replace("(4) Combining", "(4) Perhaps combining")
    fb = TASK.feedback(q, nonsense)
    assert fb.step == "4"
    assert TASK.feedback(q, TASK.improve(q, nonsense, fb)).is_correct
    no_final = "\n".join(SPEC_RATIONALE.splitlines()[:-1])
    fb = TASK.feedback(q, no_final)
    assert not fb.is_correct and fb.step == "6"
    assert TASK.feedback(q, TASK.improve(q, no_final, fb)).is_correct
    with pytest.raises(ValueError):
        TASK.feedback(q, "no steps at all")


@st.composite
def _questions(draw):
    bucket = draw(st.sampled_from(["3", "5", "7"]))
    seed = draw(st.integers(0, 10**6))
    question, answer = TASK.sample(bucket, random.Random(seed))
    return question, answer


@SETTINGS
@given(_questions(), st.integers(0, 10**6))
def test_planted_error_located_and_improved(qa, seed):
    question, answer = qa
    gold = TASK.solve(question)
    assert TASK.parse_answer(gold) == answer
    attempt, label = TASK.corrupt(question, gold, random.Random(seed))
    fb = TASK.feedback(question, attempt)
    assert not fb.is_correct and fb.step == label
    assert formats.parse_feedback(fb.text) == fb
    fixed = TASK.improve(question, attempt, fb)
    assert TASK.feedback(question, fixed).is_correct
    assert TASK.parse_answer(fixed) == answer
    a_steps, f_steps = formats.parse_steps(attempt), formats.parse_steps(fixed)
    k = [s.label for s in a_steps].index(label)
    assert f_steps[:k] == a_steps[:k]  # the prefix before the wrong step is kept verbatim
    assert f_steps[k] != a_steps[k]


def test_every_corruption_kind_is_used():
    kinds = set()
    for i, (q, _) in enumerate(HANDWRITTEN * 3):
        attempt, label = TASK.corrupt(q, TASK.solve(q), random.Random(i))
        step = dict((s.label, s.text) for s in formats.parse_steps(attempt))[label]
        kinds.add("final" if label == "Final response" else
                  "according" if step.startswith("According") else
                  "combination" if step.startswith("Combining") else "statement")
    assert kinds == {"final", "according", "combination", "statement"}


_LINE = st.one_of(
    st.text(max_size=60),
    st.builds(lambda lab, t: f"({lab}) {t}", st.sampled_from(["1", "2", "3", "4", "9", "2.1", "Final response"]),
              st.text(max_size=60)),
    st.sampled_from(['(1) The white book is the leftmost: "(left) white ?? (right)".',
                     '(2) Combining (1) and (9) we get the following ordering: "(right) ?? green (left)".',
                     "(3) There are in total 3 books: white, green, and orange.",
                     "(4) According to this ordering, the book that is the leftmost is the white book.",
                     '(5) Combining (1) we get the following ordering: "(left) ?? ? ?? white ?? white (right)".',
                     "(Final response) So The answer is (Z).", "(Final response) So the answer is (a)."]),
)


@settings(max_examples=100, deadline=None)
@given(st.lists(_LINE, max_size=8))
def test_parsers_never_raise(lines):
    text = "\n".join(lines)
    assert TASK.parse_answer(text) in (None, "A", "B", "C", "D", "E", "F", "G")
    q = HANDWRITTEN[0][0]
    try:
        fb = TASK.feedback(q, text)
    except ValueError:
        assert not any(formats.parse_step(x) for x in lines)
        return
    assert formats.parse_feedback(fb.text) is not None
    fixed = TASK.improve(q, text, fb)
    assert TASK.feedback(q, fixed).is_correct
    for bad in (text, "Q: " + text + "\nOptions:\n(A) x"):
        try:
            TASK.solve(bad)
        except ValueError:
            pass
        try:
            TASK.bucket_of(bad)
        except ValueError:
            pass


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_questions(), st.integers(0, 10**6))
def test_random_edits_never_crash_and_improve_fixes(qa, seed):
    question, answer = qa
    rng = random.Random(seed)
    steps = formats.parse_steps(TASK.solve(question))
    op = rng.randrange(4)
    i = rng.randrange(len(steps))
    if op == 0:  # drop a step
        steps = steps[:i] + steps[i + 1:]
    elif op == 1:  # swap two steps' texts
        j = rng.randrange(len(steps))
        steps[i], steps[j] = formats.Step(steps[i].label, steps[j].text), formats.Step(steps[j].label, steps[i].text)
    elif op == 2:  # rename an object mention
        words = steps[i].text.split()
        w = rng.randrange(len(words))
        words[w] = rng.choice(["white", "Ana", "owl", "bus", "apples", "??", "?", "(left)"])
        steps[i] = formats.Step(steps[i].label, " ".join(words))
    else:  # truncate
        steps = steps[: i + 1]
    attempt = formats.join_steps(steps) if steps else "(1) nothing"
    fb = TASK.feedback(question, attempt)
    fixed = TASK.improve(question, attempt, fb)
    assert TASK.feedback(question, fixed).is_correct
    assert TASK.parse_answer(fixed) == answer
