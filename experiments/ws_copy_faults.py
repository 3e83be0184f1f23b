"""Word sorting: planted mistakes that look like the from-scratch model's own.

`WordSorting.corrupt` plants a wrong letter or number, a dropped word, a swapped ordering or a wrong
"Hence"/final line. M0's own greedy mistakes are mostly *copying* errors that it never plants (the
error census in docs/research.md: a word listed twice while another is left out, 59%; a word that is
not in the list, 15%; an ordering whose numbers step (1) did not give, 17%; a number listed twice in
an ordering, 5%). This module plants those, in a chosen mix, carried forward by the later steps as
`corrupt` does, so that retry data can be built at any scale without generating from a model.

    corrupt_like_m0(task, question, rng)  ->  (attempt, label of the planted step)
"""

from __future__ import annotations

import random
from dataclasses import replace

from tripost import formats
from tripost.tasks import word_sorting as ws

# first-wrong-step reasons of 4,429 edited M0 attempts (docs/research.md), grouped by the fault that
# reproduces each; "other" keeps the task's own faults for the remaining few percent
M0_MIX = {"double": 0.59, "alien": 0.15, "renumber": 0.17, "renumber_dup": 0.05, "other": 0.04}


class _CopyFault(ws._Fault):
    """A `_Fault` with the copying errors: `vocabulary` is where an alien word comes from."""

    def __init__(self, at: int, kind: str, rng: random.Random, vocabulary: tuple):
        super().__init__(at, kind, rng)
        self.vocabulary = vocabulary

    def apply(self, g):
        rng = self.rng
        if self.kind == "double":  # item i is replaced by a copy of item j
            items = list(g.items)
            i, j = rng.sample(range(len(items)), 2)
            items[i] = items[j]
            return replace(g, items=tuple(items))
        if self.kind == "alien":  # item i is replaced by a word that is not in the list
            items = list(g.items)
            i = rng.randrange(len(items))
            present = {w for w, _, _ in items}
            w = rng.choice([v for v in self.vocabulary if v not in present])
            c = ws.letter(w, g.k)
            items[i] = (w, c, ws.number(c))
            return replace(g, items=tuple(items))
        if self.kind in ("renumber", "renumber_dup"):  # an ordering entry with a number step (1) did not give
            entries = list(g.entries)
            i = rng.randrange(len(entries))
            n, words = entries[i]
            taken = {m for m, _ in entries}
            if self.kind == "renumber_dup" and len(entries) > 1:
                n2 = rng.choice([m for m in taken if m != n])
            else:
                n2 = rng.choice([m for m in range(1, 27) if m not in taken and abs(m - n) <= 3] or [n + 1])
            entries[i] = (n2, words)
            return replace(g, entries=tuple(entries))
        return super().apply(g)


def _sites(steps, kind: str) -> list[int]:
    if kind == "double":
        return [i for i, g in enumerate(steps) if g.kind in ("first", "subpart") and len(g.items) > 1]
    if kind == "alien":
        return [i for i, g in enumerate(steps) if g.kind == "first"]
    if kind == "renumber":
        return [i for i, g in enumerate(steps) if g.kind == "order"]
    if kind == "renumber_dup":
        return [i for i, g in enumerate(steps) if g.kind == "order" and len(g.entries) > 1]
    return []


def corrupt_like_m0(task, question: str, rng: random.Random, mix: dict | None = None) -> tuple[str, str]:
    """One planted mistake drawn from `mix` (default: M0's observed error mix); falls back to the
    task's own `corrupt` for "other" or where the drawn kind has no site in this question."""
    mix = mix or M0_MIX
    words = tuple(ws.parse_words(question))
    gold = ws._gold(words)
    kind = rng.choices(sorted(mix), weights=[mix[k] for k in sorted(mix)])[0]
    sites = _sites(gold, kind)
    if not sites:
        return task.corrupt(question, formats.join_steps([g.step for g in gold]), rng)
    fault = _CopyFault(rng.choice(sites), kind, rng, task.words)
    steps = ws._Builder(fault).build(words)
    return formats.join_steps([g.step for g in steps]), steps[fault.at].label
