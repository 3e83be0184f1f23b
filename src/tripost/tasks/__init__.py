"""The four BIG-Bench worlds. `get_task(name)` returns a Task (see tasks/base.py)."""

from __future__ import annotations

import importlib

from tripost.formats import Feedback
from tripost.tasks.base import SPLITS, Example, Task

TASK_NAMES = ("multistep_arithmetic", "word_sorting", "date_understanding", "logical_deduction")

_CLASSES = {
    "multistep_arithmetic": "MultistepArithmetic",
    "word_sorting": "WordSorting",
    "date_understanding": "DateUnderstanding",
    "logical_deduction": "LogicalDeduction",
}


def get_task(name: str, **options) -> Task:
    """The task `name`; `options` are its generator settings (params.yaml `data.per_task.<task>.options`,
    e.g. word_sorting's `vocabulary_size`)."""
    if name not in _CLASSES:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASK_NAMES)}")
    module = importlib.import_module(f"tripost.tasks.{name}")
    cls = getattr(module, _CLASSES[name])
    try:
        return cls(**options)
    except TypeError as e:
        raise ValueError(f"{name}: unsupported task options {sorted(options)} ({e})") from None


def task_from_params(params: dict, name: str) -> Task:
    """The task `name` with its generator options from params (`data.per_task.<name>.options`): the one
    way a stage builds its task, so every stage (and the LLM's few-shot prompts) sees the same world as
    the data it reads - e.g. date understanding's bare-date options when `option_letters: false`."""
    from tripost.params import section

    options = (section(params, "data", name).get("options") or {}) if "data" in params else {}
    return get_task(name, **options)


def load_bigbench(path, task_name: str, strict: bool = False, options: dict | None = None) -> list[Example]:
    """Examples from a BIG-Bench-Hard or BIG-Bench task.json file (see tasks/bigbench.py)."""
    from tripost.tasks.bigbench import load_bigbench as _load

    return _load(path, task_name, strict=strict, options=options)


__all__ = ["Example", "Feedback", "SPLITS", "TASK_NAMES", "Task", "get_task", "load_bigbench", "task_from_params"]
