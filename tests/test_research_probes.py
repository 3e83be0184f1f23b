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
