"""Interactive trajectory editing (docs/method.md §2): the small model answers every training
question, FBK and IMP edit its wrong trajectories, and every trajectory is appended to JSONL as it is
produced.

One prediction (`edit`):
    clean it (docs/method.md §2.2; any odd line -> dropped, filter 1); drop over-long attempts (2);
    walk the model's attempts in order, asking FBK about each:
      - FBK says the attempt is correct (gold-correct, valid content): the trajectory ends there;
        attempt 1 -> "direct_correct" (kept with a 'correct' feedback line); a later attempt whose
        earlier self-feedbacks all agreed with FBK -> "self_improved" (the model's own chain, kept);
        if the model had criticised that correct attempt -> dropped (3);
      - FBK finds an error and the model's own feedback names the same error: keep the pair, go on
        (if it is the last attempt the model never fixed it -> dropped, filter 4);
      - otherwise edit from this attempt: keep the prefix, replace the feedback by FBK's, and loop
        IMP -> legit-update check (5) -> FBK for at most `max_rounds` rounds (6), tracking progress:
        a non-progressing chain is truncated to (attempt_i, FBK feedback_i) (7).
Correctness is decided by the gold answer (task.parse_answer + task.is_correct), never by an LLM;
`task.has_valid_content(question, attempt)` must also hold (8).

Collection (`collect`): t = 1 samples M0 (temperature in params); t >= 2 runs the self-improving
inference (tripost.inference). Up to `max_passes` passes over the pool, stopping once the examples
processing would make reach `max_data_length`. The pool is cut into fixed chunks whose generations
are stored (generations.jsonl) before editing, and every trajectory row is fsynced as it is written
(trajectories.jsonl): a run killed anywhere and rerun skips what is done and ends with exactly the
output of an uninterrupted run (scripted FBK/IMP are deterministic; LLM replies come from the cache).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from tripost import formats
from tripost.formats import FINAL_LABEL, Feedback, parse_feedback, parse_step, same_error
from tripost.io import JsonlAppender, read_jsonl, reset_if_stale, write_json

# The ten filters of docs/method.md §3.1, in order. 1-8 are decided here; 9-10 in processing.
FILTERS = {
    "format": "1. unparsable / odd-format prediction",
    "too_long": "2. over-long attempt",
    "fbk_error": "3. FBK error, unparsable FBK, or FBK says a model-criticised attempt is correct",
    "agree_but_wrong": "4. self-feedback agrees with FBK everywhere but the final answer is wrong",
    "imp_not_legit": "5. IMP output not a legit update",
    "not_correct": "6. not correct after max_rounds IMP rounds",
    "no_progress": "7. non-progressing FBK chain -> truncated to the first (attempt, feedback)",
    "invalid_content": "8. 'correct' final answer without valid content",
    "duplicate": "9. exact-text duplicate",
    "too_many_tokens": "10. over the token cap",
}

STATUSES = ("direct_correct", "self_improved", "edited", "truncated", "dropped")


# --------------------------------------------------------------------------------------------------
# cleaning (docs/method.md §2.2)

_QUESTION_HEADERS = ("Q:", "Options:", "List:", "Answer:")


def _header(line: str) -> str | None:
    s = line.strip()
    if s.startswith("Feedback:"):
        return "Feedback:"
    if s.startswith("Updated Answer:"):
        return "Updated Answer:"
    step = parse_step(s)
    if step is not None:
        return f"({step.label})"
    for h in _QUESTION_HEADERS:
        if s.startswith(h):
            return h
    if len(s) >= 3 and s[0] == "(" and s[1].isalpha() and s[2] == ")":
        return "(option)"
    return None


def clean_prediction(prediction: str) -> str | None:
    """The model's output (after the prompt, or a full text starting with 'Q:') reduced to its
    attempt/feedback lines; None if any line is blank or of an unknown kind (filter 1).

    Question-part lines (Q:/Options:/List:/(A).../Answer:) before the first step are skipped; a second
    'Q:' ends the prediction; a line repeating the previous line's header is skipped.
    """
    lines = prediction.strip().split("\n")
    kept: list[str] = []
    prev: str | None = None
    seen_q = False
    for line in lines:
        h = _header(line)
        if h is None:
            return None
        if h == "Q:":
            if seen_q or kept:
                break
            seen_q = True
            continue
        if h in ("Options:", "List:", "(option)", "Answer:"):
            if kept:
                return None
            continue
        if h == prev:
            continue
        kept.append(line.strip())
        prev = h
    if not any(parse_step(k) is not None for k in kept):
        return None
    return "\n".join(kept)


# --------------------------------------------------------------------------------------------------
# checks


def gold_ok(task, attempt: str, gold: str) -> bool:
    try:
        return bool(task.is_correct(task.parse_answer(attempt), gold))
    except Exception:  # noqa: BLE001 - a task parser must never crash the editor
        return False


def content_ok(task, question: str, attempt: str) -> bool:
    """The task's has_valid_content (docs/method.md §2.4; the base Task accepts every attempt and relies on
    the scripted FBK, which checks the final response). A check that raises counts as invalid."""
    try:
        return bool(task.has_valid_content(question, attempt))
    except Exception:  # noqa: BLE001
        return False


def _words(text: str) -> int:
    return len(text.split())


def _order(label: str) -> tuple:
    if label == FINAL_LABEL:
        return (math.inf,)
    return tuple(int(x) for x in label.split("."))


def legit_update(old: str, new: str, feedback: Feedback) -> str | None:
    """None if `new` is a legit update of `old` under `feedback` (docs/method.md §2.5), else why not."""
    try:
        new_steps = formats.parse_steps(new)
        old_steps = formats.parse_steps(old)
    except ValueError:
        return "unparsable"
    last = new_steps[-1]
    if last.label != FINAL_LABEL or "the answer is" not in last.text.lower():
        return "no final answer"
    if "Q:" in new:
        return "hallucinated question"
    if new.strip() == old.strip():
        return "unchanged"
    labels = [s.label for s in old_steps]
    if feedback.step not in labels:
        return "error step not in the attempt"
    k = labels.index(feedback.step)
    if [s.line for s in new_steps[:k]] != [s.line for s in old_steps[:k]]:
        return "prefix changed"
    new_k = next((s for s in new_steps if s.label == feedback.step), None)
    if new_k is not None:
        if new_k.line == old_steps[k].line:
            return "error step unchanged"
        seg = (feedback.segment or "").strip()
        reason = feedback.reason or ""
        # The wrong occurrence of the segment must be gone: fewer occurrences than before (a segment
        # that also appears in a correct part of the step, or a "duplicated" one, may stay once per
        # correct use: the original's word-sorting "is duplicated" rule); a "missing" error is fixed by
        # adding to it.
        if seg and "missing" not in reason:
            before = old_steps[k].text.count(seg)
            if new_k.text.count(seg) >= max(before, 1):
                return "error segment still present"
    return None


def progressed(prev: Feedback, new: Feedback) -> bool:
    """No progress if the new error is earlier, or the same step with the same segment (docs/method.md
    §2.5)."""
    if new.is_correct:
        return True
    a, b = _order(prev.step), _order(new.step)
    if b < a:
        return False
    return not (a == b and (prev.segment or "") == (new.segment or ""))


# --------------------------------------------------------------------------------------------------
# editing one prediction


@dataclass
class EditResult:
    status: str  # one of STATUSES
    filter: str | None = None  # the drop reason (a FILTERS key); "no_progress" for truncated
    detail: str | None = None
    attempts: list[str] = field(default_factory=list)  # kept trajectory
    feedbacks: list[str] = field(default_factory=list)  # one per kept attempt
    needed_editing: bool = False
    edit_start: int | None = None  # index of the model attempt where editing started
    model_attempts: int = 0  # attempts in the (cleaned) model output
    imp_rounds: int = 0
    fbk_requests: int = 0
    imp_requests: int = 0

    @property
    def kept(self) -> bool:
        return self.status != "dropped"

    def to_dict(self) -> dict:
        return asdict(self)


def trajectory_text(task, question: str, attempts: list[str], feedbacks: list[str]) -> str:
    """The trajectory text (docs/method.md §1.3):
    `Q: ...\\nAnswer: ...\\n{a1}\\nFeedback: {f1}\\nUpdated Answer: ...\\n{a2}...`."""
    parts = [task.prompt(question)]
    for i, a in enumerate(attempts):
        if i:
            parts.append(formats.answer_header(task.info, updated=True))
        parts.append(a)
        if i < len(feedbacks):
            parts.append(f"Feedback: {feedbacks[i]}")
    return "\n".join(parts)


def _correct_text(attempt: str) -> str:
    return formats.correct_feedback_text(formats.parse_steps(attempt))


def edit(task, backend, question: str, gold: str, prediction: str, *, max_rounds: int,
         max_attempt_words: int) -> EditResult:
    """Edit one model prediction (the text after the prompt) into a trajectory, or drop it."""
    res = EditResult(status="dropped")

    def drop(filt: str, detail: str | None = None) -> EditResult:
        res.status, res.filter, res.detail = "dropped", filt, detail
        res.attempts, res.feedbacks = [], []
        return res

    def fbk(attempt: str) -> tuple[Feedback | None, bool, bool]:
        g, c = gold_ok(task, attempt, gold), content_ok(task, question, attempt)
        res.fbk_requests += 1
        return backend.feedback(question, attempt, gold_ok=g, content_ok=c), g, c

    cleaned = clean_prediction(prediction)
    if cleaned is None:
        return drop("format", "odd line")
    attempts, own = formats.split_attempts(cleaned)
    res.model_attempts = len(attempts)
    if not attempts or any(not a.strip() for a in attempts):
        return drop("format", "empty attempt")
    if any(_words(a) > max_attempt_words for a in attempts):
        return drop("too_long")

    for i, attempt in enumerate(attempts):
        fb, g, c = fbk(attempt)
        if fb is None:
            return drop("fbk_error", "FBK failed")
        own_text = own[i] if i < len(own) and own[i].strip() else None  # an empty feedback = none
        own_fb = parse_feedback(own_text) if own_text is not None else None
        if fb.is_correct:
            if not g:
                return drop("fbk_error", "FBK says correct but the answer is wrong")
            if not c:
                return drop("invalid_content")
            if own_text is not None and (own_fb is None or not own_fb.is_correct):
                return drop("fbk_error", "the model criticised a correct attempt")
            res.status = "direct_correct" if i == 0 else "self_improved"
            res.attempts = attempts[: i + 1]
            res.feedbacks = list(own[:i]) + [_correct_text(attempt)]
            return res
        if own_fb is not None and not own_fb.is_correct and same_error(own_fb, fb):
            if i + 1 < len(attempts):
                continue  # the model found its own error: keep its (attempt, feedback) pair
            return drop("agree_but_wrong")
        return _edit_loop(task, backend, question, gold, res, attempts[:i], list(own[:i]), attempt, fb,
                          max_rounds, fbk, drop, edit_start=i)
    raise AssertionError("unreachable")  # pragma: no cover


def _edit_loop(task, backend, question, gold, res, prefix_att, prefix_fb, attempt, fb, max_rounds, fbk, drop,
               edit_start):
    res.needed_editing = True
    res.edit_start = edit_start
    chain_att, chain_fb = [attempt], [fb.text]
    cur, cur_fb = attempt, fb
    bad = False
    done = False
    for _ in range(max_rounds):
        res.imp_rounds += 1
        res.imp_requests += 1
        new = backend.improve(question, cur, cur_fb)
        if new is None:
            return drop("imp_not_legit", "unparsable IMP reply")
        why = legit_update(cur, new, cur_fb)
        if why is not None:
            return drop("imp_not_legit", why)
        nfb, g, c = fbk(new)
        if nfb is None:
            return drop("fbk_error", "FBK failed")
        chain_att.append(new)
        if nfb.is_correct:
            if not g:
                return drop("fbk_error", "FBK says correct but the answer is wrong")
            if not c:
                return drop("invalid_content")
            chain_fb.append(_correct_text(new))
            done = True
            break
        if not progressed(cur_fb, nfb):
            bad = True
        chain_fb.append(nfb.text)
        cur, cur_fb = new, nfb
    if not done:
        return drop("not_correct", f"not correct after {max_rounds} rounds")
    if bad:
        res.status, res.filter = "truncated", "no_progress"
        res.attempts, res.feedbacks = [attempt], [fb.text]
        return res
    res.status = "edited"
    res.attempts = prefix_att + chain_att
    res.feedbacks = prefix_fb + chain_fb
    return res


# --------------------------------------------------------------------------------------------------
# collection with resume


def _chunk_seed(seed: int, pass_idx: int, chunk: int) -> int:
    h = hashlib.sha256(f"tripost/{seed}/{pass_idx}/{chunk}".encode()).hexdigest()
    return int(h[:8], 16)


def _default_generate(*args, **kwargs):
    from tripost.generation import generate

    return generate(*args, **kwargs)


def generate_predictions(task, questions: list[str], *, model, tokenizer, iteration: int, cfg: dict, seed: int,
                         generate_fn: Callable | None = None) -> list[dict]:
    """The small model's predictions for `questions`: t = 1 one sampled attempt (docs/method.md §2.1), t >= 2
    the self-improving inference. One dict per question: prediction (text after the prompt) + info."""
    generate_fn = generate_fn or _default_generate
    if iteration <= 1:
        gens = generate_fn(model, tokenizer, [task.prompt(q) for q in questions],
                           max_new_tokens=int(cfg["max_new_tokens"]), do_sample=bool(cfg["do_sample"]),
                           temperature=float(cfg["temperature"]), top_p=float(cfg["top_p"]),
                           stop=["\nQ:"], batch_size=int(cfg["batch_size"]), seed=seed, progress=False)
        return [{"prediction": g.text, "stop_reason": g.stop_reason, "tokens": g.num_tokens, "calls": 1}
                for g in gens]
    from tripost.inference import self_improve

    results = self_improve(task, questions, model, tokenizer,
                           max_generation_calls=int(cfg["max_generation_calls"]),
                           max_new_tokens=int(cfg["max_new_tokens"]),
                           do_sample=bool(cfg["self_improve_do_sample"]),
                           temperature=float(cfg["self_improve_temperature"]),
                           top_p=float(cfg["top_p"]), batch_size=int(cfg["batch_size"]), seed=seed,
                           generate_fn=generate_fn)
    return [{"prediction": r.completion, "stop_reason": r.stop, "tokens": r.tokens, "calls": r.calls,
             "model_revisions": r.num_revisions} for r in results]


def _row(task, p: int, idx: int, example, gen: dict, res: EditResult) -> dict:
    text = trajectory_text(task, example.question, res.attempts, res.feedbacks) if res.kept else None
    return {
        "id": f"p{p}/q{idx}",
        "pass": p,
        "index": idx,
        "question": example.question,
        "gold": example.answer,
        "bucket": example.bucket,
        "status": res.status,
        "filter": res.filter,
        "detail": res.detail,
        "needed_editing": res.needed_editing,
        "edit_start": res.edit_start,
        "model_attempts": res.model_attempts,
        "model_revisions": gen.get("model_revisions", 0),
        "imp_rounds": res.imp_rounds,
        "fbk_requests": res.fbk_requests,
        "imp_requests": res.imp_requests,
        "attempts": res.attempts,
        "feedbacks": res.feedbacks,
        "text": text,
        "prediction": gen["prediction"],
        "gen_stop": gen.get("stop_reason"),
    }


def ordered_map(fn, items: list, workers: int):
    """`map(fn, items)` with up to `workers` calls in flight (threads), results in input order."""
    if workers <= 1 or len(items) <= 1:
        yield from map(fn, items)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        yield from pool.map(fn, items)


def _read_rows(path: Path) -> list[dict]:
    return read_jsonl(path) if path.exists() else []


def collect(task, examples: list, *, model=None, tokenizer=None, backend, params: dict, iteration: int,
            out_dir, generate_fn: Callable | None = None, progress: bool = True,
            on_pass_end: Callable | None = None, fingerprint: str | None = None) -> dict:
    """Interact with the model on the `examples` pool; writes into `out_dir`:
    trajectories.jsonl (one row per question per pass), generations.jsonl (the model's raw output per
    chunk, for resume), interaction_metrics.json (counts + LLM usage). Returns the metrics.
    Rerunning after a kill resumes; the final files equal those of an uninterrupted run.
    `fingerprint` identifies the inputs (model, pool, params): partial files made with other inputs
    are discarded instead of resumed."""
    from tripost.io import exclusive

    with exclusive(out_dir):  # one writer per output directory, even if a killed run's kernel lives on
        return _collect(task, examples, model=model, tokenizer=tokenizer, backend=backend, params=params,
                        iteration=iteration, out_dir=out_dir, generate_fn=generate_fn, progress=progress,
                        on_pass_end=on_pass_end, fingerprint=fingerprint)


def _collect(task, examples, *, model, tokenizer, backend, params, iteration, out_dir, generate_fn, progress,
             on_pass_end, fingerprint) -> dict:
    from tripost.params import section
    from tripost.processing import collected_count

    cfg = section(params, "interaction", task.name)
    pcfg = section(params, "processing", task.name)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    traj_path, gen_path = out_dir / "trajectories.jsonl", out_dir / "generations.jsonl"
    if fingerprint is not None:
        reset_if_stale(out_dir, fingerprint, [traj_path.name, gen_path.name, "interaction_metrics.json"])
    pool = list(examples)
    if cfg["pool_limit"]:
        pool = pool[: int(cfg["pool_limit"])]
    chunk_size = int(cfg["chunk_size"])
    max_passes = int(cfg["max_passes"])
    max_data = int(cfg["max_data_length"])
    base_seed = int(cfg["pass_seed"]) + int(params["seed"])
    ratio = float(pcfg["improvement_ratio"])

    gens_done = {(r["pass"], r["chunk"]): r["items"] for r in _read_rows(gen_path)}
    rows = _read_rows(traj_path)
    done_ids = {r["id"] for r in rows}
    n_chunks = math.ceil(len(pool) / chunk_size) if pool else 0
    t0 = time.time()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(pool) * max_passes, desc=f"{task.name} t={iteration}", unit="q")
        bar.update(len(done_ids))
    passes_run = 0
    with JsonlAppender(traj_path) as traj_out, JsonlAppender(gen_path) as gen_out:
        for p in range(max_passes):
            if p > 0 and collected_count(task, rows, ratio=ratio) >= max_data:
                break
            passes_run = p + 1
            for c in range(n_chunks):
                chunk = pool[c * chunk_size : (c + 1) * chunk_size]
                ids = [f"p{p}/q{c * chunk_size + j}" for j in range(len(chunk))]
                if all(i in done_ids for i in ids):
                    continue
                items = gens_done.get((p, c))
                if items is None:
                    items = generate_predictions(task, [e.question for e in chunk], model=model, tokenizer=tokenizer,
                                                 iteration=iteration, cfg=cfg, seed=_chunk_seed(base_seed, p, c),
                                                 generate_fn=generate_fn)
                    gen_out.append({"pass": p, "chunk": c, "items": items})
                    gens_done[(p, c)] = items
                todo = [(j, ex, gen) for j, (ex, gen) in enumerate(zip(chunk, items)) if ids[j] not in done_ids]

                def edit_one(item):
                    j, ex, gen = item
                    return j, ex, gen, edit(task, backend, ex.question, ex.answer, gen["prediction"],
                                            max_rounds=int(cfg["max_rounds"]),
                                            max_attempt_words=int(cfg["max_attempt_words"]))

                # trajectories of a chunk are edited concurrently (an LLM backend's requests overlap) and
                # written in question order, so the file is byte-identical to a sequential run
                for j, ex, gen, res in ordered_map(edit_one, todo, getattr(backend, "max_in_flight", 1)):
                    row = _row(task, p, c * chunk_size + j, ex, gen, res)
                    traj_out.append(row)
                    rows.append(row)
                    done_ids.add(row["id"])
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(kept=sum(r["status"] != "dropped" for r in rows),
                                        llm_calls=backend.metrics.calls, refresh=False)
            if on_pass_end is not None:
                on_pass_end(p, rows)
    if bar is not None:
        bar.close()
    metrics = interaction_metrics(rows, task=task.name, iteration=iteration)
    metrics["passes"] = passes_run
    metrics["pool_size"] = len(pool)
    metrics["collected_examples"] = collected_count(task, rows, ratio=ratio)
    metrics["backend"] = backend.name
    metrics["llm"] = backend.metrics.to_dict()
    metrics["seconds"] = round(time.time() - t0, 1)
    write_json(out_dir / "interaction_metrics.json", metrics)
    return metrics


def interaction_metrics(rows: list[dict], *, task: str | None = None, iteration: int | None = None) -> dict:
    """Counts over trajectory rows: per status, per drop filter, and the paper's editing stats
    (num_original = direct-correct, num_updated = needed editing, num_updated_correct = edited ok)."""
    status = Counter(r["status"] for r in rows)
    filt = Counter(r["filter"] for r in rows if r["status"] == "dropped")
    needed = sum(1 for r in rows if r["needed_editing"])
    ok = sum(1 for r in rows if r["needed_editing"] and r["status"] in ("edited", "truncated"))
    return {
        "task": task,
        "iteration": iteration,
        "trajectories": len(rows),
        "direct_correct": status.get("direct_correct", 0),
        "self_improved": status.get("self_improved", 0),
        "needed_editing": needed,
        "edited_successfully": ok,
        "edited": status.get("edited", 0),
        "truncated": status.get("truncated", 0),
        "dropped": status.get("dropped", 0),
        "dropped_by_filter": {k: filt.get(k, 0) for k in FILTERS if k not in ("duplicate", "too_many_tokens", "no_progress")},
        "fbk_requests": sum(r["fbk_requests"] for r in rows),
        "imp_requests": sum(r["imp_requests"] for r in rows),
    }


def inputs_fingerprint(params: dict, task: str, iteration: int, model_dir, pool_file) -> str:
    """What `task`'s collection depends on (the settings it reads, per-task overrides merged; the
    iteration, model files, question pool): a killed run resumes from its partial files only while
    this is unchanged (see `collect(fingerprint=...)`)."""
    from tripost.io import fingerprint
    from tripost.params import section

    settings = {"seed": params["seed"], "interaction": section(params, "interaction", task),
                "feedback_backend": section(params, "feedback_backend", task),
                "improvement_ratio": section(params, "processing", task)["improvement_ratio"]}
    return fingerprint(settings | {"t": int(iteration)}, [model_dir, pool_file])
