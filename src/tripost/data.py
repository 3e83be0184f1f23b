"""Data preparation: train/val/test splits of one task, from the synthetic generator or a real
BIG-Bench file (docs/method.md §1.2). Train and val hold seen-bucket questions only; test holds both
splits."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

from tripost.io import read_jsonl, write_jsonl
from tripost.tasks import Example, get_task, load_bigbench

SPLIT_FILES = ("train", "val", "test")


def _unique(task, n: int, split: str, seed: int, buckets, exclude: set[str]) -> list[Example]:
    """n examples with questions not in `exclude` (generation may repeat on small buckets)."""
    out: list[Example] = []
    seen = set(exclude)
    for attempt in range(50):
        batch = task.generate(max(n - len(out), 1) * 2, split, seed=seed * 1000 + attempt, buckets=buckets)
        # keep the generator's bucket balance: interleave by bucket order as generated
        for ex in batch:
            if ex.question not in seen and len(out) < n:
                seen.add(ex.question)
                out.append(ex)
        if len(out) == n:
            return out
    raise ValueError(
        f"{task.name}: could only make {len(out)} distinct {split} questions of {n} asked "
        f"(buckets {buckets}); ask for fewer or use larger buckets"
    )


def synthetic_splits(task_name: str, cfg: dict) -> dict[str, list[Example]]:
    task = get_task(task_name, **(cfg.get("options") or {}))
    buckets = cfg.get("buckets") or {}
    seed = int(cfg["seed"])
    train = _unique(task, cfg["train_size"], "seen", seed + 1, buckets.get("seen"), set())
    val = _unique(task, cfg["val_size"], "seen", seed + 2, buckets.get("seen"), {e.question for e in train})
    used = {e.question for e in train + val}
    test_seen = _unique(task, cfg["test_seen_size"], "seen", seed + 3, buckets.get("seen"), used)
    used |= {e.question for e in test_seen}
    test_unseen = _unique(task, cfg["test_unseen_size"], "unseen", seed + 4, buckets.get("unseen"), used)
    return {"train": train, "val": val, "test": test_seen + test_unseen}


def bigbench_splits(task_name: str, path: str, cfg: dict) -> dict[str, list[Example]]:
    """Real data: seen items shuffled into test-seen, val and train (in that order); unseen -> test."""
    examples = load_bigbench(path, task_name, options=cfg.get("options"))
    rng = random.Random(int(cfg["seed"]))
    seen = [e for e in examples if e.split == "seen"]
    unseen = [e for e in examples if e.split == "unseen"]
    rng.shuffle(seen)
    n_test, n_val = cfg["test_seen_size"], cfg["val_size"]
    if len(seen) < n_test + n_val + 1:
        raise ValueError(f"{path}: {len(seen)} seen items cannot fill test ({n_test}) + val ({n_val}) + train")
    test = seen[:n_test] + unseen[: cfg["test_unseen_size"]]
    val = seen[n_test : n_test + n_val]
    train = seen[n_test + n_val :][: cfg["train_size"]]
    return {"train": train, "val": val, "test": test}


def prepare_task(task_name: str, cfg: dict, out_dir: str | Path) -> dict[str, list[Example]]:
    """Write data/<task>/{train,val,test}.jsonl atomically and return the splits."""
    source = cfg["source"]
    splits = synthetic_splits(task_name, cfg) if source == "synthetic" else bigbench_splits(task_name, source, cfg)
    out_dir = Path(out_dir)
    for name in SPLIT_FILES:
        write_jsonl(out_dir / f"{name}.jsonl", (e.to_dict() for e in splits[name]))
    return splits


def load_split(data_dir: str | Path, split: str) -> list[Example]:
    return [Example.from_dict(r) for r in read_jsonl(Path(data_dir) / f"{split}.jsonl")]


def summary(splits: dict[str, list[Example]]) -> list[dict]:
    """One row per (file, split, bucket) with its count: the table the data notebook shows."""
    counts = Counter((name, e.split, e.bucket) for name, exs in splits.items() for e in exs)
    return [
        {"file": f, "split": s, "bucket": b, "n": n}
        for (f, s, b), n in sorted(counts.items(), key=lambda kv: (SPLIT_FILES.index(kv[0][0]), kv[0][1], kv[0][2]))
    ]
