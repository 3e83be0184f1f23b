"""params.yaml is the single source of truth; this reads it and resolves per-task overrides."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import yaml

# Set to a file path, every params setting a process reads is appended there once, with the DVC stage
# reading it (DVC sets DVC_STAGE): the tests compare these reads with what dvc.yaml declares.
TRACE_ENV = "TRIPOST_PARAMS_TRACE"
_traced: set[tuple[str, str]] = set()


def _record(key: str) -> None:
    path = os.environ.get(TRACE_ENV)
    if not path:
        return
    stage = os.environ.get("DVC_STAGE", "")
    if (stage, key) not in _traced:
        _traced.add((stage, key))
        with open(path, "a") as f:
            f.write(json.dumps({"stage": stage, "key": key}) + "\n")


def _reading_all(name: str):
    """dict's method `name`, recording that the whole mapping was read."""
    method = getattr(dict, name)

    def read_all(self, *args):
        self._all()
        return method(self, *args)

    return read_all


class _Traced(dict):
    """A mapping that records which of its settings are read: one key (`[]`, `get`, `in`) or all of
    them (iterated, copied, spread or serialised)."""

    prefix = ""

    def _key(self, key) -> str:
        return f"{self.prefix}.{key}" if self.prefix else str(key)

    def __getitem__(self, key):
        if dict.__contains__(self, key):
            _record(self._key(key))
        return dict.__getitem__(self, key)

    def get(self, key, default=None):
        if dict.__contains__(self, key):
            _record(self._key(key))
        return dict.get(self, key, default)

    def _all(self):
        _record(self.prefix or "*")

    # iterating, listing, copying, spreading, dumping or deep-copying reads every setting
    __iter__ = _reading_all("__iter__")
    items = _reading_all("items")
    values = _reading_all("values")
    keys = _reading_all("keys")
    copy = _reading_all("copy")
    __reduce_ex__ = _reading_all("__reduce_ex__")


def load_params(path: str | Path = "params.yaml") -> dict:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run from the repository root or pass params_file")
    with path.open() as f:
        params = yaml.safe_load(f)
    if not isinstance(params, dict):
        raise ValueError(f"{path} must hold a mapping at top level")
    from tripost.config import check

    check(params, str(path))  # unknown keys and wrong types fail here, naming the key
    missing = [t for t in params.get("tasks") or [] if t not in (params.get("per_task") or {})]
    if missing:  # DVC reads `per_task.<task>` for every stage of the task: the key must exist
        raise ValueError(f"{path}: per_task.{missing[0]} is missing: every task in `tasks` needs a block "
                         f"under per_task (`{missing[0]}: {{}}` when it has no overrides)")
    return _Traced(params) if os.environ.get(TRACE_ENV) else params


class Section(_Traced):
    """A params section: reading a setting it does not hold names the setting (no value is made up)."""

    name = ""
    task: str | None = None
    shared: frozenset = frozenset()  # the keys params[name] holds (others come from per_task.<task>.<name>)

    def _key(self, key) -> str:
        if self.task is not None and key not in self.shared:
            return f"per_task.{self.task}.{self.name}.{key}"
        return super()._key(key)

    def __getitem__(self, key):
        if not dict.__contains__(self, key):
            raise KeyError(f"{self.name}.{key} is not set: params.yaml holds every setting's value")
        return super().__getitem__(key)


def section(params: dict, name: str, task: str | None = None) -> Section:
    """`params[name]` with the task's overrides `params["per_task"][task][name]` merged over it (deep)."""
    if not dict.__contains__(params, name):
        raise KeyError(f"params.yaml has no section {name!r}")
    base = copy.deepcopy(dict.__getitem__(params, name))
    if task is not None:
        _record(f"per_task.{task}.{name}")
        per_task = dict.get(params, "per_task") or {}
        base = deep_merge(base, (per_task.get(task) or {}).get(name) or {})
    if not isinstance(base, dict):  # a scalar setting read as a section
        _record(name)
        return base
    out = Section(base)
    out.name = out.prefix = name
    out.task, out.shared = task, frozenset(dict.__getitem__(params, name) or {})
    return out


def with_section(params: dict, name: str, values: dict) -> dict:
    """`params` with section `name` deep-merged with `values`; the other sections are shared, not read
    (reading the result is traced like reading `params`)."""
    out = type(params)(dict.items(params))
    dict.__setitem__(out, name, deep_merge(dict.__getitem__(params, name), values))
    return out


def deep_merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in (override or {}).items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out
