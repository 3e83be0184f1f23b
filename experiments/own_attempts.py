"""Research probe: teach a fixed M0 to judge and revise its own attempts, at scale.

One run = one recipe on one task, from a fixed M0:

1. interaction pool: `--pool` freshly generated seen-bucket questions (test and val questions excluded);
2. M0 writes one attempt per question (greedy = the attempts it makes at test time, or sampled);
3. the scripted FBK/IMP edit every wrong attempt (tripost.interaction.edit, up to 5 rounds);
4. records: `paper` layout (tripost.processing.turn_records: the attempt itself is trained) or
   `judge` layout (the model's attempt sits in the masked prompt: only the feedback, the revision and
   the revision's feedback are trained), plus `--replay` gold examples of other fresh questions;
5. weighted SL from M0 (answer-only loss);
6. evaluation on the test set (+ `--extra-test` fresh seen questions) with the self-improving
   inference: accuracy, first-attempt accuracy, revisions that fix / break, and self-verification
   (does the model's own first feedback agree with the scripted FBK?), each with a 95% bootstrap
   interval; M0's greedy answer on the same questions is the baseline.

Writes `<out>/result.json` (every number and the exact arguments). Usage:

    python experiments/own_attempts.py --task word_sorting --out runs/ws-judge-6k --pool 6000
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

from tripost import formats
from tripost.evaluation import bootstrap_interval, evaluate_self_improve
from tripost.feedback import ScriptedBackend, answer_is_listed, options_check
from tripost.generation import generate
from tripost.interaction import edit
from tripost.io import read_jsonl, write_json, write_jsonl
from tripost.modeling import load_for_inference
from tripost.params import section
from tripost.processing import gold_record, turn_records
from tripost.training import extra_sft_examples

sys.path.insert(0, str(Path(__file__).parent))
from _common import extra_test, setup, train_drill  # noqa: E402


def judge_records(task, row: dict) -> list[dict]:
    """The `judge` layout: each (attempt, feedback[, revision]) turn with the attempt in the prompt."""
    out = []
    for rec in turn_records(task, row):
        if rec["kind"] == "final_correct":  # the improvement record already ends with this verdict
            continue
        comp = rec["completion"]
        cut = comp.index("\nFeedback:")
        prompt, completion = rec["prompt"] + comp[:cut], comp[cut:]
        if rec["kind"] == "improvement":  # the revision is followed by its own verdict at test time
            revised = completion.rsplit(formats.answer_header(task.info, updated=True) + "\n", 1)[1]
            verdict = formats.correct_feedback_text(formats.parse_steps(revised))
            after = task.feedback(row["question"], revised)
            if not after.is_correct:  # an intermediate revision: its verdict is FBK's
                verdict = after.text
            completion += f"\nFeedback: {verdict}"
        out.append({**rec, "prompt": prompt, "completion": completion, "weighted": False})
    return out


def with_options_check(task, rec: dict) -> dict:
    """`rec` with every feedback opened by the options check (tripost.feedback.options_check) of the
    attempt it judges (the attempt in the prompt, then each revision)."""
    text = rec["prompt"] + rec["completion"]
    question = text.split("Q: ", 1)[1].split("\n" + formats.ANSWER_HEADER, 1)[0]
    lines, attempt = [], []
    for line in text.split("\n"):
        if line.startswith(formats.FEEDBACK_TAG):
            head = options_check(task, question, "\n".join(attempt))
            if head:
                line = f"{formats.FEEDBACK_TAG} {head} {line[len(formats.FEEDBACK_TAG):].strip()}"
            attempt = []
        elif formats.parse_step(line) is not None:
            attempt.append(line)
        lines.append(line)
    new = "\n".join(lines)
    cut = len(rec["prompt"])
    if new[:cut] != rec["prompt"]:  # a feedback line inside the prompt (the paper layout's later turns)
        raise ValueError("with_options_check: a record whose prompt holds feedback is not supported")
    return {**rec, "completion": new[cut:]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", required=True)
    ap.add_argument("--m0", default="", help="default models/<task>/ft")
    ap.add_argument("--out", required=True)
    ap.add_argument("--pool", type=int, default=6000)
    ap.add_argument("--temperature", type=float, default=0.0, help="0 = greedy attempts")
    ap.add_argument("--layout", choices=["paper", "judge"], default="judge")
    ap.add_argument("--replay", type=int, default=2000, help="gold examples of other fresh questions")
    ap.add_argument("--correct-share", type=float, default=1.0,
                    help="keep this share of direct-correct records (1 = all)")
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--extra-test", type=int, default=300)
    ap.add_argument("--records", default="", help="reuse the records of an earlier run (skips steps 1-4)")
    ap.add_argument("--max-records", type=int, default=0, help="> 0: keep at most this many non-gold records")
    ap.add_argument("--kinds", default="", help="comma-separated record kinds to keep (default all)")
    ap.add_argument("--m0-greedy-only", action="store_true",
                    help="evaluate M0 with one generation call (its greedy answer; no SI diagnostic)")
    ap.add_argument("--records-only", action="store_true",
                    help="stop after the records and M0's greedy test attempts (for the drill probes)")
    ap.add_argument("--test-limit", type=int, default=0, help="> 0: only the first N test questions (dry runs)")
    ap.add_argument("--options-check", action="store_true",
                    help="every feedback opens with whether the judged answer is one of the options "
                         "(tripost.feedback.options_check); also the oracle revision's feedback")
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args(argv)

    t_start = time.time()
    s = setup(args.task, args.m0, args.out, args.params)
    params, task, m0, out, val, train_rows, seen_buckets = s.params, s.task, s.m0, s.out, s.val, s.train, s.seen_buckets
    test = s.test
    if args.test_limit > 0:
        test = test[: args.test_limit // 2] + test[-(args.test_limit // 2):]
    # Extra seen test questions (fixed seed, independent of --seed), never trained on.
    extra = extra_test(s, args.extra_test, test)
    test_all = test + extra
    excluded = {e.question for e in test_all + val}
    fresh = extra_sft_examples(task, args.pool + args.replay, seen_buckets, excluded, seed=1000 + args.seed)
    pool, replay = fresh[: args.pool], fresh[args.pool:]

    if args.records:
        records, status, gen_s = reuse_records(args, task)
    else:
        records, status, gen_s = make_records(args, task, params, m0, pool, replay)
    if args.options_check:
        records = [r if r["kind"] == "gold" else with_options_check(task, r) for r in records]
    write_jsonl(out / "train.jsonl", records)
    kinds = {}
    for r in records:
        kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
    n_turn = sum(v for k, v in kinds.items() if k != "gold")
    train_and_evaluate(args, task, params, m0, out, records, test, test_all, status, gen_s, n_turn, kinds, t_start)
    return 0


def reuse_records(args, task):
    rng = random.Random(args.seed)
    rows = read_jsonl(args.records)
    keep = set(args.kinds.split(",")) if args.kinds else None
    if args.layout == "judge":
        rows = [r for r in rows if r["kind"] != "final_correct"]
    if keep:
        rows = [r for r in rows if r["kind"] in keep]
    turn = [r for r in rows if r["kind"] != "gold"]
    gold = [r for r in rows if r["kind"] == "gold"][: args.replay]
    if args.max_records and len(turn) > args.max_records:
        turn = rng.sample(turn, args.max_records)
    records = turn + gold
    rng.shuffle(records)
    return records, {"reused": args.records}, 0.0


def make_records(args, task, params, m0, pool, replay):
    # 2. M0's attempts on the pool
    t0 = time.time()
    model, tok = load_for_inference(m0)
    icfg = section(params, "interaction", args.task)
    gens = generate(model, tok, [task.prompt(e.question) for e in pool], max_new_tokens=int(icfg["max_new_tokens"]),
                    do_sample=args.temperature > 0, temperature=args.temperature or 1.0,
                    stop=["\nFeedback:", "\nQ:", "\n\n"], batch_size=64, seed=args.seed)
    gen_s = time.time() - t0

    # 3. scripted FBK/IMP
    backend = ScriptedBackend(task)
    rows, status = [], {}
    for i, (e, g) in enumerate(zip(pool, gens)):
        res = edit(task, backend, e.question, e.answer, g.text, max_rounds=5,
                   max_attempt_words=int(icfg["max_attempt_words"]))
        status[res.status] = status.get(res.status, 0) + 1
        rows.append({"pass": 0, "index": i, "question": e.question, "status": res.status,
                     "attempts": res.attempts, "feedbacks": res.feedbacks})
    rng = random.Random(args.seed)
    records = []
    for r in rows:
        if r["status"] == "direct_correct" and rng.random() >= args.correct_share:
            continue
        records += judge_records(task, r) if args.layout == "judge" else turn_records(task, r)
    if args.max_records and len(records) > args.max_records:
        records = rng.sample(records, args.max_records)
    records += [gold_record(task, e) for e in replay]
    rng.shuffle(records)
    return records, status, gen_s


def train_and_evaluate(args, task, params, m0, out, records, test, test_all, status, gen_s, n_turn, kinds, t_start):
    # 5. weighted SL from M0 (answer-only loss)
    tm = {"final_loss": None, "steps": 0, "wall_time_s": 0.0, "tokens_per_s": None}
    if not args.records_only:
        tm = train_drill(args, params, records, out, start=m0)

    # 6. evaluation: the trained model and M0 under the self-improving inference
    ecfg = {**section(params, "evaluation", args.task), "batch_size": 64}
    results = {}
    runs = (("m0", m0),) if args.records_only else (("m0", m0), ("trained", out / "model"))
    for name, path in runs:
        cache = out.parent / f"m0-{str(m0).strip('/').replace('/', '_')}-eval.json"
        if name == "m0" and cache.exists():
            results[name] = json.loads(cache.read_text())
            continue
        calls = 1 if name == "m0" and args.m0_greedy_only else ecfg["max_generation_calls"]
        res, preds = evaluate_model(task, path, test_all, {**ecfg, "max_generation_calls": calls},
                                    options=args.options_check)
        write_jsonl(out / f"predictions-{name}.jsonl", preds)
        results[name] = res
        if name == "m0":
            write_json(cache, res)
    summary = summarise(results, test_split_n=len(test))
    result = {"args": vars(args), "interaction": {"status": status, "generation_s": round(gen_s, 1)},
              "records": {"turn": n_turn, "total": len(records), "kinds": kinds},
              "train": {k: tm[k] for k in ("final_loss", "steps", "wall_time_s", "tokens_per_s")},
              "summary": summary, "oracle_revision": {k: v["oracle_revision"] for k, v in results.items()},
              "wall_s": round(time.time() - t_start, 1)}
    write_json(out / "result.json", result)
    print(json.dumps(result, indent=1))


def evaluate_model(task, model_dir, questions, ecfg, options: bool = False) -> tuple[dict, list[dict]]:
    """The model under the self-improving inference (`ecfg`) on `questions`, with one row per question
    and the oracle-revision diagnostic: (result, predictions)."""
    mdl, tk = load_for_inference(model_dir)
    res = evaluate_self_improve(task, mdl, tk, questions, ecfg)
    preds = res.pop("predictions")
    res["rows"] = [{k: p[k] for k in ("split", "correct", "first_attempt_correct", "num_revisions")} for p in preds]
    res["verification"]["wrong_by_options"] = by_options(task, preds)
    res["oracle_revision"] = oracle_revision(task, mdl, tk, preds, ecfg, options)
    return res, preds


def oracle_revision(task, model, tokenizer, preds, ecfg, options: bool = False) -> dict:
    """Refinement alone: for every wrong first attempt, the scripted FBK's feedback is given and the model
    writes one `Updated Answer` (greedy). How often is that revision right?"""
    header = formats.answer_header(task.info, updated=True)
    items = []
    for p in preds:
        if p["first_attempt_correct"] or not p.get("first_attempt"):
            continue
        try:
            fb = task.feedback(p["question"], p["first_attempt"])
        except Exception:  # noqa: BLE001
            continue
        if fb.is_correct:
            continue
        text = f"{options_check(task, p['question'], p['first_attempt'])} {fb.text}".strip() if options else fb.text
        items.append((p, f"{task.prompt(p['question'])}\n{p['first_attempt']}\nFeedback: {text}\n{header}"))
    gens = generate(model, tokenizer, [t for _, t in items], max_new_tokens=int(ecfg["max_new_tokens"]),
                    stop=["\nFeedback:", "\nQ:", "\n\n"], batch_size=64) if items else []
    fixed = sum(1 for (p, _), g in zip(items, gens) if task.is_correct(task.parse_answer(g.text), p["gold"]))
    same = sum(1 for (p, _), g in zip(items, gens) if g.text.strip() == p["first_attempt"].strip())
    return {"wrong_first_attempts": len(items), "fixed": fixed, "identical_to_first": same,
            "fixed_rate": fixed / len(items) if items else None}


def by_options(task, preds: list[dict]) -> dict:
    """Wrong first attempts split by whether their answer is one of the question's options: how many the
    model's own first feedback rejected and how many its self-improving inference fixed. {} for tasks
    without options."""
    out = {}
    for p in preds:
        if p["first_attempt_correct"] or not p.get("first_attempt"):
            continue
        listed = answer_is_listed(task, p["question"], p["first_attempt"])
        if listed is None:
            continue
        d = out.setdefault("listed" if listed else "not listed",
                           {"wrong": 0, "rejected": 0, "fixed": 0})
        fb = formats.parse_feedback(p["first_feedback"]) if p.get("first_feedback") else None
        d["wrong"] += 1
        d["rejected"] += fb is not None and not fb.is_correct
        d["fixed"] += bool(p["correct"])
    return out


def summarise(results: dict, test_split_n: int) -> dict:
    """Accuracies with 95% bootstrap intervals on (a) the official test set, (b) all seen questions."""
    out = {}
    for name, res in results.items():
        rows = res["rows"]
        official = rows[:test_split_n]
        seen = [r for r in rows if r["split"] == "seen"]
        d = {}
        for label, rs in (("official_total", official), ("seen_all", seen)):
            d[label] = {
                "si": bootstrap_interval([r["correct"] for r in rs]),
                "first": bootstrap_interval([r["first_attempt_correct"] for r in rs]),
                "n": len(rs),
                "fixed": sum(1 for r in rs if r["correct"] and not r["first_attempt_correct"]),
                "broken": sum(1 for r in rs if not r["correct"] and r["first_attempt_correct"]),
                "revised": sum(1 for r in rs if r["num_revisions"] > 0),
            }
        d["verification"] = res["verification"]
        out[name] = d
    return out


if __name__ == "__main__":
    sys.exit(main())
