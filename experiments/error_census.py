"""Research probe: what a model's own mistakes are, from the scripted FBK's first feedback on them.

Reads the records of `own_attempts.py --layout judge` (each wrong attempt sits in the prompt and its
first completion line is FBK's feedback) and counts, over the model's wrong attempts, where the first
wrong step is and why (FBK's reason with numbers, quoted parts and dates blanked, so that equal
kinds of mistakes share one line). For tasks whose questions list options (date understanding,
logical deduction) it also counts how many attempts, right and wrong, answer with a text that is not
one of the options: a mistake a model could catch by comparing, without recomputing. Prints the
tables and writes them as JSON. Usage:

    python experiments/error_census.py runs/msa-own/train.jsonl --out runs/msa-own/census.json
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter

from tripost.io import read_jsonl, write_json

_STEP = re.compile(r"In step \(([^)]*)\)")
_ANSWER = re.compile(r"So the answer is (.*?)\.?$")


def options_check(prompt: str) -> bool | None:
    """Whether the attempt in a judge-layout prompt answers with one of the question's options; None when
    the question lists none or the attempt states no answer."""
    if "\nOptions:\n" not in prompt:
        return None
    rest = prompt.split("\nOptions:\n", 1)[1]
    options, attempt = [], ""
    lines = rest.split("\n")
    for i, line in enumerate(lines):
        if line.startswith("Answer:"):
            attempt = "\n".join(lines[i + 1:])
            break
        options.append(line.strip())
    answers = [m.group(1).strip() for m in map(_ANSWER.search, attempt.splitlines()) if m]
    if not answers:
        return None
    return answers[-1] in options


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
    in_options = Counter()  # ("right"|"wrong", True|False) -> attempts
    for r in records:
        if r.get("kind") == "gold":
            continue
        first = r["completion"].lstrip("\n")
        if not first.startswith("Feedback:"):
            continue
        line = first.split("\n", 1)[0]
        m = _STEP.search(line)
        listed = options_check(r["prompt"])
        if listed is not None:
            in_options["wrong" if m else "right", listed] += 1
        if not m:  # an accepted (right) attempt
            continue
        n += 1
        steps[m.group(1)] += 1
        reasons[reason_template(line)] += 1
    out = {"wrong": n, "steps": dict(steps.most_common()), "reasons": dict(reasons.most_common())}
    if in_options:
        out["answer_in_options"] = {f"{k} attempts": {"listed": in_options[k, True], "not listed": in_options[k, False]}
                                    for k in ("right", "wrong")}
    return out


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
    if "answer_in_options" in c:
        print("\n| attempts | answer is an option | answer is not an option |\n|---|---|---|")
        for k, v in c["answer_in_options"].items():
            print(f"| {k} | {v['listed']:,} | {v['not listed']:,} |")
    if args.out:
        write_json(args.out, c)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
