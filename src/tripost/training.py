"""Weighted supervised learning on the HF Trainer (docs/method.md §4.2, with the end-of-text fix of §7).

A training record is `{"prompt", "completion", "weighted", "kind"}`; the trained text is
prompt + completion + EOS. Per-token loss weights: 1.0 everywhere, except for records with
`weighted=True`, where every token from the first "\\nFeedback:" to the end (EOS included) gets
`section_weight` (params `train.section_weight`, 1.5 as in the paper).

Loss with `loss_normalization: example`: that of one example = sum_t CE_t * w_t / (number of its trained
tokens), the mean over the examples of a batch. With `loss_normalization: token` the batch's loss is
sum over all its trained tokens of CE_t * w_t / their number (the HF convention): every trained
token counts the same, so a record whose only trained text is a short verdict does not weigh ten
times more per token than one that also trains a revision. The Trainer then averages over
gradient-accumulation steps. Deviations from
the original code (documented in docs/small-model.md): EOS is appended and trained, pads are right
pads and are excluded from the loss *and* from the normaliser (the original divides by the padded
bucket length, so long and short examples counted differently), and the optional `mask_prompt`
excludes prompt tokens (used for from-scratch SFT only; TriPosT iterations train on everything,
as the paper).

Batches are built by the Trainer's `group_by_length` sampler (similar lengths in a batch, padded
to the batch's longest only), so little compute goes to pads while every example keeps its own
weights and normaliser.
"""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from tripost import formats

FEEDBACK_MARK = f"\n{formats.FEEDBACK_TAG}"
IGNORE = -100

# Every setting `train()` reads. Their values live in params.yaml only (`sft:` for M0, `train:` for the
# iterations; `model.device`/`model.dtype` for placement): `train_config` collects them.
TRAIN_KEYS = ("epochs", "max_steps", "max_minutes", "lr", "batch_size", "grad_accum", "warmup_ratio", "lr_scheduler",
              "weight_decay", "adam_beta1", "adam_beta2", "max_grad_norm", "section_weight", "mask_prompt",
              "loss_normalization", "max_length", "group_by_length", "save_steps", "logging_steps", "seed",
              "torch_compile", "num_threads", "keep_checkpoints", "device", "dtype")
LOSS_NORMALIZATIONS = ("example", "token")


def check_loss_normalization(value: str) -> str:
    if value not in LOSS_NORMALIZATIONS:
        raise ValueError(f"loss_normalization must be one of {', '.join(LOSS_NORMALIZATIONS)}, got {value!r}")
    return value


def baseline_params(params: dict, baseline: str, task: str | None = None) -> dict:
    """params with `train:` overridden for a baseline's single training run from M0 (`baseline`:
    ft_si_demo or lmsi): its `baselines.<method>.train` overrides, and for SI. demo its section weight."""
    from tripost.params import section, with_section

    methods = {"ft_si_demo": "si_demo", "lmsi": "lmsi"}
    if baseline not in methods:
        raise ValueError(f"baseline must be ft_si_demo or lmsi, got {baseline!r}")
    cfg = section(params, "baselines", task)[methods[baseline]]
    over = dict(cfg["train"] or {})
    if baseline == "ft_si_demo":
        over.setdefault("section_weight", float(cfg["section_weight"]))
    return with_section(params, "train", over) if over else params


def train_config(params: dict, name: str = "train", task: str | None = None, **overrides) -> dict:
    """The `sft` or `train` section of params (the task's overrides merged) with the model's device and
    dtype: everything `train()` needs; `overrides` replace single settings."""
    from tripost.params import section

    model = section(params, "model", task)
    return {**section(params, name, task), "device": model["device"], "dtype": model["dtype"], **overrides}


# --------------------------------------------------------------------------------------------
# records -> tensors
# --------------------------------------------------------------------------------------------
def sft_records(task, examples) -> list[dict]:
    """Gold SFT records (the "+ft" baseline): prompt + "\\n" + gold rationale, unweighted."""
    return [
        {"prompt": task.prompt(e.question), "completion": "\n" + e.rationale, "weighted": False, "kind": "gold"}
        for e in examples
    ]


def feedback_texts(task, examples, n: int, seed: int = 0) -> list[str]:
    """The scripted FBK's feedback lines on the first `n` examples (the stage's train_file): the
    "correct" verdict on the gold rationale and the verdict on one planted mistake (`task.corrupt`)
    each. Tokenizer texts only (`model.tokenizer_feedback_examples`): a from-scratch BPE trained on
    rationales alone spells the feedback's words letter by letter."""
    rng = random.Random(seed)
    out = []
    for e in examples[:n]:
        out.append(f"{FEEDBACK_MARK} " + formats.correct_feedback_text(formats.parse_steps(e.rationale)))
        try:
            attempt, _ = task.corrupt(e.question, e.rationale, rng)
            out.append(f"{FEEDBACK_MARK} " + task.feedback(e.question, attempt).text)
        except (ValueError, NotImplementedError):  # no mistake can be planted in this rationale
            continue
    return out


def encode_record(tokenizer, record: dict, *, section_weight: float, mask_prompt: bool,
                  max_length: int | None = None) -> dict | None:
    """Token ids, labels and per-token weights of one record; None if it is longer than max_length.

    `labels[t]` is the target at position t (shifted inside the loss, HF convention), IGNORE where
    it is not trained (prompt tokens when `mask_prompt`). `weights[t]` is the weight of label t.
    """
    prompt, completion = record["prompt"], record["completion"]
    text = prompt + completion
    enc = tokenizer(text, return_offsets_mapping=True, add_special_tokens=True)
    ids = list(enc["input_ids"]) + [tokenizer.eos_token_id]
    offsets = list(enc["offset_mapping"]) + [(len(text), len(text) + 1)]
    if max_length is not None and len(ids) > max_length:
        return None
    labels = list(ids)
    weights = [1.0] * len(ids)
    if record.get("weighted"):
        start = text.find(FEEDBACK_MARK)
        if start >= 0:
            for i, (a, b) in enumerate(offsets):
                if b > start:
                    weights[i] = float(section_weight)
    if mask_prompt:
        for i, (a, b) in enumerate(offsets):
            if i < len(ids) - 1 and b <= len(prompt):
                labels[i] = IGNORE
    return {"input_ids": ids, "labels": labels, "weights": weights}


class WeightedCollator:
    """Right-pads a list of encoded records: pad id, attention 0, label IGNORE, weight 0."""

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = None):
        self.pad_token_id = pad_token_id
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, features: list[dict]) -> dict:
        n = max(len(f["input_ids"]) for f in features)
        if self.pad_to_multiple_of:
            m = self.pad_to_multiple_of
            n = (n + m - 1) // m * m
        B = len(features)
        input_ids = torch.full((B, n), self.pad_token_id, dtype=torch.long)
        attention = torch.zeros((B, n), dtype=torch.long)
        labels = torch.full((B, n), IGNORE, dtype=torch.long)
        weights = torch.zeros((B, n), dtype=torch.float32)
        for i, f in enumerate(features):
            L = len(f["input_ids"])
            input_ids[i, :L] = torch.tensor(f["input_ids"])
            attention[i, :L] = 1
            labels[i, :L] = torch.tensor(f["labels"])
            weights[i, :L] = torch.tensor(f["weights"])
        return {"input_ids": input_ids, "attention_mask": attention, "labels": labels, "weights": weights}


def weighted_loss(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor,
                  normalization: str = "example") -> torch.Tensor:
    """"example": mean_i [ sum_t CE(logits_i,t, labels_i,t+1) * w_i,t+1 / #{t: labels_i,t+1 != IGNORE} ];
    "token": sum_i,t CE(...) * w_i,t+1 / #{i, t: labels_i,t+1 != IGNORE}."""
    check_loss_normalization(normalization)
    logits = logits[:, :-1].float()
    tgt = labels[:, 1:]
    w = weights[:, 1:]
    ce = F.cross_entropy(logits.reshape(-1, logits.size(-1)), tgt.reshape(-1), ignore_index=IGNORE,
                         reduction="none").view_as(tgt)
    mask = (tgt != IGNORE).float()
    if normalization == "token":
        return (ce * w * mask).sum() / mask.sum().clamp(min=1.0)
    per_example = (ce * w * mask).sum(1) / mask.sum(1).clamp(min=1.0)
    return per_example.mean()


# --------------------------------------------------------------------------------------------
# Trainer
# --------------------------------------------------------------------------------------------
def _trainer_class():
    from transformers import Trainer, TrainerCallback

    class WeightedTrainer(Trainer):
        loss_is_scaled_for_ga = False  # our loss is a per-batch mean: let the Trainer divide by GA

        def __init__(self, *a, loss_normalization: str, **kw):
            super().__init__(*a, **kw)
            self.loss_normalization = loss_normalization  # checked by _train before the trainer is built
            self.model_accepts_loss_kwargs = False
            self.real_tokens = 0
            self.padded_tokens = 0

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            labels = inputs.pop("labels")
            weights = inputs.pop("weights")
            if model.training:
                self.real_tokens += int(inputs["attention_mask"].sum())
                self.padded_tokens += inputs["attention_mask"].numel()
            outputs = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], use_cache=False)
            loss = weighted_loss(outputs.logits, labels, weights, self.loss_normalization)
            return (loss, outputs) if return_outputs else loss

    class TimeLimit(TrainerCallback):
        def __init__(self, minutes):
            self.deadline = time.time() + 60 * minutes

        def on_step_end(self, args, state, control, **kw):
            if time.time() > self.deadline:
                control.should_training_stop = True
                control.should_save = True

    return WeightedTrainer, TimeLimit


def encode_records(tokenizer, records, cfg) -> tuple[list[dict], int]:
    if not cfg["mask_prompt"]:
        kind = next((r["kind"] for r in records if r.get("kind") in formats.JUDGED_ATTEMPT_KINDS), None)
        if kind:
            raise ValueError(f"{kind} records (processing.layout: split) need mask_prompt: true in the training "
                             "section: their prompt holds the judged attempt, wrong ones included")
    out, skipped = [], 0
    for r in records:
        e = encode_record(tokenizer, r, section_weight=cfg["section_weight"], mask_prompt=cfg["mask_prompt"],
                          max_length=cfg["max_length"])
        if e is None:
            skipped += 1
        else:
            out.append(e)
    return out, skipped


# what a resume needs besides trainer_state.json (one name of each group): a checkpoint missing one was
# torn while it was saved, or while an earlier run was removing it
_CHECKPOINT_FILES = (("model.safetensors", "adapter_model.safetensors", "pytorch_model.bin"),
                     ("optimizer.pt",), ("scheduler.pt",))


def sweep_removals(path) -> None:
    """Delete what an interrupted `remove_dir(path)` left (`.<name>.removing-<pid>` beside it)."""
    path = Path(path)
    for stale in path.parent.glob(f".{path.name}.removing-*"):
        shutil.rmtree(stale, ignore_errors=True)


def remove_dir(path) -> None:
    """Remove a directory so that a kill at any moment leaves either all of it or nothing under its name:
    it is renamed first (one atomic step), then deleted."""
    path = Path(path)
    sweep_removals(path)
    if not path.exists():
        return
    trash = path.with_name(f".{path.name}.removing-{os.getpid()}")
    path.rename(trash)
    shutil.rmtree(trash, ignore_errors=True)


def last_complete_checkpoint(ckpt_dir) -> str | None:
    """The newest `checkpoint-N` under `ckpt_dir` that the Trainer finished writing, or None.

    The Trainer writes a checkpoint in place and its `trainer_state.json` last; a process killed while
    saving leaves a folder without it (or with a cut-off one). Such torn folders are removed, so a rerun
    resumes from the previous complete checkpoint instead of failing on the torn one."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return None
    found = []
    for d in ckpt_dir.iterdir():
        name = d.name
        if d.is_dir() and name.startswith("checkpoint-") and name[len("checkpoint-"):].isdigit():
            found.append((int(name[len("checkpoint-"):]), d))
    for step, d in sorted(found, reverse=True):
        try:
            state = json.loads((d / "trainer_state.json").read_text())
            complete = int(state.get("global_step", -1)) == step and all(
                any((d / name).is_file() for name in names) for names in _CHECKPOINT_FILES)
        except (OSError, ValueError):
            complete = False
        if complete:
            return str(d)
        print(f"{d}: incomplete checkpoint (interrupted while saving), removed")
        shutil.rmtree(d, ignore_errors=True)
    return None


def train(model, tokenizer, records: list[dict], out_dir, config: dict, checkpoint_dir=None) -> dict:
    """Train `model` on `records` with weighted SL; save the result in HF format at `out_dir`.

    Resumes from the last complete checkpoint in `checkpoint_dir` (default `out_dir/checkpoints`). Writes
    `out_dir/loss_history.{json,csv}`, `out_dir/loss_curve.png` and `out_dir/train_metrics.json`.
    Returns the metrics dict (final loss, tokens/s, wall time, steps, ...). Holds an exclusive lock on
    `out_dir` throughout (tripost.io.exclusive): a second writer fails at once.
    """
    from tripost.io import exclusive

    with exclusive(out_dir):
        return _train(model, tokenizer, records, out_dir, config, checkpoint_dir)


def _train(model, tokenizer, records, out_dir, config, checkpoint_dir) -> dict:
    from transformers import TrainingArguments

    from tripost.io import write_json
    from tripost.modeling import save_checkpoint, write_adapter_meta

    cfg = dict(config or {})
    missing = [k for k in TRAIN_KEYS if k not in cfg]
    if missing:
        raise ValueError(f"training config lacks {', '.join(missing)}: build it with tripost.training.train_config "
                         "(the values are in params.yaml)")
    check_loss_normalization(cfg["loss_normalization"])
    if cfg["num_threads"]:
        torch.set_num_threads(int(cfg["num_threads"]))
    out_dir = Path(out_dir)
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir else out_dir / "checkpoints"
    sweep_removals(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token

    if float(cfg["epochs"]) <= 0 and int(cfg["max_steps"]) <= 0:
        raise ValueError(f"training needs epochs > 0 or max_steps > 0 (got epochs {cfg['epochs']}, "
                         f"max_steps {cfg['max_steps']}): nothing would be trained")
    data, skipped = encode_records(tokenizer, records, cfg)
    if not data:
        raise ValueError("no training example fits max_length")
    WeightedTrainer, TimeLimit = _trainer_class()
    from tripost.modeling import resolve_device, resolve_dtype

    device = resolve_device(cfg["device"])
    half = resolve_dtype(cfg["dtype"], device) if device != "cpu" else torch.float32
    args = TrainingArguments(
        use_cpu=device == "cpu",
        bf16=half == torch.bfloat16,
        fp16=half == torch.float16,
        output_dir=str(ckpt_dir),
        num_train_epochs=float(cfg["epochs"]),
        max_steps=int(cfg["max_steps"]),
        learning_rate=float(cfg["lr"]),
        per_device_train_batch_size=int(cfg["batch_size"]),
        gradient_accumulation_steps=int(cfg["grad_accum"]),
        warmup_steps=float(cfg["warmup_ratio"]),
        weight_decay=float(cfg["weight_decay"]),
        lr_scheduler_type=cfg["lr_scheduler"],
        adam_beta1=float(cfg["adam_beta1"]),
        adam_beta2=float(cfg["adam_beta2"]),
        max_grad_norm=float(cfg["max_grad_norm"]),
        train_sampling_strategy="group_by_length" if cfg["group_by_length"] else "random",
        save_strategy="steps",
        save_steps=int(cfg["save_steps"]),
        save_total_limit=1,
        logging_steps=int(cfg["logging_steps"]),
        logging_first_step=True,
        seed=int(cfg["seed"]),
        report_to=[],
        disable_tqdm=True,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
        torch_compile=bool(cfg["torch_compile"]),
    )
    callbacks = [TimeLimit(float(cfg["max_minutes"]))] if cfg["max_minutes"] else []
    trainer = WeightedTrainer(
        model=model,
        args=args,
        train_dataset=data,
        data_collator=WeightedCollator(tokenizer.pad_token_id),
        processing_class=tokenizer,
        callbacks=callbacks,
        loss_normalization=cfg["loss_normalization"],
    )
    last = last_complete_checkpoint(ckpt_dir)
    t0 = time.time()
    result = trainer.train(resume_from_checkpoint=last)
    wall = time.time() - t0

    model = trainer.model
    save_checkpoint(model, tokenizer, out_dir)
    write_adapter_meta(out_dir, getattr(model, "tripost_adapter", "none"))
    history = [h for h in trainer.state.log_history if "loss" in h]
    write_loss_history(out_dir, history)
    metrics = {
        "final_loss": history[-1]["loss"] if history else None,
        "train_loss": result.training_loss,
        "steps": trainer.state.global_step,
        "epochs": trainer.state.epoch,
        "examples": len(data),
        "skipped_too_long": skipped,
        "wall_time_s": wall,
        "resumed_from": last,
        "tokens_per_s": trainer.real_tokens / wall if wall > 0 else None,
        "padded_tokens_per_s": trainer.padded_tokens / wall if wall > 0 else None,
        "padding_efficiency": trainer.real_tokens / max(trainer.padded_tokens, 1),
        "kinds": _count(r.get("kind", "?") for r in records),
        "config": cfg,
    }
    write_json(out_dir / "train_metrics.json", metrics)
    if not cfg["keep_checkpoints"]:
        remove_dir(ckpt_dir)
    return metrics


def _count(items) -> dict:
    out: dict = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return out


def write_loss_history(out_dir, history: list[dict]) -> None:
    from tripost.io import write_json

    out_dir = Path(out_dir)
    rows = [{"step": h["step"], "epoch": h.get("epoch"), "loss": h["loss"], "lr": h.get("learning_rate")}
            for h in history]
    write_json(out_dir / "loss_history.json", rows)
    with (out_dir / "loss_history.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["step", "epoch", "loss", "lr"])
        w.writeheader()
        w.writerows(rows)
    plot_loss(rows, out_dir / "loss_curve.png")


def plot_loss(rows: list[dict], path, title: str | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows])
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("weighted training loss")
    ax.set_yscale("log")
    ax.set_title(title or f"training loss ({Path(path).parent.name})")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --------------------------------------------------------------------------------------------
# stages (called by notebooks/04_training.ipynb)
# --------------------------------------------------------------------------------------------
def extra_sft_examples(task, n: int, buckets, exclude: set[str], seed: int = 7919) -> list:
    """n freshly generated seen-bucket examples whose questions are not in `exclude` (test/val)."""
    if n <= 0:
        return []
    out, seen = [], set(exclude)
    for attempt in range(20):
        for e in task.generate(max(n - len(out), 1) + 64, "seen", seed=seed * 100 + attempt, buckets=buckets):
            if e.question not in seen:
                out.append(e)
                if len(out) == n:
                    return out
    return out  # small buckets: fewer distinct questions exist (repeats are allowed in out already)


def stage_records(task_name: str, mode: str, train_file, params: dict, data_dir=None) -> tuple[list[dict], dict]:
    """The training records of a stage and the config section that trains on them.

    mode "sft": gold records from the Examples in `train_file` (+ `sft.extra_examples` generated
    ones, test and val questions excluded). mode "tripost": `train_file` already holds records.
    """
    from tripost.io import read_jsonl
    from tripost.params import section
    from tripost.tasks import Example, task_from_params

    if mode == "sft":
        cfg = train_config(params, "sft", task_name)
        task = task_from_params(params, task_name)
        rows = read_jsonl(train_file)
        examples = [Example.from_dict(r) for r in rows]
        data_dir = Path(data_dir) if data_dir else Path(train_file).parent
        exclude = set()
        for split in ("test", "val"):
            f = data_dir / f"{split}.jsonl"
            if f.exists():
                exclude |= {r["question"] for r in read_jsonl(f)}
        dcfg = section(params, "data", task_name) if "data" in params else {}
        buckets = (dcfg.get("buckets") or {}).get("seen")
        extra = extra_sft_examples(task, int(cfg["extra_examples"] or 0), buckets, exclude)
        return sft_records(task, examples + extra), cfg
    if mode == "tripost":
        cfg = train_config(params, "train", task_name)
        # the run seed (params `seed`, the one `dvc exp run -S seed=N` sets) shifts the iteration's
        # data order and initialisation noise; M0 (mode sft) stays fixed across seeds
        cfg["seed"] = int(cfg["seed"]) + int(params["seed"])
        return read_jsonl(train_file), cfg
    raise ValueError(f"mode must be 'sft' or 'tripost', got {mode!r}")


def run_stage(task_name: str, mode: str, train_file, output_dir, params: dict, init_model: str = "") -> dict:
    """Train one stage (SFT from scratch / from a checkpoint, or one TriPosT iteration)."""
    from tripost.modeling import init_model as make_model
    from tripost.params import section

    from tripost.io import fingerprint, write_json

    records, cfg = stage_records(task_name, mode, train_file, params)
    model_cfg = section(params, "model", task_name)
    output_dir = Path(output_dir)
    if not records:
        # Nothing survived processing (the original stops its loop: "Not enough training data"):
        # the iteration keeps its starting model, and says so, so the pipeline's later stages run.
        if not init_model:
            raise ValueError(f"{train_file}: no training records and no model to continue from")
        if output_dir.exists():
            shutil.rmtree(output_dir)
        shutil.copytree(init_model, output_dir)
        metrics = {"skipped": True, "reason": f"no training records in {train_file}", "examples": 0,
                   "steps": 0, "init_model": str(init_model)}
        write_loss_history(output_dir, [])
        write_json(output_dir / "train_metrics.json", metrics)
        return metrics
    # Checkpoints live outside the stage's output (DVC deletes outputs before a rerun), under a
    # name that changes with every input: an interrupted run resumes, a changed one starts fresh.
    key = fingerprint({"task": task_name, "mode": mode, "train": cfg, "model": model_cfg},
                      [train_file] + ([init_model] if init_model else []))
    ckpt_dir = Path("checkpoints") / task_name / f"{output_dir.name}-{key}"
    # An adapter's base (a merged previous adapter, or a saved from-scratch base) lives in
    # output_dir/base: the saved adapter points at it, so it is kept for adapter runs.
    work_dir = output_dir / "base"
    texts = [r["prompt"] + r["completion"] for r in records]
    n_fb = int(model_cfg["tokenizer_feedback_examples"])
    if mode == "sft" and n_fb > 0 and not init_model and model_cfg["name"] == "tiny-llama":
        # the scripted FBK's words for the new tokenizer: it reads them, the model never does
        from tripost.io import read_jsonl
        from tripost.tasks import Example, task_from_params

        examples = [Example.from_dict(r) for r in read_jsonl(train_file)]
        texts += feedback_texts(task_from_params(params, task_name), examples, n_fb, seed=int(cfg["seed"]))
    model, tok = make_model(model_cfg, texts=texts, init_model=init_model or None, work_dir=work_dir)
    metrics = train(model, tok, records, output_dir, cfg, checkpoint_dir=ckpt_dir)
    if model_cfg["adapter"] == "none":
        shutil.rmtree(work_dir, ignore_errors=True)
    return metrics


def evaluate_stage(task_name: str, model_dir, test_file, params: dict) -> dict:
    """Greedy single-attempt accuracy of a saved model on `test_file` (seen / unseen / buckets)."""
    from tripost.evaluation import greedy_accuracy
    from tripost.io import read_jsonl, write_json
    from tripost.modeling import load_for_inference, placement
    from tripost.params import section
    from tripost.tasks import Example, task_from_params

    cfg = section(params, "sft", task_name)
    model, tok = load_for_inference(model_dir, **placement(params, task_name))
    examples = [Example.from_dict(r) for r in read_jsonl(test_file)]
    t0 = time.time()
    res = greedy_accuracy(model, tok, task_from_params(params, task_name), examples,
                          max_new_tokens=int(cfg["eval_max_new_tokens"]), batch_size=int(cfg["eval_batch_size"]))
    res["eval_wall_time_s"] = time.time() - t0
    write_json(Path(model_dir) / "greedy_accuracy.json", {k: v for k, v in res.items() if k != "predictions"})
    from tripost.io import write_jsonl

    write_jsonl(Path(model_dir) / "greedy_predictions.jsonl", res["predictions"])
    return res
