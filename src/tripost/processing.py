"""Data post-processing (docs/method.md §3): trajectories -> weighted training records.

Per collection pass:
  - dropped trajectories are counted by filter (1-6, 8 of docs/method.md §3.1, decided in interaction);
  - turn conversion (docs/method.md §3.2): an edited / self-improved trajectory [a1, f1, ..., aK, fK]
    gives one *improvement* example per (a_i, f_i, a_{i+1}) and one *final_correct* example (a_K + its
    'correct' feedback); a direct-correct attempt gives a *direct_correct* example; a non-progressing
    chain gives a *truncated* example (a_i + FBK's error feedback, filter 7);
  - exact-text duplicates are dropped across passes (filter 9; gold examples among themselves), then
    records over the token cap (filter 10);
  - rebalancing (docs/method.md §3.4): all improvement examples + a sample of ceil(n_imp / r) others;
    r <= 0 keeps everything (the paper's TriPosT-auto).
After all passes, gold examples (gold rationale + 'correct' feedback) for the pool's questions, as many
as the sampled others (so improvement : other : gold = r : 1 : 1), and a final shuffle.

`processing.layout: split` (a deviation, docs/method.md §3.6) then rewrites every selected turn record
into records that each train one decision, the judged attempt in the (masked) prompt: a *verify_wrong* /
*verify_right* record (attempt + `Feedback:` in the prompt, the feedback line trained) and, for an
improvement, a *revision* record (attempt + feedback + `Updated Answer:` header in the prompt, the next
attempt trained). Gold records stay as they are. Split records are never `weighted`; training refuses
them unless the prompt is masked (`tripost.training`).

Records: {"prompt": "Q: ...\\nAnswer: Let's think step by step.[ info]", "completion": "\\n...",
"weighted": bool, "kind": improvement | final_correct | truncated | direct_correct | gold} (split layout:
verify_wrong | verify_right | revision | gold).
weighted = the loss weight applies from the first "\\nFeedback:" (docs/method.md §4.2): True for turn
examples (improvement, final_correct, truncated); False for gold and the model's own direct-correct answers.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from typing import Callable

from tripost import formats
from tripost.interaction import FILTERS

KINDS = ("improvement", "final_correct", "truncated", "direct_correct", "gold")
SPLIT_KINDS = (*formats.JUDGED_ATTEMPT_KINDS, "gold")
WEIGHTED = {"improvement": True, "final_correct": True, "truncated": True, "direct_correct": False, "gold": False,
            "verify_wrong": False, "verify_right": False, "revision": False}
LAYOUTS = ("paper", "split")
FEEDBACK = f"\n{formats.FEEDBACK_TAG}"  # the cue before every verdict


def _record(prompt: str, completion: str, kind: str) -> dict:
    return {"prompt": prompt, "completion": completion, "weighted": WEIGHTED[kind], "kind": kind}


def turn_records(task, row: dict) -> list[dict]:
    """The training records of one kept trajectory row (docs/method.md §3.2); [] for a dropped one."""
    status = row["status"]
    if status == "dropped":
        return []
    q, atts, fbs = row["question"], row["attempts"], row["feedbacks"]
    prompt = task.prompt(q)
    if status in ("direct_correct", "truncated"):
        return [_record(prompt, f"\n{atts[0]}\nFeedback: {fbs[0]}", status)]
    header = formats.answer_header(task.info, updated=True)
    out = []
    for i in range(len(atts) - 1):
        out.append(_record(prompt, f"\n{atts[i]}\nFeedback: {fbs[i]}\n{header}\n{atts[i + 1]}", "improvement"))
    out.append(_record(prompt, f"\n{atts[-1]}\nFeedback: {fbs[-1]}", "final_correct"))
    return out


def gold_record(task, example) -> dict:
    steps = formats.parse_steps(example.rationale)
    fb = formats.correct_feedback_text(steps)
    return _record(task.prompt(example.question), f"\n{example.rationale}\nFeedback: {fb}", "gold")


def split_record(task, rec: dict) -> list[dict]:
    """One paper-layout record -> its split-layout records (see the module docstring); gold unchanged.

    improvement `\n{a}\nFeedback: {f}\n{header}\n{a'}` -> verify_wrong (prompt + a + `Feedback:` | ` f`)
    and revision (prompt + a + `Feedback: f` + header | `\n{a'}`); direct_correct / final_correct ->
    verify_right; truncated (FBK's error feedback, no revision) -> verify_wrong."""
    if rec["kind"] == "gold":
        return [rec]
    comp = rec["completion"]
    sep = f"{FEEDBACK} "
    if not comp.startswith("\n") or sep not in comp:
        raise ValueError(f"a {rec['kind']} record without an attempt and its feedback: {comp[:80]!r}")
    attempt, rest = comp[1:].split(sep, 1)
    context = f"{rec['prompt']}\n{attempt}{FEEDBACK}"
    if rec["kind"] != "improvement":
        return [_record(context, f" {rest}", "verify_wrong" if rec["kind"] == "truncated" else "verify_right")]
    header = f"\n{formats.answer_header(task.info, updated=True)}\n"
    if header not in rest:
        raise ValueError(f"an improvement record without its revision ({header.strip()!r}): {comp[:80]!r}")
    feedback, revision = rest.split(header, 1)
    return [_record(context, f" {feedback}", "verify_wrong"),
            _record(f"{context} {feedback}{header.rstrip()}", f"\n{revision}", "revision")]


def split_layout(task, records: list[dict]) -> tuple[list[dict], dict]:
    """Every record split (`split_record`), in order; a split record with the prompt and completion of an
    earlier one is dropped (an improvement and a truncated turn of one attempt give the same
    verify_wrong). Gold records all pass: a verify_right record of an attempt equal to the gold
    rationale has the same text but another trained part. -> (records, metrics)."""
    out, seen, dup = [], set(), 0
    for rec in records:
        for r in split_record(task, rec):
            key = (r["prompt"], r["completion"])
            if r["kind"] != "gold":
                if key in seen:
                    dup += 1
                    continue
                seen.add(key)
            out.append(r)
    kinds = Counter(r["kind"] for r in out)
    return out, {"layout": "split", "split_examples": {k: kinds.get(k, 0) for k in SPLIT_KINDS},
                 "split_duplicates": dup,
                 "revision_share": round(kinds.get("revision", 0) / len(out), 4) if out else 0.0}


def _text(rec: dict) -> str:
    return rec["prompt"] + rec["completion"]


def _n_other(n_imp: int, n_non: int, ratio: float) -> int:
    if ratio <= 0:
        return n_non
    return min(math.ceil(n_imp / ratio), n_non)


def _passes(rows: list[dict]) -> list[int]:
    return sorted({int(r["pass"]) for r in rows})


def collected_count(task, rows: list[dict], *, ratio: float) -> int:
    """How many non-gold examples processing would keep from `rows` (before the token cap): the
    quantity the collection compares with max_data_length (docs/method.md §3.5)."""
    seen: set[str] = set()
    total = 0
    for p in _passes(rows):
        imp, non = 0, 0
        for r in rows:
            if int(r["pass"]) != p:
                continue
            for rec in turn_records(task, r):
                t = _text(rec)
                if t in seen:
                    continue
                seen.add(t)
                if rec["kind"] == "improvement":
                    imp += 1
                else:
                    non += 1
        total += imp + _n_other(imp, non, ratio)
    return total


def process(task, rows: list[dict], pool: list, *, ratio: float, seed: int,
            max_tokens: int | None = None, count_tokens: Callable[[str], int] | None = None) -> tuple[list[dict], dict]:
    """Trajectory rows (interaction output) + the question pool -> (training records, metrics).

    `count_tokens(text)` (the small model's tokenizer, EOS not included) and `max_tokens` implement the
    token cap (filter 10); without a counter the cap is skipped. Deterministic for `seed`.
    """
    status = Counter(r["status"] for r in rows)
    filt = Counter(r["filter"] for r in rows if r["status"] == "dropped")
    counts = {k: 0 for k in FILTERS}
    for k, n in filt.items():
        counts[k] = n
    counts["no_progress"] = status.get("truncated", 0)
    made = Counter()
    seen: set[str] = set()
    selected: list[dict] = []
    n_other_total = 0
    rebalanced_out = Counter()

    def admit(rec: dict, seen: set[str]) -> bool:
        """Filters 9 (exact duplicate within `seen`) and 10 (over the token cap), counted."""
        made[rec["kind"]] += 1
        t = _text(rec)
        if t in seen:
            counts["duplicate"] += 1
            return False
        seen.add(t)
        if max_tokens is not None and count_tokens is not None and count_tokens(t) + 1 > max_tokens:  # + EOS
            counts["too_many_tokens"] += 1
            return False
        return True

    for p in _passes(rows):
        imp: list[dict] = []
        non: list[dict] = []
        for r in sorted((r for r in rows if int(r["pass"]) == p), key=lambda r: int(r["index"])):
            for rec in turn_records(task, r):
                if admit(rec, seen):
                    (imp if rec["kind"] == "improvement" else non).append(rec)
        n_non = _n_other(len(imp), len(non), ratio)
        rng = random.Random(f"tripost/rebalance/{seed}/{p}")
        keep = set(rng.sample(range(len(non)), n_non)) if n_non < len(non) else set(range(len(non)))
        sampled = [rec for i, rec in enumerate(non) if i in keep]
        for i, rec in enumerate(non):
            if i not in keep:
                rebalanced_out[rec["kind"]] += 1
        selected += imp + sampled
        n_other_total += n_non

    # Gold examples are deduplicated among themselves only: with a consistent feedback format, the
    # final attempt of an edited trajectory often equals the gold rationale; dropping those gold
    # examples would starve the gold share (the original's texts differed: "to (N)" vs "to step (N)").
    gold: list[dict] = []
    gold_seen: set[str] = set()
    for ex in pool:
        try:
            rec = gold_record(task, ex)
        except ValueError:
            continue
        if admit(rec, gold_seen):
            gold.append(rec)
    n_gold = min(n_other_total, len(gold))
    rng = random.Random(f"tripost/gold/{seed}")
    gold_sampled = rng.sample(gold, n_gold)
    records = selected + gold_sampled
    random.Random(f"tripost/shuffle/{seed}").shuffle(records)

    kinds = Counter(r["kind"] for r in records)
    n_imp = kinds.get("improvement", 0)
    metrics = {
        "task": task.name,
        "trajectories": len(rows),
        "direct_correct": status.get("direct_correct", 0),
        "self_improved": status.get("self_improved", 0),
        "needed_editing": sum(1 for r in rows if r.get("needed_editing")),
        "edited_successfully": sum(1 for r in rows if r.get("needed_editing") and r["status"] in ("edited", "truncated")),
        "dropped": status.get("dropped", 0),
        "filters": counts,
        "examples_made": {k: made.get(k, 0) for k in KINDS},
        "rebalanced_out": {k: rebalanced_out.get(k, 0) for k in KINDS if rebalanced_out.get(k)},
        "examples": {k: kinds.get(k, 0) for k in KINDS},
        "train_examples": len(records),
        "improvement_share": round(n_imp / len(records), 4) if records else 0.0,
        "improvement_ratio": ratio,
    }
    return records, metrics


def filter_table(metrics: dict) -> list[dict]:
    """One row per filter of docs/method.md §3.1 with its count (for the notebook)."""
    return [{"filter": FILTERS[k], "count": metrics["filters"].get(k, 0)} for k in FILTERS]


def run(task, rows: list[dict], pool: list, params: dict, out_dir, *, count_tokens=None,
        rebalance: bool = True) -> dict:
    """Process and write `<out_dir>/train.jsonl` and `<out_dir>/processing_metrics.json`.

    `rebalance=False` is TriPosT-auto: every example is kept, whatever `processing.improvement_ratio` says
    (the ratio is taken as -1)."""
    from pathlib import Path

    from tripost.io import write_json, write_jsonl
    from tripost.params import section

    cfg = section(params, "processing", task.name)
    icfg = section(params, "interaction", task.name)
    layout = cfg["layout"]
    if layout not in LAYOUTS:
        raise ValueError(f"processing.layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    ratio = float(cfg["improvement_ratio"]) if rebalance else -1.0
    records, metrics = process(task, rows, pool, ratio=ratio,
                               seed=int(params["seed"]),
                               max_tokens=cfg.get("max_tokens"), count_tokens=count_tokens)
    min_data = icfg["min_data_length"]
    metrics["min_data_length"] = min_data
    # counted in turn records, the unit of collection's max_data_length, whatever the layout
    metrics["enough_data"] = min_data is None or len(records) >= int(min_data)
    metrics["layout"] = layout
    if layout == "split":  # `examples` and `improvement_share` stay those of the selected turn records
        records, split_metrics = split_layout(task, records)
        metrics.update(split_metrics, train_examples=len(records))
    out_dir = Path(out_dir)
    write_jsonl(out_dir / "train.jsonl", records)
    write_json(out_dir / "processing_metrics.json", metrics)
    return metrics
