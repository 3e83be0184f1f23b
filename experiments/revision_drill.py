"""Research probe: can the from-scratch model learn to *revise* at all, given the feedback?

Refinement alone, separated from verification: every training record is one of the model's own wrong
attempts followed by the scripted FBK's feedback, and only IMP's revision is trained (answer-only
loss). The test is the oracle-revision diagnostic: for every wrong greedy first attempt on the test
questions, the scripted FBK's feedback is given and the trained model writes one revision (greedy).

`--layout plain` is the method's format (`... Feedback: ...\\nUpdated Answer: ...`); `--layout restate`
repeats the question (`Q: ...`) between the feedback and `Updated Answer:`, so that the revision starts
next to its question instead of 150-400 tokens after it (a from-scratch model reads nearby text far
more easily than distant text).

    python experiments/revision_drill.py --task word_sorting --m0 runs/ws-offset/model \\
        --records runs/a/train.jsonl,runs/b/train.jsonl --attempts runs/a/predictions-m0.jsonl \\
        --layout restate --out runs/ws-drill-restate
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

from tripost import formats
from tripost.evaluation import bootstrap_interval
from tripost.generation import generate
from tripost.io import read_jsonl, write_json, write_jsonl
from tripost.modeling import load_for_inference
from tripost.params import section
sys.path.insert(0, str(Path(__file__).parent))
from _common import drill_parser, drill_setup, train_drill  # noqa: E402

FEEDBACK = f"\n{formats.FEEDBACK_TAG} "


def revision_context(task, question: str, attempt: str, feedback: str, layout: str) -> str:
    """Everything before the revision: question, attempt, feedback, (restated question), header."""
    header = formats.answer_header(task.info, updated=True)
    restated = f"\nQ: {question}" if layout == "restate" else ""
    return f"{task.prompt(question)}\n{attempt}{FEEDBACK}{feedback}{restated}\n{header}"


def drill_record(task, rec: dict, layout: str) -> dict | None:
    """An `improvement` record (attempt in the prompt, feedback + revision + verdict in the completion)
    -> a record whose completion is the first revision only."""
    question = rec["prompt"][len("Q: "): rec["prompt"].index("\n" + formats.answer_header(task.info))]
    attempt = rec["prompt"][len(task.prompt(question)) + 1:]
    comp = rec["completion"]
    if not comp.startswith(FEEDBACK):
        return None
    header = "\n" + formats.answer_header(task.info, updated=True)
    if header not in comp:
        return None
    feedback, rest = comp[len(FEEDBACK):].split(header, 1)
    revision = rest.split(FEEDBACK, 1)[0]  # "\n(1) ... (Final response) ..."
    prompt = revision_context(task, question, attempt, feedback, layout)
    return {"prompt": prompt, "completion": revision, "weighted": False, "kind": "revision"}


def main(argv=None) -> int:
    ap = drill_parser(__doc__, "comma-separated train.jsonl files with improvement records")
    ap.add_argument("--layout", choices=["plain", "restate"], required=True)
    args = ap.parse_args(argv)
    t0 = time.time()
    out, params, task = drill_setup(args)
    recs = []
    for f in args.records.split(","):
        for r in read_jsonl(f):
            if r.get("kind") == "improvement":
                d = drill_record(task, r, args.layout)
                if d:
                    recs.append(d)
    rng = random.Random(args.seed)
    rng.shuffle(recs)
    recs = recs[: args.max_records]
    write_jsonl(out / "train.jsonl", recs)

    tm = train_drill(args, params, recs, out)

    items = []
    for p in read_jsonl(args.attempts):
        if p["first_attempt_correct"] or not p.get("first_attempt"):
            continue
        fb = task.feedback(p["question"], p["first_attempt"])
        if fb.is_correct:
            continue
        items.append((p, revision_context(task, p["question"], p["first_attempt"], fb.text, args.layout)))
    ecfg = section(params, "evaluation", args.task)
    rows = []
    for name, path in (("start", args.m0), ("trained", out / "model")):
        mdl, tk = load_for_inference(path)
        gens = generate(mdl, tk, [c for _, c in items], max_new_tokens=int(ecfg["max_new_tokens"]),
                        stop=["\nFeedback:", "\nQ:", "\n\n"], batch_size=64)
        fixed = [task.is_correct(task.parse_answer(g.text), p["gold"]) for (p, _), g in zip(items, gens)]
        rows.append({"model": name, "fixed": sum(fixed), "n": len(items), "interval": bootstrap_interval(fixed)})
        write_jsonl(out / f"revisions-{name}.jsonl",
                    [{"question": p["question"], "gold": p["gold"], "revision": g.text, "fixed": f}
                     for (p, _), g, f in zip(items, gens, fixed)])
    result = {"args": vars(args), "records": len(recs),
              "train": {k: tm[k] for k in ("final_loss", "steps", "wall_time_s", "tokens_per_s")},
              "oracle_revision": rows, "wall_s": round(time.time() - t0, 1)}
    write_json(out / "result.json", result)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
