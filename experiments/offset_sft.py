"""Research probe: does M0 answer a question that is not at the start of its context?

Self-improvement asks the model to write its revision ~150-400 tokens into the context, after the
question, its own first attempt and a feedback line; M0 was only ever trained on a question at
position 0 with nothing before it. This probe measures M0's greedy accuracy with 0, 1 and 2 solved
examples placed before the test question, then continues M0's SFT for `--steps` steps on gold
records whose question comes after 0-3 other solved examples (only the last answer is trained) and
measures the same again. Writes `<out>/result.json`; `<out>/model` is the continued model.

    python experiments/offset_sft.py --task word_sorting --out runs/ws-offset --steps 300
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

from tripost.generation import generate
from tripost.io import write_json
from tripost.modeling import load_for_inference, load_for_training
from tripost.params import section
from tripost.tasks import Example
from tripost.training import extra_sft_examples, train, train_config

sys.path.insert(0, str(Path(__file__).parent))
from _common import setup  # noqa: E402


def with_context(task, question: str, before: list[Example]) -> str:
    """The prompt for `question` after the solved examples `before` (each: prompt + gold rationale)."""
    parts = [f"{task.prompt(e.question)}\n{e.rationale}" for e in before]
    return "\n".join(parts + [task.prompt(question)])


def accuracy(task, model, tok, tests: list[Example], others: list[Example], k: int, max_new_tokens: int) -> float:
    prompts = [with_context(task, e.question, [others[(i + j) % len(others)] for j in range(k)])
               for i, e in enumerate(tests)]
    gens = generate(model, tok, prompts, max_new_tokens=max_new_tokens, stop=["\nFeedback:", "\nQ:", "\n\n"],
                    batch_size=64)
    return sum(bool(task.is_correct(task.parse_answer(g.text), e.answer)) for g, e in zip(gens, tests)) / len(tests)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", required=True)
    ap.add_argument("--m0", default="")
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--max-before", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args(argv)
    t_start = time.time()
    s = setup(args.task, args.m0, args.out, args.params)
    params, task, m0, out, test, val = s.params, s.task, s.m0, s.out, s.test, s.val
    seen_test = [e for e in test if e.split == "seen"]
    context = s.train[:200]
    mnt = int(section(params, "evaluation", args.task)["max_new_tokens"])
    buckets = s.seen_buckets

    def measure(path) -> dict:
        model, tok = load_for_inference(path)
        return {f"before_{k}": accuracy(task, model, tok, seen_test, context, k, mnt) for k in (0, 1, 2)}

    res = {"args": vars(args), "m0": measure(m0)}
    print("M0", res["m0"], flush=True)
    n = args.steps * args.batch
    fresh = extra_sft_examples(task, n + 4 * n, buckets, {e.question for e in test + val}, seed=5000 + args.seed)
    targets, pool = fresh[:n], fresh[n:]
    rng = random.Random(args.seed)
    records = []
    for i, e in enumerate(targets):
        k = rng.randint(0, args.max_before)
        before = [pool[rng.randrange(len(pool))] for _ in range(k)]
        records.append({"prompt": with_context(task, e.question, before), "completion": "\n" + e.rationale,
                        "weighted": False, "kind": "gold"})
    cfg = train_config(params, "sft", args.task, mask_prompt=True, max_steps=args.steps, lr=args.lr,
                       batch_size=args.batch, seed=args.seed, save_steps=10**6, warmup_ratio=0.05, lr_scheduler="cosine")
    model, tok = load_for_training(m0, "none")
    tm = train(model, tok, records, out / "model", cfg, checkpoint_dir=out / "ckpt")
    res["train"] = {k: tm[k] for k in ("final_loss", "steps", "wall_time_s", "tokens_per_s")}
    res["continued"] = measure(out / "model")
    res["wall_s"] = round(time.time() - t_start, 1)
    write_json(out / "result.json", res)
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
