"""The task registry. A task is one module `tripost/tasks/<name>.py` defining one `Task` subclass whose
`name` is `<name>`; `get_task(name)` finds it there, so a new task needs no edit here
(docs/adding-a-task.md)."""

from __future__ import annotations

import importlib
import inspect

from tripost.formats import Feedback
from tripost.tasks.base import SPLITS, Example, Task

# The paper's four tasks, in the order the results table lists them.
TASK_NAMES = ("multistep_arithmetic", "word_sorting", "date_understanding", "logical_deduction")


def task_class(name: str) -> type[Task]:
    """The Task subclass registered as `name`: the one in module `tripost.tasks.<name>` whose `name` is it."""
    if not isinstance(name, str) or not name.isidentifier() or name in ("base", "bigbench"):
        raise ValueError(f"unknown task {name!r}; built in: {', '.join(TASK_NAMES)}")
    try:
        module = importlib.import_module(f"tripost.tasks.{name}")
    except ModuleNotFoundError as e:
        if e.name != f"tripost.tasks.{name}":
            raise
        raise ValueError(f"unknown task {name!r}: no module src/tripost/tasks/{name}.py "
                         f"(built in: {', '.join(TASK_NAMES)})") from None
    found = [c for _, c in inspect.getmembers(module, inspect.isclass)
             if issubclass(c, Task) and c is not Task and getattr(c, "name", None) == name]
    if len(found) != 1:
        raise ValueError(f"src/tripost/tasks/{name}.py must define exactly one Task subclass with "
                         f"name = {name!r}; it defines {len(found)}")
    return found[0]


def registered_tasks() -> tuple[str, ...]:
    """Every task the registry can build: the paper's four first, then the other task modules by name."""
    import pkgutil

    here = [m.name for m in pkgutil.iter_modules(__path__) if m.name not in ("base", "bigbench")]
    return TASK_NAMES + tuple(sorted(n for n in here if n not in TASK_NAMES))


def task_label(name: str) -> str:
    """The short name tables and figures show for a task (its class's `label`; the name itself if unknown)."""
    try:
        return task_class(name).label or name
    except ValueError:
        return name


def get_task(name: str, **options) -> Task:
    """The task `name`; `options` are its generator settings (params.yaml `per_task.<task>.data.options`,
    e.g. word_sorting's `vocabulary_size`)."""
    cls = task_class(name)
    try:
        return cls(**options)
    except TypeError as e:
        raise ValueError(f"{name}: unsupported task options {sorted(options)} ({e})") from None

def task_from_params(params: dict, name: str) -> Task:
    """The task `name` with its generator options from params (`per_task.<name>.data.options`): the one
    way a stage builds its task, so every stage (and the LLM's few-shot prompts) sees the same world as
    the data it reads - e.g. date understanding's bare-date options when `option_letters: false`."""
    from tripost.params import section

    options = (section(params, "data", name).get("options") or {}) if "data" in params else {}
    return get_task(name, **options)


def load_bigbench(path, task_name: str, strict: bool = False, options: dict | None = None) -> list[Example]:
    """Examples from a BIG-Bench-Hard or BIG-Bench task.json file (see tasks/bigbench.py)."""
    from tripost.tasks.bigbench import load_bigbench as _load

    return _load(path, task_name, strict=strict, options=options)


__all__ = ["Example", "Feedback", "SPLITS", "TASK_NAMES", "Task", "get_task", "load_bigbench", "registered_tasks", "task_class",
           "task_from_params", "task_label"]
