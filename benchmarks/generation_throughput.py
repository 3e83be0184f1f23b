"""Generation throughput: tripost.generation.generate vs plain model.generate, side by side.

    python benchmarks/generation_throughput.py [--n 96] [--batch-size 32] [--equality-n 50]
                                               [--workloads answer,self_improve]
    python benchmarks/generation_throughput.py --model models/<task>/ft [--task <task>]   # one model

Two workloads, the two ways the pipeline generates, on the same 96 test prompts per task:
* `answer`: M0 (`models/<task>/ft`) writes one greedy attempt per prompt (what `greedy_accuracy`
  and the t=1 interaction do), stopping at `\nFeedback:`;
* `self_improve`: TriPosT t=2 (`models/<task>/tripost_t2`) runs the self-improving inference of
  the evaluation stage (greedy, up to 3 generation calls per question: attempt, own feedback,
  `Updated Answer`, ...; stop strings "\nQ:" and "\n\n") -- the hot path of evaluation and of
  the t>=2 interaction. Its completions range from ~100 to ~1,900 tokens per question.
Both paths decode the same prompts with the same batch size, max_new_tokens and stop strings:
* ours: length-sorted prompts, our preallocated KV cache, finished rows refilled / batch shrunk;
* baseline: plain `model.generate` (default DynamicCache, its own `stop_strings`) on fixed
  left-padded batches of the same length-sorted prompts (a batch runs until its last row stops).
Tokens/s count each prompt's own generated tokens (EOS included). `speedup` (top level) is the
total baseline time over our total time, all rows of both workloads.

The FLOP bound: forward FLOPs per generated token = 2 x (parameters used per token: every linear
layer and the LM head; embeddings are a lookup) + 4 x layers x hidden x (mean context length)
for attention scores and values; the machine's peak is a measured 2048^3 fp32 matmul. bound =
peak / FLOPs-per-token: the tokens/s a perfect implementation would reach if decode were pure
matmul at peak (it is not: at batch 32 a 4M model's matmuls are tiny and memory/overhead bound).

Also checks the "done" criterion: greedy outputs of our path equal plain `model.generate` run one
prompt at a time (no padding) on >= 99% of prompts (`--equality-n` M0 prompts per task), and that
both paths give the same self-improving inference texts.
Writes benchmarks/results/generation_throughput.json (top-level `speedup`).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "src"))

from _common import machine, matmul_gflops, table  # noqa: E402


def find_models(arg: str | None, task: str | None, stage: str = "ft") -> list[tuple[str, Path]]:
    from tripost.tasks import TASK_NAMES

    if arg and "=" in arg:  # "task=path,task=path"
        return [(t, Path(p)) for t, p in (x.split("=", 1) for x in arg.split(","))]
    if arg:
        return [(task or Path(arg).parent.name, Path(arg))]
    return [(t, ROOT / "models" / t / stage) for t in TASK_NAMES
            if (ROOT / "models" / t / stage / "config.json").exists()]


def task_examples(task_name: str, n: int, seed: int = 0) -> list:
    from tripost.data import load_split
    from tripost.params import load_params, section
    from tripost.tasks import get_task

    task = get_task(task_name)
    data = ROOT / "data" / task_name
    if (data / "test.jsonl").exists():
        exs = load_split(data, "test")
    else:  # the test distribution of params.yaml's buckets
        b = section(load_params(ROOT / "params.yaml"), "data", task_name).get("buckets") or {}
        exs = (task.generate(n // 2, "seen", seed=seed, buckets=b.get("seen"))
               + task.generate(n - n // 2, "unseen", seed=seed, buckets=b.get("unseen")))
    random.Random(seed).shuffle(exs)
    return exs[:n]


def task_prompts(task_name: str, n: int, seed: int = 0) -> list[str]:
    from tripost.tasks import get_task

    task = get_task(task_name)
    return [task.prompt(e.question) for e in task_examples(task_name, n, seed)]


def plain_generate(model, tokenizer, prompts, *, max_new_tokens, stop=None, batch_size=32, **_ignored):
    """The baseline: plain greedy `model.generate` on fixed left-padded batches of length-sorted
    prompts; rows stop at EOS or at a stop string (HF's own `stop_strings`), a batch runs until its
    last row stops. Returns tripost.generation.Generation objects like our path. (Unlike the
    library's fallback `_generate_hf`, which cuts stop strings after generating, it passes HF's
    `stop_strings`, so a baseline row stops as early as ours: a fair comparison.)"""
    from tripost.generation import Generation, _eos_ids

    eos = set(_eos_ids(model, tokenizer))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos)
    order = sorted(range(len(prompts)), key=lambda i: len(tokenizer(prompts[i])["input_ids"]))
    res = [None] * len(prompts)
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            enc = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True).to(model.device)
            kw = {"stop_strings": list(stop), "tokenizer": tokenizer} if stop else {}
            out = model.generate(**enc, do_sample=False, temperature=None, top_p=None, top_k=None,
                                 max_new_tokens=max_new_tokens, pad_token_id=pad, eos_token_id=sorted(eos), **kw)
            for r, i in enumerate(idx):
                toks, reason = [], "length"
                for t in out[r, enc["input_ids"].shape[1]:].tolist():
                    if t in eos or t == pad:  # a row stopped by a stop string is padded afterwards
                        reason = "eos" if t in eos else reason
                        break
                    toks.append(t)
                text = tokenizer.decode(toks, skip_special_tokens=True)
                cuts = [text.find(x) for x in (stop or []) if x in text]
                if cuts:
                    text, reason = text[: min(cuts)], "stop"
                res[i] = Generation(text, reason, len(toks) + (reason == "eos"))
    finally:
        tokenizer.padding_side = side
    return res


def flops_per_token(model, mean_ctx: float) -> float:
    cfg = model.config
    linear = sum(p.numel() for n, p in model.named_parameters() if p.dim() == 2 and "embed_tokens" not in n)
    if getattr(cfg, "tie_word_embeddings", False):
        linear += cfg.vocab_size * cfg.hidden_size  # the LM head reuses the embedding matrix
    return 2 * linear + 4 * cfg.num_hidden_layers * cfg.hidden_size * mean_ctx


def _row(workload, task_name, model, prompts_tok_mean, n_prompts, n_tok, n_tok_base, t_ours, t_base, peak,
         same, **extra) -> dict:
    mean_ctx = prompts_tok_mean + n_tok / n_prompts / 2
    bound = peak * 1e9 / flops_per_token(model, mean_ctx)
    return {"workload": workload, "task": task_name, "prompts": n_prompts, "gen_tokens": n_tok,
            "mean_new_tokens": n_tok / n_prompts, **extra,
            "ours_s": t_ours, "hf_generate_s": t_base, "ours_tok_s": n_tok / t_ours,
            "hf_generate_tok_s": n_tok_base / t_base, "speedup": t_base / t_ours, "flop_bound_tok_s": bound,
            "ours_pct_of_bound": 100 * n_tok / t_ours / bound, "same_as_batched_hf": same}


def _timed(fn, *a, **kw):
    t = time.perf_counter()
    out = fn(*a, **kw)
    return out, time.perf_counter() - t


def _total_speedup(rows: list[dict]) -> float:
    """Total baseline time over our total time (the ratio of sums, not a mean of ratios)."""
    return sum(r["hf_generate_s"] for r in rows) / sum(r["ours_s"] for r in rows)


def bench_answer(task_name, path, args, peak, eq):
    """M0 writes one greedy attempt per prompt; also the one-prompt-at-a-time equality check."""
    from tripost.evaluation import PLAIN_ANSWER_STOP
    from tripost.generation import generate
    from tripost.modeling import load_for_inference

    model, tok = load_for_inference(path)
    prompts = task_prompts(task_name, args.n)
    kw = dict(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, stop=PLAIN_ANSWER_STOP)
    generate(model, tok, prompts[:4], max_new_tokens=8)  # warm-up
    ours, t_ours = _timed(generate, model, tok, prompts, **kw)
    base, t_base = _timed(plain_generate, model, tok, prompts, **kw)
    plen = sum(len(tok(p)["input_ids"]) for p in prompts) / len(prompts)
    same = sum(a.text == b.text for a, b in zip(ours, base)) / len(prompts)
    row = _row("answer", task_name, model, plen, len(prompts), sum(g.num_tokens for g in ours),
               sum(g.num_tokens for g in base), t_ours, t_base, peak, same,
               max_new_tokens_seen=max(g.num_tokens for g in ours))
    # done criterion: equal to plain generate one prompt at a time (no padding)
    for p, g in zip(prompts[: args.equality_n], ours[: args.equality_n]):
        ref = plain_generate(model, tok, [p], **{**kw, "batch_size": 1})[0]
        eq["total"] += 1
        if ref.text == g.text and ref.stop_reason == g.stop_reason:
            eq["equal"] += 1
        elif len(eq["mismatch_examples"]) < 5:
            eq["mismatch_examples"].append({"task": task_name, "prompt": p, "ours": g.text, "hf": ref.text})
    return row


def bench_self_improve(task_name, path, args, peak):
    """TriPosT t=2 runs the evaluation's self-improving inference with either generate function."""
    from tripost.evaluation import evaluation_config
    from tripost.generation import generate
    from tripost.inference import self_improve
    from tripost.modeling import load_for_inference
    from tripost.params import load_params
    from tripost.tasks import get_task

    cfg = evaluation_config(load_params(ROOT / "params.yaml"), task_name)
    task = get_task(task_name)
    model, tok = load_for_inference(path)
    questions = [e.question for e in task_examples(task_name, args.n)]
    kw = dict(max_generation_calls=int(cfg["max_generation_calls"]),
              max_new_tokens=int(args.si_max_new_tokens or cfg["max_new_tokens"]), batch_size=args.batch_size,
              seed=int(cfg["seed"]))
    generate(model, tok, [task.prompt(questions[0])], max_new_tokens=8)  # warm-up
    ours, t_ours = _timed(self_improve, task, questions, model, tok, generate_fn=generate, **kw)
    base, t_base = _timed(self_improve, task, questions, model, tok, generate_fn=plain_generate, **kw)
    plen = sum(len(tok(task.prompt(q))["input_ids"]) for q in questions) / len(questions)
    same = sum(a.completion == b.completion for a, b in zip(ours, base)) / len(questions)
    return _row("self_improve", task_name, model, plen, len(questions), sum(r.tokens for r in ours),
                sum(r.tokens for r in base), t_ours, t_base, peak, same,
                max_new_tokens_seen=max(r.tokens for r in ours), calls=sum(r.calls for r in ours),
                max_new_tokens_per_call=kw["max_new_tokens"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None,
                    help="one saved model dir, or task=dir,task=dir (default: models/<task>/ft for `answer`, "
                         "models/<task>/tripost_t2 for `self_improve`)")
    ap.add_argument("--task", default=None, help="the task of --model (default: its parent dir's name)")
    ap.add_argument("--workloads", default="answer,self_improve")
    ap.add_argument("--n", type=int, default=96, help="test prompts per task")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=400, help="for the `answer` workload")
    ap.add_argument("--si-max-new-tokens", type=int, default=None,
                    help="per call, for `self_improve` (default: params.yaml evaluation, per task)")
    ap.add_argument("--equality-n", type=int, default=50, help="prompts per task for the equality check")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "generation_throughput.json"))
    args = ap.parse_args()

    import torch

    from tripost.io import write_json

    workloads = [w for w in args.workloads.split(",") if w]
    unknown = set(workloads) - {"answer", "self_improve"}
    if unknown:
        raise SystemExit(f"unknown workload(s) {sorted(unknown)}: choose from answer, self_improve")
    peak = matmul_gflops()
    rows, eq = [], {"equal": 0, "total": 0, "mismatch_examples": []}
    for workload in workloads:
        models = find_models(args.model, args.task, "ft" if workload == "answer" else "tripost_t2")
        if not models:
            raise SystemExit(f"no trained model for `{workload}`: run `dvc repro` first or pass --model")
        for task_name, path in models:
            if workload == "answer":
                rows.append(bench_answer(task_name, path, args, peak, eq))
            else:
                rows.append(bench_self_improve(task_name, path, args, peak))
            r = rows[-1]
            print(f"{workload} {task_name}: {r['speedup']:.2f}x ({r['ours_s']:.1f}s vs {r['hf_generate_s']:.1f}s)",
                  flush=True)
    speedup = _total_speedup(rows)
    by_workload = {w: _total_speedup([r for r in rows if r["workload"] == w]) for w in workloads}
    print(table(rows, ["workload", "task", "prompts", "mean_new_tokens", "max_new_tokens_seen", "ours_tok_s",
                       "hf_generate_tok_s", "speedup", "flop_bound_tok_s", "ours_pct_of_bound", "same_as_batched_hf"]))
    for w, x in by_workload.items():
        print(f"{w}: {x:.2f}x (total time)")
    print(f"overall speedup (total time, both workloads, same prompts): {speedup:.2f}x")
    if eq["total"]:
        eq["rate"] = eq["equal"] / eq["total"]
        print(f"greedy equality with plain generate one prompt at a time: {eq['equal']}/{eq['total']} = {eq['rate']:.1%}")
    print(f"measured fp32 matmul peak: {peak:.0f} GFLOPS")
    write_json(args.out, {"benchmark": "generation_throughput", "machine": machine(), "peak_gflops_fp32": peak,
                          "batch_size": args.batch_size, "max_new_tokens_answer": args.max_new_tokens,
                          "threads": torch.get_num_threads(), "workloads": workloads, "rows": rows,
                          "speedup_by_workload": by_workload, "speedup": speedup, "greedy_equality": eq})


if __name__ == "__main__":
    main()
