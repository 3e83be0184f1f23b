"""Evaluation of the small model. `greedy_accuracy`: a plain greedy answer (one attempt, no
self-improvement), scored per bucket and aggregated as seen / unseen / total (docs/method.md §5.2)."""

from __future__ import annotations

from collections import defaultdict

from tripost.formats import FEEDBACK_TAG
from tripost.generation import generate
from tripost.stats import bootstrap_interval, paired_difference  # noqa: F401 (paired_difference re-exported)

# A plain answer ends before any self-feedback the model may go on to write.
PLAIN_ANSWER_STOP = ["\n" + FEEDBACK_TAG]


def _frac(xs: list[bool]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def greedy_accuracy(model, tokenizer, task, examples, *, max_new_tokens: int, batch_size: int,
                    progress: bool = False) -> dict:
    """Greedy single-attempt accuracy on `examples` (tripost.tasks.Example).

    Returns {"seen", "unseen", "total": fraction or None when the split is empty,
    "buckets": {bucket: fraction}, "n": {...counts...}, "predictions": [per-example dicts]}.
    """
    examples = list(examples)
    prompts = [task.prompt(e.question) for e in examples]
    gens = generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, stop=PLAIN_ANSWER_STOP,
                    batch_size=batch_size, progress=progress)
    preds = []
    by_split: dict[str, list[bool]] = defaultdict(list)
    by_bucket: dict[str, list[bool]] = defaultdict(list)
    for e, g in zip(examples, gens):
        pred = task.parse_answer(g.text)
        ok = bool(task.is_correct(pred, e.answer))
        by_split[e.split].append(ok)
        by_bucket[e.bucket].append(ok)
        preds.append({
            "question": e.question, "answer": e.answer, "pred": pred, "correct": ok, "bucket": e.bucket,
            "split": e.split, "output": g.text, "stop_reason": g.stop_reason, "num_tokens": g.num_tokens,
        })
    allok = [p["correct"] for p in preds]
    return {
        "seen": _frac(by_split.get("seen", [])),
        "unseen": _frac(by_split.get("unseen", [])),
        "total": _frac(allok),
        "buckets": {b: _frac(v) for b, v in sorted(by_bucket.items())},
        "n": {"seen": len(by_split.get("seen", [])), "unseen": len(by_split.get("unseen", [])), "total": len(allok)},
        "predictions": preds,
    }


# ================================================================================================
# Self-improving evaluation (docs/method.md §5.1, §5.2): the paper's test-time protocol for every method.
# ================================================================================================

EVAL_KEYS = ("max_generation_calls", "max_new_tokens", "batch_size", "seed")  # values: params.yaml `evaluation:`


def evaluation_config(params: dict, task_name: str) -> dict:
    """params `evaluation:` with the task's overrides merged; decoding is always greedy."""
    from tripost.params import section

    return section(params, "evaluation", task_name)


def _first_attempt_correct(task, result, gold: str) -> bool:
    if not result.attempts:
        return False
    try:
        return bool(task.is_correct(task.parse_answer(result.attempts[0]), gold))
    except Exception:  # noqa: BLE001 - a parser must never crash the evaluation
        return False


def si_stats(rows: list[dict]) -> dict:
    """SI frequency, SI contribution and mean revisions of prediction rows (docs/method.md §5.2).

    si_freq    = share of questions with >= 1 revision ("Updated Answer");
    si_contrib = among correctly answered questions, the share whose first attempt was wrong (0 when
                 none is correct);
    mean_revisions = revisions per question. All 0 for an empty list.
    """
    n = len(rows)
    correct = [r for r in rows if r["correct"]]
    fixed = [r for r in correct if not r["first_attempt_correct"]]
    return {
        "si_freq": sum(1 for r in rows if r["num_revisions"] >= 1) / n if n else 0.0,
        "si_contrib": len(fixed) / len(correct) if correct else 0.0,
        "mean_revisions": sum(r["num_revisions"] for r in rows) / n if n else 0.0,
        "first_attempt_accuracy": sum(1 for r in rows if r["first_attempt_correct"]) / n if n else 0.0,
    }


def self_verification(task, rows: list[dict]) -> dict:
    """How well the model's own first feedback judges its first attempt, against the gold answer and the
    scripted FBK (the diagnostic that tells whether self-improvement can work).

    Per question: the first attempt is right or wrong (gold answer); the model's first feedback
    accepts it (a "correct" feedback, or none at all: the loop then stops), rejects it (an error
    feedback) or is unparsable (counted as neither). For a rejected wrong attempt, the located step is
    compared with the scripted FBK's first wrong step. Returns counts and rates:
    right_accepted = accepted right / right, wrong_rejected = rejected wrong / wrong,
    step_located = rejected wrong with FBK's step / wrong, agreement = (right accepted + wrong rejected) / n.
    """
    from tripost.formats import parse_feedback

    c = {"right": 0, "wrong": 0, "right_accepted": 0, "right_rejected": 0, "wrong_accepted": 0,
         "wrong_rejected": 0, "step_located": 0, "no_feedback": 0, "unparsable": 0}
    for row in rows:
        right = bool(row["first_attempt_correct"])
        c["right" if right else "wrong"] += 1
        text = row.get("first_feedback")
        if text is None:
            c["no_feedback"] += 1
            verdict = "accepted"
        else:
            fb = parse_feedback(text)
            verdict = "unparsable" if fb is None else ("accepted" if fb.is_correct else "rejected")
        if verdict == "unparsable":
            c["unparsable"] += 1
            continue
        c[f"{'right' if right else 'wrong'}_{verdict}"] += 1
        if not right and verdict == "rejected" and row.get("first_attempt"):
            try:
                ref = task.feedback(row["question"], row["first_attempt"])
            except Exception:  # noqa: BLE001 - a malformed attempt has no reference step
                ref = None
            if ref is not None and not ref.is_correct and ref.step == fb.step:
                c["step_located"] += 1
    n = c["right"] + c["wrong"]
    rate = lambda k, d: (c[k] / c[d]) if c[d] else None  # noqa: E731
    return {**c, "right_accepted_rate": rate("right_accepted", "right"),
            "wrong_rejected_rate": rate("wrong_rejected", "wrong"), "step_located_rate": rate("step_located", "wrong"),
            "agreement": (c["right_accepted"] + c["wrong_rejected"]) / n if n else None}


def evaluate_self_improve(task, model, tokenizer, examples, cfg: dict, *, generate_fn=None,
                          progress: bool = False) -> dict:
    """Self-improving inference (greedy, at most `cfg["max_generation_calls"]` calls) on `examples`.

    Returns {"seen", "unseen", "total" (fraction, None for an empty split), "buckets": {b: acc},
    "si_freq", "si_contrib", "mean_revisions", "first_attempt_accuracy", "by_split": {split: SI stats},
    "stops": {stop reason: count}, "n": {"seen", "unseen", "total"}, "predictions": [rows]}; a row is
    {question, gold, bucket, split, answer, correct, first_attempt_answer, first_attempt_correct,
    num_revisions, calls, stop, text}. The final answer is the last attempt's (docs/method.md §5.1).
    """
    from collections import Counter

    from tripost.inference import self_improve

    missing = [k for k in EVAL_KEYS if k not in cfg]
    if missing:
        raise ValueError(f"evaluation config lacks {', '.join(missing)} (params.yaml `evaluation:`)")
    examples = list(examples)
    results = self_improve(
        task, [e.question for e in examples], model, tokenizer,
        max_generation_calls=int(cfg["max_generation_calls"]), max_new_tokens=int(cfg["max_new_tokens"]),
        do_sample=False, batch_size=int(cfg["batch_size"]), seed=int(cfg["seed"]),
        progress=progress, generate_fn=generate_fn,
    )
    rows = []
    for e, r in zip(examples, results):
        try:
            ok = bool(task.is_correct(r.answer, e.answer))
        except Exception:  # noqa: BLE001
            ok = False
        first = task.parse_answer(r.attempts[0]) if r.attempts else None
        rows.append({
            "question": e.question, "gold": e.answer, "bucket": e.bucket, "split": e.split,
            "answer": r.answer, "correct": ok, "first_attempt_answer": first,
            "first_attempt_correct": _first_attempt_correct(task, r, e.answer),
            "num_revisions": r.num_revisions, "calls": r.calls, "stop": r.stop, "tokens": r.tokens,
            "first_attempt": r.attempts[0] if r.attempts else "",
            "first_feedback": r.feedbacks[0] if r.feedbacks else None,
            "text": r.text,
        })
    by_split: dict[str, list[bool]] = defaultdict(list)
    by_bucket: dict[str, list[bool]] = defaultdict(list)
    for row in rows:
        by_split[row["split"]].append(row["correct"])
        by_bucket[row["bucket"]].append(row["correct"])
    out = {
        "seen": _frac(by_split.get("seen", [])),
        "unseen": _frac(by_split.get("unseen", [])),
        "total": _frac([row["correct"] for row in rows]),
        "buckets": {b: _frac(v) for b, v in sorted(by_bucket.items())},
        **si_stats(rows),
        "by_split": {s: si_stats([row for row in rows if row["split"] == s]) for s in ("seen", "unseen")},
        "stops": dict(Counter(row["stop"] for row in rows)),
        "verification": self_verification(task, rows),
        "intervals": {k: bootstrap_interval([row["correct"] for row in rows if k == "total" or row["split"] == k])
                      for k in ("seen", "unseen", "total")},
        "first_attempt_intervals": {
            k: bootstrap_interval([row["first_attempt_correct"] for row in rows if k == "total" or row["split"] == k])
            for k in ("seen", "unseen", "total")},
        "n": {"seen": len(by_split.get("seen", [])), "unseen": len(by_split.get("unseen", [])), "total": len(rows)},
        "predictions": rows,
    }
    return out


def run_evaluation(task_name: str, method: str, model_dir, test_file, params: dict, out_dir, *,
                   progress: bool = False, generate_fn=None, model=None, tokenizer=None) -> dict:
    """Evaluate a saved model (or the given model/tokenizer) on `test_file`; writes
    `<out_dir>/metrics.json` (DVC metrics: everything but the predictions, plus task/method/model) and
    `<out_dir>/predictions.jsonl`. Returns the full result (predictions included)."""
    import time
    from pathlib import Path

    from tripost.io import read_jsonl, write_json, write_jsonl
    from tripost.tasks import Example, task_from_params

    task = task_from_params(params, task_name)
    cfg = evaluation_config(params, task_name)
    if model is None and generate_fn is None:
        from tripost.modeling import load_for_inference, placement

        model, tokenizer = load_for_inference(model_dir, **placement(params, task_name))
    examples = [Example.from_dict(r) for r in read_jsonl(test_file)]
    t0 = time.time()
    from tripost.io import exclusive

    with exclusive(out_dir):
        res = evaluate_self_improve(task, model, tokenizer, examples, cfg, generate_fn=generate_fn,
                                    progress=progress)
        return _write_evaluation(task_name, method, model_dir, out_dir, cfg, res, t0)


def _write_evaluation(task_name, method, model_dir, out_dir, cfg, res, t0) -> dict:
    import time
    from pathlib import Path

    from tripost.io import write_json, write_jsonl

    metrics = {"task": task_name, "method": method, "model_dir": str(model_dir),
               **{k: v for k, v in res.items() if k != "predictions"},
               "config": cfg, "wall_time_s": round(time.time() - t0, 1)}
    out_dir = Path(out_dir)
    write_jsonl(out_dir / "predictions.jsonl", res["predictions"])
    write_json(out_dir / "metrics.json", metrics)
    return {**metrics, "predictions": res["predictions"]}


def combine_metrics(paths) -> dict:
    """task -> method -> {seen, unseen, total, si_freq, si_contrib} from per-(task, method) metrics
    files (see tripost.report.combine_metrics)."""
    from tripost.report import combine_metrics as _combine

    return _combine(paths)
