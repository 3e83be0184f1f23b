"""Research probe: revise only when the model is confident that its own attempt is wrong.

A model trained to judge its own attempts (an `own_attempts.py` run) rejects right attempts as well as
wrong ones, and a rejected right attempt is usually broken by the revision. This probe asks whether
the model's *confidence* in a rejection separates the two better than its greedy verdict does.

For every feedback the model wrote under the self-improving inference, the **verdict margin** is its
log-odds of rejecting at the point where rejecting and accepting part: the model's own feedback and
the accepting feedback for the same attempt (`Step (1) to (N) are correct. The final response is also
correct.`, after the same opening sentence if the feedback has one) are tokenized after the same
context, and at their first differing token the margin is log P(rejecting token) - log P(accepting
token). A gated policy with threshold `tau` revises only after a rejection whose margin is at least
`tau`. With greedy decoding the gated loop's chain of attempts is the ungated chain cut at the first
rejection whose margin is below `tau`, so one ungated run gives every `tau`. The margin is a ratio of
two tokens' probabilities, not the total probability of rejecting (" Step" can start a rejection
too). The probe reruns the ungated loop through a recording `generate_fn`, so each margin is read
after the exact text the model saw when it wrote that feedback; `result.json` says whether the
rerun reproduced the stored test predictions and whether the replay ends where the loop ended.

`tau` is chosen on validation questions (freshly generated seen-bucket questions that are in neither
the test set nor the model's own training records) among the validation margins, and only then read
on the test set; the whole curve on the test set is written too, as a diagnostic. Writes
`<out>/result.json`. Usage:

    python experiments/verdict_margin.py --task date_understanding --run runs/du-judge-lr1e3-3ep \\
        --out runs/du-margin-16b --params runs/params-tfe.yaml
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from pathlib import Path

from tripost import formats
from tripost.evaluation import bootstrap_interval, evaluate_self_improve
from tripost.feedback import LISTED, NOT_LISTED
from tripost.inference import _is_correct_feedback
from tripost.io import read_jsonl, write_json, write_jsonl
from tripost.modeling import load_for_inference
from tripost.params import section
from tripost.tasks import Example
from tripost.training import extra_sft_examples

sys.path.insert(0, str(Path(__file__).parent))
from _common import extra_test, setup  # noqa: E402

_LEAD_RE = re.compile(rf"^(The answer .*? (?:{LISTED}|{NOT_LISTED})\.)\s*")
_QUESTION_RE = re.compile(r"^Q: (.*?)\n(?:Updated )?Answer:", re.S)


class Recorder:
    """A `generate_fn` around the real one that keeps, for every feedback a call wrote (or was
    re-prompted for), the exact text the model had seen when it wrote it: the call's prompt plus the
    call's own text up to `Feedback:`. Keyed by question, in order."""

    def __init__(self, inner=None):
        self.inner = inner
        self.seen: dict[str, list[tuple[str, str]]] = {}

    def __call__(self, model, tokenizer, prompts, **kw):
        from tripost.generation import generate

        gens = (self.inner or generate)(model, tokenizer, prompts, **kw)
        tag = f"\n{formats.FEEDBACK_TAG}"
        for p, g in zip(prompts, gens):
            q = _QUESTION_RE.match(p).group(1)
            found = self.seen.setdefault(q, [])
            full = p + g.text
            starts = [len(p)] if p.endswith(formats.FEEDBACK_TAG) else []
            i = full.find(tag, len(p))
            while i >= 0:
                starts.append(i + len(tag))
                i = full.find(tag, i + 1)
            for end in starts:
                line = full[end:].split("\n", 1)[0].strip()
                found.append((full[:end], line))
        return gens


def run_loop(task, model, tokenizer, questions, ecfg) -> tuple[list[dict], dict]:
    """The self-improving inference (as `evaluate_self_improve` runs it) with every feedback's context
    recorded: (prediction rows, {question: [(context, feedback)]})."""
    rec = Recorder()
    preds = evaluate_self_improve(task, model, tokenizer, questions, ecfg, generate_fn=rec)["predictions"]
    return preds, rec.seen


def chain(task, pred: dict, recorded: list[tuple[str, str]]) -> list[dict]:
    """The attempts of one prediction row with, for each, the context its feedback was written after
    (matched in order, by text, to what the `Recorder` saw; None if a feedback has no match), the
    feedback, whether it rejects, and the attempt's parsed answer."""
    prompt = task.prompt(pred["question"])
    attempts, feedbacks = formats.split_attempts(pred["text"][len(prompt):])
    attempts = [a for a in attempts if a]
    out, j = [], 0
    for i, att in enumerate(attempts):
        fb = feedbacks[i] if i < len(feedbacks) else None
        ctx = None
        if fb is not None:
            while j < len(recorded) and recorded[j][1] != fb:
                j += 1
            if j < len(recorded):
                ctx, j = recorded[j][0], j + 1
        out.append({"context": ctx, "feedback": fb, "answer": task.parse_answer(att),
                    "rejects": fb is not None and not _is_correct_feedback(f"{formats.FEEDBACK_TAG} {fb}"),
                    "accept_text": accept_text(att, fb or "")})
    return out


def accept_text(attempt: str, feedback: str) -> str:
    """The accepting feedback for `attempt`; if `feedback` opens with the options sentence, the accepting
    one opens with its accepting form (`The answer X is one of the options.`), as it does in training,
    so that a "not one of the options" is scored as part of the rejection."""
    text = formats.correct_feedback_text(formats.parse_steps(attempt))
    m = _LEAD_RE.match(feedback)
    if not m:
        return text
    return f"{m.group(1).replace(' ' + NOT_LISTED, ' ' + LISTED)} {text}"


def margin(model, tokenizer, context: str, reject: str, accept: str) -> float | None:
    """log P(reject's token) - log P(accept's token) at the first token where the two feedbacks part,
    both written after `context` + ' '. None if one is a prefix of the other."""
    import torch

    a = tokenizer(f"{context} {reject}", add_special_tokens=True).input_ids
    b = tokenizer(f"{context} {accept}", add_special_tokens=True).input_ids
    k = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None)
    if k is None or k == 0:
        return None
    with torch.no_grad():
        logits = model(torch.tensor([a[:k]], device=model.device)).logits[0, -1].float()
    logp = torch.log_softmax(logits, -1)
    return float(logp[a[k]] - logp[b[k]])


def score(task, model, tokenizer, preds: list[dict], recorded: dict) -> list[list[dict]]:
    """Every prediction's chain, with the margin of each rejecting feedback."""
    chains = []
    for p in preds:
        c = chain(task, p, recorded.get(p["question"], []))
        for link in c:
            link["margin"] = (margin(model, tokenizer, link["context"], link["feedback"], link["accept_text"])
                              if link["rejects"] and link["context"] is not None else None)
            del link["context"]
        chains.append(c)
    return chains


def gated(task, pred: dict, links: list[dict], tau: float) -> dict:
    """The gated loop's outcome for one question: the answer of the first attempt whose rejection has a
    margin below `tau`, else of the last attempt (the ungated loop's own stop; a feedback that accepts
    in the middle of a call was passed by the loop too, and a rejection that cannot be scored counts
    as confident)."""
    if not links:
        return {"correct": False, "first_correct": False, "revisions": 0, "answer": None}
    stop = len(links) - 1
    for i, link in enumerate(links[:-1]):
        if link["rejects"] and link["margin"] is not None and link["margin"] < tau:
            stop = i
            break
    ok = lambda ans: bool(ans is not None and task.is_correct(ans, pred["gold"]))  # noqa: E731
    return {"correct": ok(links[stop]["answer"]), "first_correct": ok(links[0]["answer"]), "revisions": stop,
            "answer": links[stop]["answer"]}


def tally(outs: list[dict]) -> dict:
    """Fixed / broken / revised questions over gated outcomes."""
    return {"fixed": sum(o["correct"] and not o["first_correct"] for o in outs),
            "broken": sum(o["first_correct"] and not o["correct"] for o in outs),
            "revised": sum(o["revisions"] > 0 for o in outs)}


def curve(task, preds, chains, taus) -> list[dict]:
    rows = []
    for tau in taus:
        outs = [gated(task, p, c, tau) for p, c in zip(preds, chains)]
        rows.append({"tau": tau, "accuracy": sum(o["correct"] for o in outs) / len(outs), **tally(outs)})
    return rows


def mismatches(task, preds, chains) -> int:
    """Questions whose ungated replay does not end where the loop ended (its answer and revisions)."""
    bad = 0
    for p, c in zip(preds, chains):
        g = gated(task, p, c, -math.inf)
        bad += (g["correct"], g["answer"], g["revisions"]) != (bool(p["correct"]), p["answer"], p["num_revisions"])
    return bad


def choose(rows: list[dict]) -> dict:
    """The validation curve's best threshold: highest accuracy, ties to the one that revises least."""
    return max(rows, key=lambda r: (r["accuracy"], -r["revised"]))


def margins_by_truth(task, preds, chains) -> dict:
    """First-feedback rejections split by whether the attempt was right: their margins' quartiles."""
    import numpy as np

    out = {}
    for label, want in (("right attempts", True), ("wrong attempts", False)):
        ms = [c[0]["margin"] for p, c in zip(preds, chains)
              if c and c[0]["rejects"] and c[0]["margin"] is not None
              and bool(c[0]["answer"] is not None and task.is_correct(c[0]["answer"], p["gold"])) == want]
        out[label] = {"rejected": len(ms),
                      "quartiles": [round(float(q), 2) for q in np.percentile(ms, [25, 50, 75])] if ms else None}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", required=True)
    ap.add_argument("--run", required=True, help="an own_attempts.py output dir (model/, train.jsonl, predictions)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--val", type=int, default=400, help="fresh validation questions")
    ap.add_argument("--val-seed", type=int, default=5150)
    ap.add_argument("--extra-test", type=int, default=300)
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args(argv)

    t0 = time.time()
    s = setup(args.task, "", args.out, args.params)
    task, run, out = s.task, Path(args.run), s.out
    stored = read_jsonl(run / "predictions-trained.jsonl")
    trained_on = {m.group(1) for r in read_jsonl(run / "train.jsonl") if (m := _QUESTION_RE.match(r["prompt"]))}
    excluded = {e.question for e in s.test + extra_test(s, args.extra_test) + s.val + s.train} | trained_on
    val_q = extra_sft_examples(task, args.val, s.seen_buckets, excluded, seed=args.val_seed)

    model, tok = load_for_inference(run / "model")
    ecfg = {**section(s.params, "evaluation", args.task), "batch_size": 64}
    val_preds, val_seen = run_loop(task, model, tok, val_q, ecfg)
    write_jsonl(out / "predictions-val.jsonl", val_preds)
    test_q = [Example(p["question"], p["gold"], "", p["bucket"], p["split"]) for p in stored]
    test_preds, test_seen_ctx = run_loop(task, model, tok, test_q, ecfg)
    rerun_differs = sum(p["text"] != q["text"] for p, q in zip(test_preds, stored))
    t_gen = time.time() - t0

    val_chains = score(task, model, tok, val_preds, val_seen)
    test_chains = score(task, model, tok, test_preds, test_seen_ctx)
    # thresholds: the validation margins only (revise iff margin >= tau), and the two ends
    val_ms = sorted({x["margin"] for c in val_chains for x in c if x["margin"] is not None})
    val_curve = curve(task, val_preds, val_chains, [-math.inf] + val_ms + [math.inf])
    best = choose(val_curve)
    all_ms = sorted(set(val_ms) | {x["margin"] for c in test_chains for x in c if x["margin"] is not None})
    n_off = len(s.test)
    test_off, test_seen = test_preds[:n_off], [p for p in test_preds if p["split"] == "seen"]
    chains_off = test_chains[:n_off]
    chains_seen = [c for p, c in zip(test_preds, test_chains) if p["split"] == "seen"]

    def report(preds, chains, tau):
        outs = [gated(task, p, c, tau) for p, c in zip(preds, chains)]
        return {"si": bootstrap_interval([o["correct"] for o in outs]),
                "first": bootstrap_interval([o["first_correct"] for o in outs]), **tally(outs), "n": len(outs)}

    fmt = lambda t: None if math.isinf(t) else round(t, 3)  # noqa: E731
    result = {
        "args": vars(args),
        "validation": {"n": len(val_preds), "ungated": val_curve[0], "chosen": {**best, "tau": fmt(best["tau"])},
                       "never_revise": val_curve[-1], "margins": margins_by_truth(task, val_preds, val_chains)},
        "test": {label: {"ungated": report(p, c, -math.inf), "gated": report(p, c, best["tau"])}
                 for label, p, c in (("official_total", test_off, chains_off), ("seen_all", test_seen, chains_seen))},
        "test_margins": margins_by_truth(task, test_preds, test_chains),
        # the ungated replay must give back the loop's own answers (a check of the chain rebuild)
        "replay_mismatches": {"validation": mismatches(task, val_preds, val_chains),
                              "test": mismatches(task, test_preds, test_chains)},
        "unscored_rejections": sum(x["rejects"] and x["margin"] is None for c in val_chains + test_chains for x in c),
        "test_rerun_differs_from_stored": rerun_differs,
        "test_curve": {label: [{**r, "tau": fmt(r["tau"])} for r in curve(task, p, c, [-math.inf] + all_ms + [math.inf])]
                       for label, p, c in (("official_total", test_off, chains_off), ("seen_all", test_seen, chains_seen))},
        "generation_s": round(t_gen, 1), "wall_s": round(time.time() - t0, 1),
    }
    write_json(out / "result.json", result)
    print(json.dumps({k: result[k] for k in ("validation", "test", "test_margins")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
