"""What every probe driver starts with: params, the task built with its data options, M0, the splits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tripost.io import read_jsonl
from tripost.params import load_params, section
from tripost.tasks import Example, Task, get_task


@dataclass
class Setup:
    params: dict
    task: Task
    m0: str
    out: Path
    train: list[Example]
    val: list[Example]
    test: list[Example]
    seen_buckets: list[str] | None


def setup(task_name: str, m0: str, out: str, params_file: str = "params.yaml") -> Setup:
    params = load_params(params_file)
    dcfg = section(params, "data", task_name)
    data = Path("data") / task_name
    split = {name: [Example.from_dict(r) for r in read_jsonl(data / f"{name}.jsonl")] for name in ("train", "val", "test")}
    Path(out).mkdir(parents=True, exist_ok=True)
    return Setup(params, get_task(task_name, **(dcfg.get("options") or {})), m0 or f"models/{task_name}/ft", Path(out),
                 split["train"], split["val"], split["test"], (dcfg.get("buckets") or {}).get("seen"))
