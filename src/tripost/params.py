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
    return params


def section(params: dict, name: str, task: str | None = None) -> dict:
    """`params[name]` with `params[name]["per_task"][task]` merged over it (deep), `per_task` removed."""
    if name not in params:
        raise KeyError(f"params.yaml has no section {name!r}")
    base = copy.deepcopy(params[name])
    overrides = base.pop("per_task", {}) or {}
    if task is not None and task in overrides:
        base = deep_merge(base, overrides[task])
    return base


def deep_merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in (override or {}).items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out
