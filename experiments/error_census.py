"""Research probe: what a model's own mistakes are, from the scripted FBK's first feedback on them.

Reads the records of `own_attempts.py --layout judge` (each wrong attempt sits in the prompt and its
first completion line is FBK's feedback) and counts, over the model's wrong attempts, where the first
wrong step is and why (FBK's reason with numbers, quoted parts and dates blanked, so that equal
kinds of mistakes share one line). Given `--task`, for questions that list options (date understanding,
logical deduction) it also counts how many attempts, right and wrong, answer with something that is
not one of the options (read by the task's answer parser; a lettered option counts by its letter or
its text): a mistake a model could catch by comparing, without recomputing. Prints the tables and
writes them as JSON. Usage:

    python experiments/error_census.py runs/du-own/train.jsonl --task date_understanding --out runs/du-own/census.json
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter

from tripost import formats
from tripost.feedback import answer_is_listed
from tripost.io import read_jsonl, write_json
from tripost.params import load_params
from tripost.tasks import task_from_params

_STEP = re.compile(r"In step \(([^)]*)\)")


def judged(task, prompt: str) -> tuple[str, str]:
    """(question, attempt) of a judge-layout prompt (`Q: <question>\n<answer header>\n<attempt>`)."""
    header = "\n" + formats.answer_header(task.info) + "\n"
    question, attempt = prompt[len("Q: "):].split(header, 1)
    return question, attempt


def reason_template(feedback: str) -> str:
    """FBK's reason for the first wrong step, with the specifics blanked."""
    reason = feedback.split("This is because", 1)[1] if "This is because" in feedback else feedback
    reason = re.sub(r'"[^"]*"', '"…"', reason)
    reason = re.sub(r"\([^()]*\)", "(…)", reason)
    reason = re.sub(r"-?\d+(?:/\d+)*", "#", reason)
    reason = re.sub(r"\b(January|February|March|April|May|June|July|August|September|October|November|December)"
                    r"\b", "<month>", reason)
    return " ".join(reason.split()).strip(" .")


def census(records: list[dict], task=None) -> dict:
    """{'wrong': n, 'steps': {...}, 'reasons': {...}} over the feedback of every rejected attempt (records
    whose first completion line names a wrong step). The scripted IMP's revision is right, so with
    scripted FBK/IMP these are the model's own attempts, one per edited question. With the `task`, also
    'answer_in_options': right and wrong attempts by whether their answer is one of the question's
    options, read by the task's own answer parser (`tripost.feedback.answer_is_listed`: a lettered
    option counts by its letter or its text)."""
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
        listed = answer_is_listed(task, *judged(task, r["prompt"])) if task is not None else None
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
    ap.add_argument("--task", default="", help="the records' task: adds the answer-in-options count")
    ap.add_argument("--params", default="params.yaml", help="builds the task with its data options")
    ap.add_argument("--out", default="")
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args(argv)
    task = task_from_params(load_params(args.params), args.task) if args.task else None
    c = census(read_jsonl(args.records), task)
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
