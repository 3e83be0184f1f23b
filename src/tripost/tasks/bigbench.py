"""Read real BIG-Bench data: BIG-Bench-Hard files and BIG-Bench `task.json` files.

BBH:        {"examples": [{"input": "...", "target": "..."}]}
BIG-Bench:  {"examples": [{"input": "...", "target": "..."}]}  or, for multiple choice,
            {"examples": [{"input": "...", "target_scores": {"option text": 0 | 1, ...}}]}
Each item's bucket and split are read from the question itself (Task.from_bigbench).
"""

from __future__ import annotations

import json
import random
import warnings
from pathlib import Path

from tripost.tasks.base import Example


def _items(data) -> list[dict]:
    if isinstance(data, dict) and isinstance(data.get("examples"), list):
        return data["examples"]
    if isinstance(data, list):
        return data
    raise ValueError('expected {"examples": [...]} (BIG-Bench / BBH) or a list of items')


def _target_and_choices(item: dict) -> tuple[str, list[str] | None]:
    if "target_scores" in item:
        scores = item["target_scores"]
        if not isinstance(scores, dict) or not all(isinstance(c, str) for c in scores):
            raise ValueError(f"'target_scores' must map option texts to scores, got {type(scores).__name__}")
        choices = list(scores)
        right = [c for c, s in scores.items() if s]
        if len(right) != 1:
            raise ValueError(f"expected exactly one right option, got {len(right)}")
        return right[0], choices
    target = item.get("target")
    if isinstance(target, list):  # BIG-Bench allows several acceptable targets; take the first
        target = target[0] if target else None
    if not isinstance(target, str):
        raise ValueError("item has neither a string 'target' nor 'target_scores'")
    return target, None


def load_bigbench(path, task_name: str, strict: bool = False, options: dict | None = None) -> list[Example]:
    """All items of `path` the task can read and solve, as Examples.

    Items the task cannot handle are skipped with one warning that counts them (the date solver
    abstains by design); `strict=True` raises on the first one instead. `options` are the task's
    (params `per_task.<task>.data.options`; e.g. date understanding's `option_letters`).
    """
    from tripost.tasks import get_task

    task = get_task(task_name, **(options or {}))
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"BIG-Bench file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text: {e}") from None
    except (json.JSONDecodeError, RecursionError) as e:
        raise ValueError(f"{path} is not valid JSON: {type(e).__name__}: {str(e)[:200]}") from None
    try:
        items = _items(data)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    examples, skipped, repeated = [], [], 0
    questions: set[str] = set()
    rng = random.Random(42)
    for i, item in enumerate(items):
        try:
            if not isinstance(item, dict) or not isinstance(item.get("input"), str):
                raise ValueError("item has no string 'input'")
            target, choices = _target_and_choices(item)
            if choices and task.shuffle_bigbench_choices:
                rng.shuffle(choices)
            if item["input"].strip() in questions:  # a repeated item would land in two splits
                repeated += 1
                continue
            ex = task.from_bigbench(item["input"], target, choices)
        except ValueError as e:
            if strict:
                raise ValueError(f"{path} item {i}: {e}") from e
            skipped.append((i, str(e)))
            continue
        questions.add(item["input"].strip())
        examples.append(ex)
    if skipped:
        first = "; ".join(f"item {i}: {msg}" for i, msg in skipped[:3])
        warnings.warn(f"{path}: skipped {len(skipped)} of {len(items)} items ({first} ...)")
    if repeated:
        warnings.warn(f"{path}: {repeated} repeated items (same question) kept once")
    return examples
