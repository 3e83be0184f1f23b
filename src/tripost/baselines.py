"""Baselines of the main table (docs/method.md §6), built from the same parts as TriPosT.

* **+ft SI. demo** — self-improvement demonstrations that are *not the model's own*: for every training
  question the gold rationale gets one planted mistake (`task.corrupt`, seeded), and that attempt is
  edited by the same FBK/IMP (`tripost.interaction.edit`) as a model prediction would be. The rows have
  the trajectories.jsonl schema (`interaction._row`), so `tripost.processing.run` turns them into
  records exactly as for TriPosT; the model is trained once from M0 with section weight 1.0 (the
  original's `self_improve_section_weight` default for this baseline). This stands in for the paper's
  LLM (Codex) demonstrations: the mistakes are plausible but not the small model's.
* **LMSI** (Huang et al., 2023) — `k` samples per training question from M0 at a high temperature;
  attempts that are gold-correct *and* judged correct by the task's FBK are kept, exact duplicates
  dropped, and the model is fine-tuned on them (unweighted SFT records) from M0. The paper's "direct
  answer" augmentation (`Q: ...\\nAnswer: So the answer is X.`) is optional (`baselines.lmsi.direct_answer`,
  off by default: it teaches a second, rationale-free answer format that the self-improving inference
  would then also have to parse).

Both are then trained once from M0 by the training notebook (`baseline=ft_si_demo|lmsi`), with
`train:` overridden for the baseline (`tripost.training.baseline_params`: section weight, `baselines.<method>.train`).
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Callable

from tripost import formats
from tripost.interaction import EditResult, clean_prediction, content_ok, edit, gold_ok, interaction_metrics, _row
from tripost.params import section

METHODS = ("tripost", "si_demo", "lmsi")


def baseline_config(params: dict, method: str, task_name: str | None = None) -> dict:
    """params `baselines.<method>` with `per_task.<task>.baselines.<method>` merged."""
    if method not in ("si_demo", "lmsi"):
        raise ValueError(f"baseline method must be si_demo or lmsi, got {method!r}")
    return dict(section(params, "baselines", task_name)[method])


# --------------------------------------------------------------------------------------------------
# + ft SI. demo


def _demo_rng(seed: int, p: int, idx: int) -> random.Random:
    return random.Random(f"tripost/si_demo/{seed}/{p}/{idx}")


def si_demo_trajectories(task, examples, backend, params: dict, seed: int | None = None, *,
                         passes: int | None = None) -> list[dict]:
    """One trajectories.jsonl row per (pass, training question): the gold rationale with one planted
    mistake, edited by `backend` (FBK/IMP) with the interaction settings of `params`. Deterministic for
    `seed`; pass p plants a different mistake (duplicates across passes are dropped by processing)."""
    icfg = section(params, "interaction", task.name)
    bcfg = baseline_config(params, "si_demo", task.name)
    seed = int(bcfg["seed"]) + int(params["seed"]) if seed is None else int(seed)  # the run seed shifts it
    passes = int(bcfg["passes"] if passes is None else passes)
    pool = list(examples)
    if icfg["pool_limit"]:
        pool = pool[: int(icfg["pool_limit"])]
    rows = []
    for p in range(passes):
        for idx, ex in enumerate(pool):
            try:
                attempt, _ = task.corrupt(ex.question, ex.rationale, _demo_rng(seed, p, idx))
            except (ValueError, NotImplementedError) as e:
                res = EditResult(status="dropped", filter="format", detail=f"no mistake planted: {e}")
                gen = {"prediction": "", "stop_reason": "si_demo"}
            else:
                gen = {"prediction": "\n" + attempt, "stop_reason": "si_demo"}
                res = edit(task, backend, ex.question, ex.answer, gen["prediction"],
                           max_rounds=int(icfg["max_rounds"]), max_attempt_words=int(icfg["max_attempt_words"]))
            rows.append(_row(task, p, idx, ex, gen, res))
    return rows


def run_si_demo(task, examples, backend, params: dict, out_dir) -> dict:
    """Write `<out_dir>/trajectories.jsonl`, `interaction_metrics.json` (same schema as TriPosT's
    interaction stage); returns the metrics."""
    from tripost.io import write_json, write_jsonl
    from tripost.processing import collected_count

    out_dir = Path(out_dir)
    rows = si_demo_trajectories(task, examples, backend, params)
    write_jsonl(out_dir / "trajectories.jsonl", rows)
    pcfg = section(params, "processing", task.name) if "processing" in params else {}
    metrics = interaction_metrics(rows, task=task.name, iteration=1)
    metrics.update({"method": "si_demo", "passes": len({r["pass"] for r in rows}), "pool_size": len(examples),
                    "collected_examples": collected_count(task, rows, ratio=float(pcfg["improvement_ratio"])),
                    "backend": backend.name, "llm": backend.metrics.to_dict()})
    write_json(out_dir / "interaction_metrics.json", metrics)
    return metrics


# --------------------------------------------------------------------------------------------------
# LMSI


def _default_generate(*args, **kwargs):
    from tripost.generation import generate

    return generate(*args, **kwargs)


def lmsi_records(task, examples, model, tokenizer, k: int, temperature: float, seed: int, *,
                 max_new_tokens: int, batch_size: int, top_p: float, backend=None,
                 direct_answer: bool = False, generate_fn: Callable | None = None,
                 progress: bool = False) -> tuple[list[dict], dict]:
    """k sampled attempts per question from M0 -> (SFT records, stats).

    Kept: a clean single attempt (no odd lines; anything after a self-written `Feedback:` is ignored)
    whose parsed answer is gold-correct, with valid content, that the FBK (`backend`, default the
    task's scripted checker) judges correct. Exact duplicate texts are dropped. Records:
    `{"prompt", "completion": "\\n" + attempt, "weighted": False, "kind": "lmsi"}`; with `direct_answer`
    also one `{"prompt": "Q: ...\\nAnswer:", "completion": " " + final response text, "kind":
    "lmsi_direct"}` per question with a kept attempt (docs/method.md §6).
    """
    from tripost.feedback import ScriptedBackend

    backend = backend or ScriptedBackend(task)
    generate_fn = generate_fn or _default_generate
    examples = list(examples)
    prompts = [task.prompt(e.question) for e in examples for _ in range(k)]
    gens = generate_fn(model, tokenizer, prompts, max_new_tokens=int(max_new_tokens), do_sample=True,
                       temperature=float(temperature), top_p=float(top_p), stop=["\nQ:", "\nFeedback:"],
                       batch_size=int(batch_size), seed=int(seed), progress=progress)
    if len(gens) != len(prompts):
        raise RuntimeError(f"generate_fn returned {len(gens)} generations for {len(prompts)} prompts")
    why = Counter()
    records, seen, direct_seen = [], set(), set()
    questions_kept = set()
    for i, g in enumerate(gens):
        e = examples[i // k]
        cleaned = clean_prediction(g.text)
        if cleaned is None:
            why["format"] += 1
            continue
        attempts, _ = formats.split_attempts(cleaned)
        attempt = attempts[0] if attempts else ""
        if not attempt.strip():
            why["format"] += 1
            continue
        if not gold_ok(task, attempt, e.answer):
            why["wrong"] += 1
            continue
        if not content_ok(task, e.question, attempt):
            why["invalid_content"] += 1
            continue
        fb = backend.feedback(e.question, attempt, gold_ok=True, content_ok=True)
        if fb is None or not fb.is_correct:
            why["fbk_rejects"] += 1
            continue
        rec = {"prompt": task.prompt(e.question), "completion": "\n" + attempt, "weighted": False, "kind": "lmsi"}
        text = rec["prompt"] + rec["completion"]
        if text in seen:
            why["duplicate"] += 1
            continue
        seen.add(text)
        records.append(rec)
        questions_kept.add(i // k)
        if direct_answer:
            final = formats.parse_steps(attempt)[-1].text
            drec = {"prompt": f"Q: {e.question}\nAnswer:", "completion": f" {final}", "weighted": False,
                    "kind": "lmsi_direct"}
            dtext = drec["prompt"] + drec["completion"]
            if dtext not in direct_seen:
                direct_seen.add(dtext)
                records.append(drec)
    stats = {
        "questions": len(examples), "k": k, "temperature": temperature, "samples": len(gens),
        "kept": sum(1 for r in records if r["kind"] == "lmsi"),
        "direct_answer_records": sum(1 for r in records if r["kind"] == "lmsi_direct"),
        "questions_with_kept_attempt": len(questions_kept),
        "rejected": {k_: why.get(k_, 0) for k_ in ("format", "wrong", "invalid_content", "fbk_rejects", "duplicate")},
        "sample_accuracy": (sum(1 for g, e in zip(gens, (examples[j // k] for j in range(len(gens))))
                                if gold_ok(task, formats.last_attempt(g.text) or g.text, e.answer)) / len(gens))
        if gens else 0.0,
    }
    return records, stats


def run_lmsi(task, examples, model, tokenizer, params: dict, out_dir, *, generate_fn=None, progress=False) -> dict:
    """Sample M0 and write `<out_dir>/train.jsonl` (records for the training notebook, mode "tripost"),
    `<out_dir>/lmsi_metrics.json`; returns the metrics."""
    from tripost.feedback import make_backend
    from tripost.io import write_json, write_jsonl

    cfg = baseline_config(params, "lmsi", task.name)
    icfg = section(params, "interaction", task.name) if "interaction" in params else {}
    pool = list(examples)
    if cfg["pool_limit"]:
        pool = pool[: int(cfg["pool_limit"])]
    backend = make_backend(task, params) if "feedback_backend" in params else None
    try:
        records, stats = lmsi_records(
            task, pool, model, tokenizer, int(cfg["k"]), float(cfg["temperature"]),
            seed=int(cfg["seed"]) + int(params["seed"]),
            max_new_tokens=int(cfg["max_new_tokens"] or icfg["max_new_tokens"]),
            batch_size=int(cfg["batch_size"] or icfg["batch_size"]), top_p=float(cfg["top_p"]),
            backend=backend, direct_answer=bool(cfg["direct_answer"]), generate_fn=generate_fn,
            progress=progress)
    finally:
        if backend is not None:
            backend.close()
    random.Random(f"tripost/lmsi/shuffle/{params.get('seed', 0)}").shuffle(records)
    out_dir = Path(out_dir)
    write_jsonl(out_dir / "train.jsonl", records)
    metrics = {"task": task.name, "method": "lmsi", **stats, "train_examples": len(records)}
    write_json(out_dir / "lmsi_metrics.json", metrics)
    return metrics
