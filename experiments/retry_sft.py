"""Research probe: error correction learned in M0's own SFT ("retry data in pretraining").

Work on models trained from scratch (Ye et al., Physics of Language Models 2.2) finds that mistakes
followed by their correction help most when they are part of pretraining, not a short fine-tune
after it. Our M0's SFT is its pretraining. This probe trains M0 from scratch exactly like the `sft`
stage (same questions, steps, recipe), except that a share `--retry-share` of the gold examples is
replaced by a *retry* example of the same question: a planted mistake (`task.corrupt`), the scripted
FBK's feedback on it, IMP's revision and the revision's "correct" verdict, in TriPosT's improvement
format; every other example is the gold rationale followed by its "correct" verdict. The model then
learns, from thousands of examples, to judge an attempt and to revise it 150-400 tokens into the
context. Measured: the first attempt (greedy, the `+ft` reading) and the self-improving inference,
self-verification, and the revision given FBK's feedback. Writes `<out>/result.json`.

    python experiments/retry_sft.py --task word_sorting --out runs/ws-retry --retry-share 0.5
    python experiments/retry_sft.py --task word_sorting --out runs/ws-retry-m0 --faults m0
    python experiments/retry_sft.py --task word_sorting --out runs/ws-retry-own --attempts-from models/word_sorting/ft
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

from tripost.feedback import ScriptedBackend
from tripost.interaction import edit
from tripost.io import write_json, write_jsonl
from tripost.modeling import init_model
from tripost.params import section
from tripost.processing import gold_record, turn_records
from tripost.training import extra_sft_examples, train, train_config

sys.path.insert(0, str(Path(__file__).parent))
from _common import extra_test, setup  # noqa: E402
from own_attempts import evaluate_model, summarise  # noqa: E402
from ws_copy_faults import corrupt_like_m0  # noqa: E402


def plant(task, example, rng: random.Random, faults: str) -> tuple[str, str]:
    """(attempt, label of the planted step): one mistake planted in `example`'s gold rationale."""
    if faults == "m0":
        return corrupt_like_m0(task, example.question, rng)
    return task.corrupt(example.question, example.rationale, rng)


def greedy(model_dir, prompts: list[str], max_new_tokens: int) -> list[str]:
    """The model's greedy continuation of each prompt, stopped where an attempt ends."""
    from tripost.generation import generate
    from tripost.modeling import load_for_inference

    mdl, tk = load_for_inference(model_dir)
    gens = generate(mdl, tk, prompts, max_new_tokens=max_new_tokens, stop=["\nFeedback:", "\nQ:", "\n\n"],
                    batch_size=64)
    return [g.text for g in gens]


def retry_records(task, example, rng: random.Random, max_attempt_words: int, faults: str = "task",
                  attempt: str | None = None) -> list[dict]:
    """TriPosT's improvement records for a mistake in an attempt at `example` ([] if it has none):
    `attempt` when given (a model's own), else one planted in the gold rationale — `faults` "task"
    plants `task.corrupt`'s mistakes, "m0" (word sorting) M0's own kinds in their observed mix
    (`ws_copy_faults`)."""
    if attempt is None:
        attempt, _ = plant(task, example, rng, faults)
    if attempt == example.rationale:
        return []
    res = edit(task, ScriptedBackend(task), example.question, example.answer, attempt, max_rounds=5,
               max_attempt_words=max_attempt_words)
    row = {"question": example.question, "status": res.status, "attempts": res.attempts, "feedbacks": res.feedbacks}
    recs = [r for r in turn_records(task, row) if r["kind"] == "improvement"]
    if recs:  # the last revision is followed by its own verdict, as at test time
        recs[-1] = {**recs[-1], "completion": recs[-1]["completion"]
                    + f"\nFeedback: {task.feedback(example.question, res.attempts[-1]).text}"}
    return recs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--retry-share", type=float, default=0.5)
    ap.add_argument("--faults", choices=("task", "m0"), default="task",
                    help="planted mistakes: the task's corrupt, or (word sorting) M0's own kinds in their mix")
    ap.add_argument("--attempts-from", default="",
                    help="a model whose greedy attempts at the retry share's questions replace planted mistakes "
                         "(its wrong attempts become retry examples, its right ones gold examples: STaR's restart)")
    ap.add_argument("--continue-with", default="",
                    help="a model that writes every step after the planted one (greedy), so that the planted "
                         "mistake is followed by the steps the model itself writes after such a mistake")
    ap.add_argument("--continue-max-tokens", type=int, default=256,
                    help="cap on a continuation (a looping one would hold its whole batch to the task's limit)")
    ap.add_argument("--add", action="store_true",
                    help="retry examples come beside every gold example instead of replacing the chosen ones")
    ap.add_argument("--max-steps", type=int, default=0, help="> 0: overrides the sft recipe's max_steps")
    ap.add_argument("--m0", default="", help="the gold-only M0 to compare with (default models/<task>/ft)")
    ap.add_argument("--extra-test", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args(argv)
    if args.faults == "m0" and args.task != "word_sorting":
        ap.error("--faults m0 is measured for word_sorting only")
    if args.continue_with and args.attempts_from:
        ap.error("--continue-with and --attempts-from are two different sources of mistakes: give one")
    t_start = time.time()
    s = setup(args.task, args.m0, args.out, args.params)
    params, task, out = s.params, s.task, s.out
    test = s.test
    test_all = test + extra_test(s, args.extra_test)

    # 1. the sft stage's own examples (data/<task>/train.jsonl + sft.extra_examples fresh ones)
    cfg = train_config(params, "sft", args.task)
    if args.max_steps > 0:
        cfg["max_steps"] = args.max_steps
    excluded = {e.question for e in test + s.val}
    examples = s.train + extra_sft_examples(task, int(cfg["extra_examples"]), s.seen_buckets, excluded)
    rng = random.Random(args.seed)
    icfg = section(params, "interaction", args.task)
    records, kinds = [], {"gold": 0, "retry": 0}
    own: dict[str, str] = {}  # question -> the attempt its retry example starts from (else one is planted)
    chosen: list[bool] = []  # with a model's attempts: the retry share is drawn before generating (own rng)
    if args.attempts_from or args.continue_with:
        pick = random.Random(f"{args.seed}/retry-share")
        chosen = [pick.random() < args.retry_share for _ in examples]
    t0 = time.time()
    if args.attempts_from:  # the model's own greedy attempts at the chosen questions
        picked = [e for e, c in zip(examples, chosen) if c]
        texts = greedy(args.attempts_from, [task.prompt(e.question) for e in picked], int(icfg["max_new_tokens"]))
        own = {e.question: t for e, t in zip(picked, texts)}
        right = sum(task.is_correct(task.parse_answer(t), e.answer) for e, t in zip(picked, texts))
        kinds["own_attempts"] = {"n": len(own), "right": right, "generation_s": round(time.time() - t0, 1)}
        print("own attempts", kinds["own_attempts"], flush=True)
    if args.continue_with:  # plant in every chosen question, then let the model write the rest
        prefixes = {}
        for e, c in zip(examples, chosen):
            if not c:
                continue
            planted, label = plant(task, e, rng, args.faults)
            lines = planted.split("\n")
            at = next(i for i, ln in enumerate(lines) if ln.startswith(f"({label})"))
            prefixes[e.question] = "\n".join(lines[: at + 1])
        qs = list(prefixes)
        texts = greedy(args.continue_with, [f"{task.prompt(q)}\n{prefixes[q]}\n" for q in qs], args.continue_max_tokens)
        own = {q: (prefixes[q] + "\n" + t.strip("\n")).strip("\n") for q, t in zip(qs, texts)}
        kinds["continued"] = {"n": len(own), "generation_s": round(time.time() - t0, 1)}
        print("planted and continued", kinds["continued"], flush=True)
    for i, e in enumerate(examples):
        c = chosen[i] if chosen else rng.random() < args.retry_share
        recs = retry_records(task, e, rng, int(icfg["max_attempt_words"]), args.faults,
                             attempt=own.get(e.question)) if c else []
        if recs:
            records.append(rng.choice(recs))
            kinds["retry"] += 1
            if args.add:
                records.append(gold_record(task, e))
                kinds["gold"] += 1
        elif c and args.attempts_from:  # its own attempt was right: the gold record (the same rationale)
            records.append(gold_record(task, e))
            kinds["own_right"] = kinds.get("own_right", 0) + 1
        else:
            records.append(gold_record(task, e))
            kinds["gold"] += 1
    rng.shuffle(records)
    write_jsonl(out / "train.jsonl", records)
    print("records", kinds, flush=True)

    # 2. M0's recipe from scratch on these records
    model, tok = init_model(section(params, "model", args.task), texts=[r["prompt"] + r["completion"] for r in records])
    tm = train(model, tok, records, out / "model", cfg, checkpoint_dir=out / "ckpt")

    # 3. evaluation: the new model, and the gold-only M0 (cached) for the comparison
    ecfg = {**section(params, "evaluation", args.task), "batch_size": 64}
    results = {}
    cache = out.parent / f"m0-{str(s.m0).strip('/').replace('/', '_')}-eval.json"
    if cache.exists():
        results["m0"] = json.loads(cache.read_text())
    elif Path(s.m0).exists():  # M0's greedy answer (one call: its first attempt), cached for later probes
        results["m0"], _ = evaluate_model(task, s.m0, test_all, {**ecfg, "max_generation_calls": 1})
        write_json(cache, results["m0"])
    res, preds = evaluate_model(task, out / "model", test_all, ecfg)
    write_jsonl(out / "predictions-retry.jsonl", preds)
    results["retry"] = res
    result = {"args": vars(args), "records": kinds,
              "train": {k: tm[k] for k in ("final_loss", "steps", "wall_time_s", "tokens_per_s")},
              "summary": summarise(results, test_split_n=len(test)),
              "oracle_revision": {k: v.get("oracle_revision") for k, v in results.items()},
              "wall_s": round(time.time() - t_start, 1)}
    write_json(out / "result.json", result)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
