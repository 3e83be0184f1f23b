"""Research probe: can the from-scratch model learn to *judge* its own attempts, separated from revising?

Every training record is one of the model's own greedy attempts (in the masked prompt) followed by the
scripted FBK's feedback on it (`\\nFeedback: ...`, the only trained text): right attempts get the
"correct" verdict, wrong ones FBK's first wrong step and reason. No revision is trained. The test: the
trained model writes its first feedback on the start model's greedy attempts at the test questions
(right and wrong), scored with `tripost.evaluation.self_verification` against the gold answer and FBK.

    python experiments/verify_drill.py --task word_sorting --m0 runs/ws-offset/model \\
        --records runs/a/train.jsonl --attempts runs/a/predictions-m0.jsonl --out runs/ws-verify
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

from tripost import formats
from tripost.evaluation import self_verification
from tripost.generation import generate
from tripost.io import read_jsonl, write_json, write_jsonl
from tripost.modeling import load_for_inference
sys.path.insert(0, str(Path(__file__).parent))
from _common import drill_parser, drill_setup, train_drill, verdict  # noqa: E402

FEEDBACK = f"\n{formats.FEEDBACK_TAG} "


def verify_record(rec: dict) -> dict | None:
    """An improvement / direct-correct record (attempt in the prompt) -> attempt + its first feedback."""
    comp = rec["completion"]
    if rec.get("kind") not in ("improvement", "direct_correct") or not comp.startswith(FEEDBACK):
        return None
    first = comp[len(FEEDBACK):].split("\n", 1)[0]
    return {"prompt": rec["prompt"] + FEEDBACK.rstrip(" "), "completion": " " + first, "weighted": False,
            "kind": "verify_wrong" if rec["kind"] == "improvement" else "verify_right"}


def verdict_counts(rows: list[dict]) -> dict:
    """The decision alone, read from the feedback's words whatever the spelling around them: "In step
    (k)" anywhere rejects (FBK writes "Step (1) is correct. In step (2) ..." for a later step), a line
    starting "Step (1) to" without it accepts: {right|wrong: {accept, reject, other}}."""
    out = {"right": {"accept": 0, "reject": 0, "other": 0}, "wrong": {"accept": 0, "reject": 0, "other": 0}}
    for r in rows:
        out["right" if r["first_attempt_correct"] else "wrong"][verdict(r["first_feedback"], one_step_accept=False)] += 1
    return out


def main(argv=None) -> int:
    ap = drill_parser(__doc__, "comma-separated train.jsonl files (judge layout)")
    ap.add_argument("--wrong-share", type=float, default=0.0, help="> 0: resample to this share of wrong attempts")
    args = ap.parse_args(argv)
    t0 = time.time()
    out, params, task = drill_setup(args)
    recs = [v for f in args.records.split(",") for r in read_jsonl(f) if (v := verify_record(r))]
    rng = random.Random(args.seed)
    rng.shuffle(recs)
    if args.wrong_share > 0:
        wrong = [r for r in recs if r["kind"] == "verify_wrong"]
        right = [r for r in recs if r["kind"] == "verify_right"]
        n_wrong = min(len(wrong), round(args.max_records * args.wrong_share))
        recs = wrong[:n_wrong] + right[: args.max_records - n_wrong]
        rng.shuffle(recs)
    recs = recs[: args.max_records]
    write_jsonl(out / "train.jsonl", recs)
    kinds = {k: sum(r["kind"] == k for r in recs) for k in ("verify_wrong", "verify_right")}

    tm = train_drill(args, params, recs, out)

    preds = [p for p in read_jsonl(args.attempts) if p.get("first_attempt")]
    prompts = [f"{task.prompt(p['question'])}\n{p['first_attempt']}{FEEDBACK.rstrip(' ')}" for p in preds]
    res = {}
    for name, path in (("start", args.m0), ("trained", out / "model")):
        mdl, tk = load_for_inference(path)
        gens = generate(mdl, tk, prompts, max_new_tokens=120, stop=["\n"], batch_size=64)
        rows = [{**p, "first_feedback": g.text.strip()} for p, g in zip(preds, gens)]
        res[name] = {**self_verification(task, rows), "by_verdict": verdict_counts(rows)}
        write_jsonl(out / f"feedback-{name}.jsonl",
                    [{"question": p["question"], "right": p["first_attempt_correct"], "feedback": r["first_feedback"]}
                     for p, r in zip(preds, rows)])
    result = {"args": vars(args), "records": kinds,
              "train": {k: tm[k] for k in ("final_loss", "steps", "wall_time_s", "tokens_per_s")},
              "verification": res, "wall_s": round(time.time() - t0, 1)}
    write_json(out / "result.json", result)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
