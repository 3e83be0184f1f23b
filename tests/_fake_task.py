"""Test doubles around the running-sums task (tripost/tasks/running_sums.py): `AddTask` is that task under
the name the pure-logic tests use, `fake_model_generate` a deterministic stand-in for the small model."""

from __future__ import annotations

import random
from dataclasses import dataclass

from tripost.tasks.running_sums import RunningSums, numbers  # noqa: F401 - re-exported for the tests


class AddTask(RunningSums):
    name = "fake_add"


@dataclass
class Gen:
    """Stands in for tripost.generation.Generation (avoids importing torch in pure-logic tests)."""

    text: str
    stop_reason: str = "eos"
    num_tokens: int = 0


def fake_model_generate(task, kinds=("gold", "wrong", "wrong", "junk", "wrong2")):
    """A deterministic stand-in for `generate`: per prompt (question), an answer of a kind chosen by
    hashing the question and the seed: the gold rationale, a corrupted one, or a junk line."""
    import hashlib

    def generate_fn(model, tokenizer, prompts, *, max_new_tokens, do_sample=False, temperature=1.0, top_p=1.0,
                    stop=None, batch_size=32, seed=0, progress=False):
        out = []
        for p in prompts:
            q = p[3:].split("\nAnswer: Let's think step by step.")[0]
            h = int(hashlib.sha256(f"{q}/{seed}".encode()).hexdigest()[:8], 16)
            kind = kinds[h % len(kinds)]
            gold = task.solve(q)
            if kind == "gold":
                text = "\n" + gold
            elif kind == "junk":
                text = "\n(1) Let's calculate\nsomething odd"
            else:
                att, _ = task.corrupt(q, gold, random.Random(h))
                if kind == "wrong2":  # also a wrong final answer
                    lines = att.split("\n")
                    lines[-1] = "(Final response) So the answer is 999."
                    att = "\n".join(lines)
                text = "\n" + att
            out.append(Gen(text, "eos", len(text)))
        return out

    return generate_fn
