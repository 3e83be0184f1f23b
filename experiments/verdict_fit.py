"""Research probe: has a trained model learned the verdicts of its *own training records*?

For records whose masked prompt ends with an attempt (judge layout: `improvement`, `truncated`,
`direct_correct`; verification records: `verify_wrong`, `verify_right`), the trained model writes its first feedback after
that very prompt (greedy, one line) and the verdict is read by its words, by `_common.verdict`
(as `verify_drill.verdict_counts` reads it, but with one-step rationales): "In step (" anywhere rejects, any other line starting "Step (1)"
accepts ("Step (1) is correct." is FBK's verdict on a one-step attempt). A model that rejects its
training records' wrong attempts no more often than its test attempts' has not fitted the verdict at
all (underfitting, not overfitting). Also reported: how often each verdict follows a `Feedback:` cue in
the records' trained text, the prior the loss sees.

    python experiments/verdict_fit.py --run runs/du-judge-from19 --n 400
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

from tripost.io import read_jsonl, write_json
from tripost.processing import FEEDBACK

sys.path.insert(0, str(Path(__file__).parent))
from _common import verdict  # noqa: E402

WRONG_KINDS = ("improvement", "truncated", "verify_wrong")
RIGHT_KINDS = ("direct_correct", "verify_right")


def cue_prior(records: list[dict]) -> dict:
    """How often each verdict opens a trained feedback (every `Feedback:` in a completion), by record kind."""
    out: dict[str, dict[str, int]] = {}
    for r in records:
        segs = r["completion"].split(FEEDBACK.strip())
        for seg in segs if r["prompt"].endswith(FEEDBACK) else segs[1:]:
            v = verdict(seg.split("\n", 1)[0])
            out.setdefault(r["kind"], {}).setdefault(v, 0)
            out[r["kind"]][v] += 1
    return out


def judged_prompt(rec: dict) -> str | None:
    """The context in which the model gives its first verdict on the record's attempt; None when the
    prompt holds no attempt (a paper-layout record, whose prompt ends with the answer header)."""
    prompt = rec["prompt"].removesuffix(FEEDBACK)
    if not prompt.rsplit("\n", 1)[-1].startswith("("):  # a step or the final response ends an attempt
        return None
    return prompt + FEEDBACK


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", required=True, help="a probe's output folder (train.jsonl and model/)")
    ap.add_argument("--model", default="", help="default <run>/model")
    ap.add_argument("--n", type=int, default=400, help="records judged (a seeded sample)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    from tripost.generation import generate
    from tripost.modeling import load_for_inference

    run = Path(args.run)
    records = read_jsonl(run / "train.jsonl")
    judged = [r for r in records if r["kind"] in WRONG_KINDS + RIGHT_KINDS and judged_prompt(r)]
    if not judged:
        raise SystemExit(f"{run / 'train.jsonl'}: no record with an attempt in its prompt (judge layout or "
                         f"verification records, kinds {', '.join(WRONG_KINDS + RIGHT_KINDS)})")
    random.Random(args.seed).shuffle(judged)
    judged = judged[: args.n]
    model, tok = load_for_inference(args.model or run / "model")
    gens = generate(model, tok, [judged_prompt(r) for r in judged], max_new_tokens=120, stop=["\n"], batch_size=64)
    counts = {"wrong": {"accept": 0, "reject": 0, "other": 0}, "right": {"accept": 0, "reject": 0, "other": 0}}
    for r, g in zip(judged, gens):
        counts["wrong" if r["kind"] in WRONG_KINDS else "right"][verdict(g.text)] += 1
    result = {"args": vars(args), "training_records_judged": counts, "cue_prior": cue_prior(records)}
    write_json(run / "verdict-fit.json", result)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
