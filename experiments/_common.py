"""What every probe driver starts with: params, the task built with its data options, M0, the splits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tripost.io import read_jsonl
from tripost.params import load_params, section
from tripost.tasks import Example, Task, task_from_params


@dataclass
class Setup:
    params: dict
    task: Task
    m0: str
    out: Path
    train: list[Example]
    val: list[Example]
    test: list[Example]
    seen_buckets: list[str] | None


def setup(task_name: str, m0: str, out: str, params_file: str = "params.yaml") -> Setup:
    params = load_params(params_file)
    dcfg = section(params, "data", task_name)
    data = Path("data") / task_name
    split = {name: [Example.from_dict(r) for r in read_jsonl(data / f"{name}.jsonl")] for name in ("train", "val", "test")}
    Path(out).mkdir(parents=True, exist_ok=True)
    return Setup(params, task_from_params(params, task_name), m0 or f"models/{task_name}/ft", Path(out),
                 split["train"], split["val"], split["test"], (dcfg.get("buckets") or {}).get("seen"))


def extra_test(s: Setup, n: int, test: list[Example] | None = None) -> list[Example]:
    """`n` extra seen test questions, the same for every probe (fixed seed, independent of any run's
    seed), never in `test` (default the official test set), val or train."""
    from tripost.training import extra_sft_examples

    test = s.test if test is None else test
    return extra_sft_examples(s.task, n, s.seen_buckets, {e.question for e in test + s.val + s.train}, seed=424242)


def drill_parser(doc: str, records_help: str):
    """The arguments every drill probe takes (start model, its records and test attempts, one-epoch recipe)."""
    import argparse

    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--task", required=True)
    ap.add_argument("--m0", required=True)
    ap.add_argument("--records", required=True, help=records_help)
    ap.add_argument("--attempts", required=True, help="predictions jsonl of the start model (its first attempts)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--max-records", type=int, default=4000)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--params", default="params.yaml")
    return ap


def drill_setup(args):
    """(out dir, params, task built with its data options) for a drill's parsed arguments."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    params = load_params(args.params)
    return out, params, task_from_params(params, args.task)


def train_drill(args, params, records, out, start: str | None = None) -> dict:
    """Weighted SL from `start` (default `args.m0`) on `records` (answer-only loss, the probe's
    epochs/lr/batch/seed); the model goes to `out/model`."""
    from tripost.modeling import load_for_training
    from tripost.training import train, train_config

    cfg = train_config(params, "train", args.task, mask_prompt=True, epochs=args.epochs, lr=args.lr,
                       batch_size=args.batch, seed=args.seed, save_steps=100000)
    model, tok = load_for_training(start or args.m0, "none")
    return train(model, tok, records, out / "model", cfg, checkpoint_dir=out / "ckpt")


def verdict(text: str, one_step_accept: bool = True) -> str:
    """accept / reject / other: the decision of a first feedback, read from its words whatever the
    spelling around them. "In step (k)" anywhere rejects (FBK writes "Step (1) is correct. In step (2)
    ..." for a later step); otherwise a feedback opening "Step (1) to" accepts, and with
    `one_step_accept` so does one opening "Step (1)" (a one-step attempt's "Step (1) is correct.").
    verify_drill.py counts with `one_step_accept=False`, the rule its logged runs were read with."""
    t = text.strip()
    if "In step (" in t:
        return "reject"
    return "accept" if t.startswith("Step (1)" if one_step_accept else "Step (1) to") else "other"
