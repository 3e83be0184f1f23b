"""Research probe: what a model's own mistakes are, from the scripted FBK's first feedback on them.

Reads the records of `own_attempts.py --layout judge` (each wrong attempt sits in the prompt and its
first completion line is FBK's feedback) and counts, over the model's wrong attempts, where the first
wrong step is and why (FBK's reason with numbers, quoted parts and dates blanked, so that equal
kinds of mistakes share one line). Prints two tables and writes them as JSON. Usage:

    python experiments/error_census.py runs/msa-own/train.jsonl --out runs/msa-own/census.json
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter

from tripost.io import read_jsonl, write_json

_STEP = re.compile(r"In step \(([^)]*)\)")


def reason_template(feedback: str) -> str:
    """FBK's reason for the first wrong step, with the specifics blanked."""
    reason = feedback.split("This is because", 1)[1] if "This is because" in feedback else feedback
    reason = re.sub(r'"[^"]*"', '"…"', reason)
    reason = re.sub(r"\([^()]*\)", "(…)", reason)
    reason = re.sub(r"-?\d+(?:/\d+)*", "#", reason)
    reason = re.sub(r"\b(January|February|March|April|May|June|July|August|September|October|November|December)"
                    r"\b", "<month>", reason)
    return " ".join(reason.split()).strip(" .")


def census(records: list[dict]) -> dict:
    """{'wrong': n, 'steps': {...}, 'reasons': {...}} over the feedback of every rejected attempt (records
    whose first completion line names a wrong step). The scripted IMP's revision is right, so with
    scripted FBK/IMP these are the model's own attempts, one per edited question."""
    steps, reasons, n = Counter(), Counter(), 0
    for r in records:
        if r.get("kind") == "gold":
            continue
        first = r["completion"].lstrip("\n")
        if not first.startswith("Feedback:"):
            continue
        line = first.split("\n", 1)[0]
        m = _STEP.search(line)
        if not m:  # an accepted (right) attempt
            continue
        n += 1
        steps[m.group(1)] += 1
        reasons[reason_template(line)] += 1
    return {"wrong": n, "steps": dict(steps.most_common()), "reasons": dict(reasons.most_common())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("records")
    ap.add_argument("--out", default="")
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args(argv)
    c = census(read_jsonl(args.records))
    print(f"wrong first attempts: {c['wrong']}\n\n| first wrong step | count |\n|---|---|")
    for k, v in c["steps"].items():
        print(f"| {k} | {v:,} |")
    print("\n| FBK's reason (specifics blanked) | count |\n|---|---|")
    for k, v in list(c["reasons"].items())[: args.top]:
        print(f"| {k} | {v:,} |")
    if args.out:
        write_json(args.out, c)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
