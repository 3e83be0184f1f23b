"""Training throughput of weighted SL: real (non-pad) tokens/s with and without length grouping.

    python benchmarks/train_throughput.py [--steps 25] [--batch-size 16]

Same model (params.yaml `model:` shape, from scratch), same records, same number of optimizer
steps; the only difference is the sampler: `group_by_length` (batches of similar lengths, padded
to their longest) vs plain random batches. Records mix short and long texts the way TriPosT data
does (gold answers, and improvement examples about twice as long). Writes
benchmarks/results/train_throughput.json.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "src"))

from _common import machine, table  # noqa: E402


def synthetic_records(n: int, seed: int = 0) -> list[dict]:
    """Arithmetic chains of 1..12 steps: texts of ~40 to ~600 tokens; a third are improvement
    examples (attempt + feedback + second attempt, weighted), as in TriPosT data."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        k = rng.choice([1, 2, 3, 4, 6, 8, 12])
        a = rng.randint(-99, 99)
        steps, x = [], a
        for s in range(1, k + 1):
            b = rng.randint(-99, 99)
            steps.append(f"({s}) Let's calculate {x} + {b} = {x + b}.")
            x += b
        comp = "\n" + "\n".join(steps) + f"\n(Final response) So the answer is {x}."
        weighted = i % 3 == 0
        if weighted:
            comp += "\nFeedback: Step (1) is correct. In step (2) the part \" 1 \" is incorrect.\nUpdated Answer: Let's think step by step." + comp
        out.append({"prompt": f"Q: chain of {k} starting at {a}\nAnswer: Let's think step by step.",
                    "completion": comp, "weighted": weighted, "kind": "improvement" if weighted else "gold"})
    return out


def task_records(n: int) -> list[dict] | None:
    try:
        from tripost.tasks import TASK_NAMES, get_task
        from tripost.training import sft_records

        recs = []
        for name in TASK_NAMES:
            task = get_task(name)
            recs += sft_records(task, task.generate(n // len(TASK_NAMES), "seen", seed=123))
        random.Random(0).shuffle(recs)
        return recs
    except Exception as e:  # task modules missing or broken
        print(f"(task generators unavailable: {e!r}; using synthetic records)")
        return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--source", choices=["tasks", "synthetic"], default="synthetic")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "train_throughput.json"))
    args = ap.parse_args()

    import torch

    from tripost.io import write_json
    from tripost.modeling import build_tiny_llama, build_tokenizer, num_params
    from tripost.params import load_params, section
    from tripost.training import train, train_config

    n = args.steps * args.batch_size
    recs = (task_records(n) if args.source == "tasks" else None) or synthetic_records(n)
    tok = build_tokenizer([r["prompt"] + r["completion"] for r in recs], vocab_size=512)
    params = load_params(ROOT / "params.yaml")
    model_cfg = section(params, "model")
    rows = []
    for grouped in (False, True):
        torch.manual_seed(0)
        model = build_tiny_llama(model_cfg, tok)
        with tempfile.TemporaryDirectory() as d:
            m = train(model, tok, recs, d, train_config(params, "train", max_steps=args.steps, lr=1e-3,
                                                        batch_size=args.batch_size, group_by_length=grouped,
                                                        logging_steps=5, save_steps=10**6, mask_prompt=False,
                                                        max_length=2048))
        rows.append({"batching": "length-grouped" if grouped else "random (padded to batch max)",
                     "group_by_length": grouped, "steps": m["steps"], "wall_s": m["wall_time_s"],
                     "real_tokens_per_s": m["tokens_per_s"], "padded_tokens_per_s": m["padded_tokens_per_s"],
                     "padding_efficiency": m["padding_efficiency"], "final_loss": m["final_loss"]})
    speedup = rows[1]["real_tokens_per_s"] / rows[0]["real_tokens_per_s"]
    print(table(rows, ["batching", "steps", "wall_s", "real_tokens_per_s", "padded_tokens_per_s",
                       "padding_efficiency"]))
    print(f"length grouping: {speedup:.2f}x real tokens/s")
    write_json(args.out, {"benchmark": "train_throughput", "machine": machine(),
                          "model_params": num_params(build_tiny_llama(model_cfg, tok)),
                          "model": {k: model_cfg.get(k) for k in ("hidden_size", "num_hidden_layers",
                                                                    "intermediate_size", "num_attention_heads")},
                          "batch_size": args.batch_size, "records": len(recs), "source": args.source,
                          "rows": rows, "speedup": speedup})


if __name__ == "__main__":
    main()
