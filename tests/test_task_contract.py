"""The Task protocol, checked once for every registered task (and the small running-sums task the tests
use): a task added to the registry is held to the same contract the day it is registered."""

from __future__ import annotations

import random

import pytest

from tripost import formats
from tripost.tasks import TASK_NAMES, get_task, registered_tasks, task_class, task_label

TASKS = registered_tasks()


@pytest.fixture(params=TASKS)
def task(request):
    return get_task(request.param)


def test_the_registry_finds_every_task_module_and_names_an_unknown_one_in_one_line(tmp_path):
    assert TASKS[:4] == TASK_NAMES and "running_sums" in TASKS
    for name in TASKS:
        cls = task_class(name)
        assert cls.name == name and task_label(name) == cls.label != ""
    with pytest.raises(ValueError, match=r"^unknown task 'no_such_task': no module src/tripost/tasks/no_such_task\.py"):
        get_task("no_such_task")
    with pytest.raises(ValueError, match="unknown task 'base'"):
        get_task("base")
    assert task_label("no_such_task") == "no_such_task"


def _examples(task, split="seen", n=6, seed=3):
    return task.generate(n, split, seed=seed)


def test_generation_is_deterministic_balanced_and_labelled(task):
    for split in ("seen", "unseen"):
        a, b = _examples(task, split), _examples(task, split)
        assert a == b and len(a) == 6
        assert {e.split for e in a} == {split}
        assert {e.bucket for e in a} <= set(task.default_buckets[split])
        for e in a:
            assert task.split_of(e.bucket) == split
    with pytest.raises(ValueError):
        task.generate(2, "train", seed=0)


def test_gold_rationale_is_well_formed_judged_correct_and_answers_the_question(task):
    for e in _examples(task) + _examples(task, "unseen"):
        steps = formats.parse_steps(e.rationale)
        assert steps[-1].label == formats.FINAL_LABEL
        assert task.solve(e.question) == e.rationale
        assert task.is_correct(task.parse_answer(e.rationale), e.answer)
        fb = task.feedback(e.question, e.rationale)
        assert fb.is_correct and formats.parse_feedback(fb.text) == fb
        assert task.gold_text(e) == f"{task.prompt(e.question)}\n{e.rationale}"


def test_a_planted_mistake_is_located_and_fixed_with_the_prefix_kept(task):
    rng = random.Random(0)
    planted = 0
    for e in _examples(task, n=8):
        attempt, label = task.corrupt(e.question, e.rationale, rng)
        if attempt == e.rationale:
            continue
        planted += 1
        fb = task.feedback(e.question, attempt)
        assert not fb.is_correct and fb.step == label, (attempt, fb.text)
        parsed = formats.parse_feedback(fb.text)
        assert parsed is not None and parsed.step == fb.step and not parsed.is_correct
        fixed = task.improve(e.question, attempt, fb)
        assert task.feedback(e.question, fixed).is_correct
        assert task.is_correct(task.parse_answer(fixed), e.answer)
        labels = [s.label for s in formats.parse_steps(attempt)]
        keep = labels.index(fb.step)
        assert formats.parse_steps(fixed)[:keep] == formats.parse_steps(attempt)[:keep]  # prefix verbatim
    assert planted >= 4


@pytest.mark.parametrize("junk", ["", "\n\n", "So the answer is", "(Final response) ???", "Q: x\n" * 50,
                                  "\x00\udcff garbage", "(1) " + "a" * 5000])
def test_parse_answer_never_raises(task, junk):
    task.parse_answer(junk)


def test_prompt_carries_the_task_info(task):
    e = _examples(task, n=1)[0]
    p = task.prompt(e.question)
    assert p.startswith(f"Q: {e.question}\n{formats.ANSWER_HEADER}") and p.endswith(task.info or "step.")


def _mangle(rationale: str, rng: random.Random) -> str:
    """A model-like broken attempt: lines dropped, cut, repeated or with noise typed into them."""
    rows = rationale.splitlines()
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(rows))
        action = rng.choice(["delete", "cut", "insert", "duplicate"])
        if action == "delete" and len(rows) > 1:
            del rows[i]
        elif action == "cut":
            rows[i] = rows[i][: rng.randint(0, len(rows[i]))]
        elif action == "insert":
            pos = rng.randint(0, len(rows[i]))
            rows[i] = rows[i][:pos] + "".join(rng.choice('"()[]<=?.:, 0123abc') for _ in range(rng.randint(1, 6))) \
                + rows[i][pos:]
        else:
            rows.insert(i, rows[i])
    return "\n".join(rows)


def test_feedback_and_improve_hold_on_mangled_attempts(task):
    """What the interaction relies on, for any attempt a model may write: FBK refuses an attempt without a
    step line (ValueError) and otherwise returns a verdict whose sentence parses back; IMP turns a
    "wrong" verdict into an attempt FBK accepts."""
    rng = random.Random(11)
    wrong = 0
    for e in _examples(task, n=6) + _examples(task, "unseen", n=4):
        for _ in range(12):
            attempt = _mangle(e.rationale, rng)
            if not any(formats.parse_step(line) for line in attempt.splitlines()):
                with pytest.raises(ValueError):
                    task.feedback(e.question, attempt)
                continue
            fb = task.feedback(e.question, attempt)
            assert formats.parse_feedback(fb.text) is not None, fb.text
            if fb.is_correct:
                continue
            wrong += 1
            fixed = task.improve(e.question, attempt, fb)
            assert task.feedback(e.question, fixed).is_correct, (attempt, fb.text, fixed)
    assert wrong >= 30


def test_imp_starts_at_the_first_wrong_step_even_when_the_feedback_points_later(task):
    """The IMP rule (`Task.rewrite_from`), one for every task: a feedback naming a step after the
    attempt's first error (as an LLM's may) still gets a correct rewrite that keeps the steps before
    that first error verbatim; FBK's own step is never rewritten from later than it says."""
    rng = random.Random(5)
    checked = 0
    for e in _examples(task, n=10):
        attempt, label = task.corrupt(e.question, e.rationale, rng)
        steps = formats.parse_steps(attempt)
        labels = [s.label for s in steps]
        first = labels.index(label)
        if attempt == e.rationale or first >= len(steps) - 1:
            continue
        last = steps[-1]
        late = task.wrong_step(steps, last.label, last.text, "a late verdict")
        fixed = task.improve(e.question, attempt, late)
        assert task.feedback(e.question, fixed).is_correct, (attempt, fixed)
        assert formats.parse_steps(fixed)[:first] == steps[:first]
        checked += 1
    assert checked >= 3
