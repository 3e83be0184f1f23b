"""params.yaml is the single source of truth; this reads it and resolves per-task overrides."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml


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
    return params


class Section(dict):
    """A params section: reading a setting it does not hold names the setting (no value is made up)."""

    name = ""

    def __missing__(self, key):
        raise KeyError(f"{self.name}.{key} is not set: params.yaml holds every setting's value")


def section(params: dict, name: str, task: str | None = None) -> Section:
    """`params[name]` with the task's overrides `params["per_task"][task][name]` merged over it (deep)."""
    if name not in params:
        raise KeyError(f"params.yaml has no section {name!r}")
    base = copy.deepcopy(params[name])
    if task is not None:
        base = deep_merge(base, ((params.get("per_task") or {}).get(task) or {}).get(name) or {})
    out = Section(base)
    out.name = name
    return out


def deep_merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in (override or {}).items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out
