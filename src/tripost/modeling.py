"""Small-model loading and saving.

Two kinds of model, chosen in params.yaml `model:`:

* `name: tiny-llama` (the embedded default): a `LlamaForCausalLM` built from a `LlamaConfig` whose
  sizes live in params, with a tokenizer trained offline on the training texts with the `tokenizers`
  library (byte-level BPE, digits split one per token, `<pad>`/`<s>`/`</s>`/`<unk>` specials) and
  wrapped as a `PreTrainedTokenizerFast`. Both are saved with `save_pretrained`, so every later
  stage loads them with the ordinary `from_pretrained` calls.
* any Hugging Face causal-LM checkpoint (a local path or a hub id) for paper-scale runs.

`adapter: none | lora | qlora`. `qlora` = bitsandbytes 4-bit NF4 base + PEFT LoRA (runs on CPU with
bitsandbytes >= 0.50 too). Adapters are saved with PEFT (`adapter_config.json` +
`adapter_model.safetensors`, with the tokenizer beside them); `load_for_inference` and
`load_for_training` accept either a full checkpoint or such an adapter directory.

Continuing from an adapter checkpoint (TriPosT iteration t >= 2): the previous adapter is **merged**
into a full-precision copy of its base (`merge_and_unload`), and a fresh LoRA is put on top — for
`qlora` the merged weights are re-quantised to 4-bit NF4 first. Iteration t therefore trains one
LoRA on top of "base + all earlier adapters", as the paper continues training the previous
iteration's model; nothing is stacked.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable

import torch

SPECIAL_TOKENS = {"pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
ADAPTERS = ("none", "lora", "qlora")

# The sizes of the from-scratch model (values: params.yaml `model:`); its vocabulary is the tokenizer's.
LLAMA_KEYS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
              "max_position_embeddings", "rope_theta", "tie_word_embeddings")

# PEFT's "all-linear": every linear layer but the output head, whatever the architecture calls them
# (LLaMA/Qwen2/Mistral q_proj..down_proj, GPT-2 c_attn/c_proj/c_fc) -- the QLoRA paper's choice.
LORA_TARGETS = "all-linear"


# --------------------------------------------------------------------------------------------
# tokenizer and tiny model
# --------------------------------------------------------------------------------------------
def build_tokenizer(texts: Iterable[str], vocab_size: int, min_frequency: int = 2, kind: str = "bpe"):
    """Build a tokenizer for `texts`, offline, with the `tokenizers` library.

    kind="bpe": byte-level BPE trained on the texts, digits split one per token.
    kind="char": one token per character (the texts' characters + printable ASCII), so a word
    tokenises the same everywhere; ~2.5x longer sequences (tried for word sorting: no better
    within 600 steps, see docs/small-model.md).
    Returns a `PreTrainedTokenizerFast` that adds `<s>` in front of every text (like LLaMA) and
    pads on the right (training); `generation.generate` left-pads on its own.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = [SPECIAL_TOKENS[k] for k in ("pad_token", "bos_token", "eos_token", "unk_token")]
    bos = SPECIAL_TOKENS["bos_token"]
    if kind == "char":
        import string

        # every printable ASCII character, so later texts (feedback, revisions) always encode
        chars = sorted({c for t in texts for c in t} | set(string.printable))
        vocab = {t: i for i, t in enumerate(specials + [c for c in chars if c not in specials])}
        tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=SPECIAL_TOKENS["unk_token"]))
        tok.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
        tok.decoder = decoders.Fuse()
        tok.add_special_tokens(specials)
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))]
        )
        return PreTrainedTokenizerFast(tokenizer_object=tok, padding_side="right", **SPECIAL_TOKENS)
    if kind != "bpe":
        raise ValueError(f"tokenizer kind must be 'bpe' or 'char', got {kind!r}")
    tok = Tokenizer(models.BPE(unk_token=SPECIAL_TOKENS["unk_token"]))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))]
    )
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, padding_side="right", **SPECIAL_TOKENS)
    return hf


def build_tiny_llama(config: dict, tokenizer):
    """A randomly initialised `LlamaForCausalLM` with the sizes in `config` (params `model:`)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    missing = [k for k in LLAMA_KEYS + ("init_seed",) if k not in config]
    if missing:
        raise ValueError(f"model config lacks {', '.join(missing)} (params.yaml `model:`)")
    cfg = {k: config[k] for k in LLAMA_KEYS}
    cfg["vocab_size"] = len(tokenizer)
    seed = int(config["init_seed"])
    torch.manual_seed(seed)
    lc = LlamaConfig(
        **cfg,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        attn_implementation="sdpa",
    )
    model = LlamaForCausalLM(lc)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model


def num_params(model, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


# --------------------------------------------------------------------------------------------
# save / load
# --------------------------------------------------------------------------------------------
def is_adapter_dir(path) -> bool:
    return (Path(path) / "adapter_config.json").exists()


def save_checkpoint(model, tokenizer, out_dir) -> Path:
    """Save a full model or a PEFT adapter (with the tokenizer beside it) in HF format.

    Written to a temporary sibling directory first and moved into place, so a kill never leaves a
    half-written checkpoint at `out_dir`. Existing files of other kinds in out_dir (e.g. a
    `checkpoints/` folder of an interrupted run) are kept.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    _name_base_relative(model, out_dir)
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        out_dir.mkdir(parents=True, exist_ok=True)
        for stale in ("model.safetensors", "adapter_model.safetensors", "adapter_config.json", "config.json"):
            (out_dir / stale).unlink(missing_ok=True)
        for f in tmp.iterdir():
            os.replace(f, out_dir / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _name_base_relative(model, out_dir: Path) -> None:
    """An adapter whose base lies inside its own folder (an iteration's merged base) names that base
    relative to the folder, so the model loads from any working directory and after the repo moves."""
    for cfg in getattr(model, "peft_config", {}).values():
        try:
            cfg.base_model_name_or_path = str(Path(cfg.base_model_name_or_path).resolve().relative_to(out_dir.resolve()))
        except (TypeError, ValueError):
            pass  # a base elsewhere (a checkpoint, a hub id) keeps its name


def adapter_base(adapter_path) -> str:
    """The base checkpoint of an adapter folder: a path relative to the folder, a path, or a hub id."""
    base = json.loads((Path(adapter_path) / "adapter_config.json").read_text())["base_model_name_or_path"]
    inside = Path(adapter_path) / base
    return str(inside) if not Path(base).is_absolute() and (inside / "config.json").exists() else base


def _check_source(path) -> None:
    """A path-like model source that does not exist is a missing local checkpoint, not a hub id."""
    text = str(path)
    looks_local = text.startswith((".", "/", "~")) or text.count("/") >= 2
    if looks_local and not Path(text).expanduser().exists():
        raise FileNotFoundError(f"model checkpoint not found: {text} (a local directory; a hub id is 'owner/name')")


def load_tokenizer(path):
    from transformers import AutoTokenizer

    _check_source(path)
    tok = AutoTokenizer.from_pretrained(str(path))
    if tok.pad_token is None:  # LLaMA-style checkpoints: pad = eos (docs/method.md §4.3)
        tok.pad_token = tok.eos_token
    return tok


def _bnb_config(compute_dtype=torch.float32):
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )


def _dtype(name: str | None):
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, None: None}[name]


DEVICES = ("auto", "cpu", "cuda")


def resolve_device(setting: str | None = "auto") -> str:
    """`model.device`: auto (a CUDA GPU when there is one, else the CPU), cpu or cuda."""
    setting = setting or "auto"
    if setting not in DEVICES:
        raise ValueError(f"model.device must be one of {', '.join(DEVICES)}, got {setting!r}")
    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if setting == "cuda" and not torch.cuda.is_available():
        raise ValueError("model.device is 'cuda' but torch sees no CUDA GPU (use auto or cpu)")
    return setting


def resolve_dtype(setting: str | None, device: str):
    """`model.dtype`: auto = fp32 on the CPU (bf16 matmul is ~4x slower on the measured CPU), bf16 on a
    GPU that supports it (else fp16); or float32 / bfloat16 / float16."""
    setting = setting or "auto"
    if setting == "auto":
        if device == "cpu":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if setting not in ("float32", "bfloat16", "float16"):
        raise ValueError(f"model.dtype must be auto, float32, bfloat16 or float16, got {setting!r}")
    return _dtype(setting)


def placement(params: dict | None, task: str | None = None) -> dict:
    """`{"device", "dtype"}` from params `model:` (per-task overrides merged), for load_for_inference."""
    if not params or "model" not in params:
        return {"device": "auto", "dtype": "auto"}
    from tripost.params import section

    m = section(params, "model", task)
    return {"device": m["device"], "dtype": m["dtype"]}


def load_for_inference(path, *, device: str | None = "auto", dtype: str | None = "auto",
                       quantize_4bit: bool = False):
    """(model, tokenizer) in eval mode, on `device` in `dtype` (see resolve_device / resolve_dtype),
    from a full checkpoint or a PEFT adapter directory.

    An adapter is merged into its base for speed unless the base is 4-bit (then it stays a
    PeftModel, placed with the device map bitsandbytes expects). On the CPU the default is fp32:
    on the measured CPU fp32 matmul is ~4x faster than bf16.
    """
    from transformers import AutoModelForCausalLM

    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    path = Path(path) if Path(str(path)).exists() else path
    tokenizer = load_tokenizer(path)
    if isinstance(path, Path) and is_adapter_dir(path):
        from peft import PeftModel

        base_path = adapter_base(path)
        qlora = _adapter_meta(path).get("adapter") == "qlora" or quantize_4bit
        kw = {"quantization_config": _bnb_config(dt), "device_map": {"": dev}} if qlora else {"dtype": dt}
        base = AutoModelForCausalLM.from_pretrained(str(base_path), **kw)
        model = PeftModel.from_pretrained(base, str(path))
        if not qlora:
            model = model.merge_and_unload()
    else:
        qlora = quantize_4bit
        kw = {"quantization_config": _bnb_config(dt), "device_map": {"": dev}} if qlora else {"dtype": dt}
        model = AutoModelForCausalLM.from_pretrained(str(path), **kw)
    if not qlora:
        model = model.to(dev)
    model.eval()
    return model, tokenizer


def _adapter_meta(path) -> dict:
    f = Path(path) / "tripost_adapter.json"
    return json.loads(f.read_text()) if f.exists() else {}


def load_for_training(path, adapter: str = "none", *, lora: dict | None = None, dtype: str | None = "float32",
                      work_dir=None, device: str | None = "auto"):
    """(model, tokenizer) ready for `training.train`.

    adapter="none": full fine-tuning of the checkpoint (adapter dirs are merged first).
    adapter="lora": fp base (frozen) + fresh LoRA. adapter="qlora": 4-bit NF4 base (frozen,
    `prepare_model_for_kbit_training`) + fresh LoRA. If `path` is itself an adapter dir, it is
    merged into its base first (see the module docstring), written to `work_dir/merged_base`
    (needed so the 4-bit re-quantisation and the new adapter's `base_model_name_or_path` point at
    a real checkpoint).
    """
    from transformers import AutoModelForCausalLM

    if adapter not in ADAPTERS:
        raise ValueError(f"adapter must be one of {ADAPTERS}, got {adapter!r}")
    tokenizer = load_tokenizer(path)
    base_path = str(path)
    if Path(str(path)).exists() and is_adapter_dir(path):
        merged = _merge_into_fp_base(path)  # never into 4-bit weights
        wd = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="tripost-merged-"))
        base_path = str(save_checkpoint(merged, tokenizer, wd / "merged_base"))
        del merged
    if adapter == "none":
        model = AutoModelForCausalLM.from_pretrained(base_path, dtype=_dtype(dtype))
        model.train()
        return model, tokenizer

    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    lora = {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": LORA_TARGETS, **(lora or {})}
    if adapter == "qlora":  # 4-bit weights live where they compute: the device map bitsandbytes expects
        dev = resolve_device(device)
        model = AutoModelForCausalLM.from_pretrained(base_path, quantization_config=_bnb_config(
            torch.float32 if dev == "cpu" else resolve_dtype("auto", dev)), device_map={"": dev})
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    else:
        model = AutoModelForCausalLM.from_pretrained(base_path, dtype=_dtype(dtype))
    cfg = LoraConfig(
        r=int(lora["r"]),
        lora_alpha=int(lora["alpha"]),
        lora_dropout=float(lora["dropout"]),
        target_modules=(lora["target_modules"] if isinstance(lora["target_modules"], str)
                        else list(lora["target_modules"])),
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, cfg)
    model.tripost_adapter = adapter  # recorded by save_checkpoint via training.train
    model.train()
    return model, tokenizer


def _merge_into_fp_base(adapter_path):
    """Merge a (Q)LoRA adapter into a full-precision copy of its base (not into 4-bit weights).

    The merge is computed in fp32; the merged model is returned in the base checkpoint's own dtype
    (a bf16 7B base gives a 14 GB merged base instead of 28 GB; it is re-quantised to 4 bits anyway)."""
    from peft import PeftModel
    from transformers import AutoConfig, AutoModelForCausalLM

    base_path = adapter_base(adapter_path)
    saved = getattr(AutoConfig.from_pretrained(str(base_path)), "dtype", None)
    base = AutoModelForCausalLM.from_pretrained(str(base_path), dtype=torch.float32)
    merged = PeftModel.from_pretrained(base, str(adapter_path)).merge_and_unload()
    if isinstance(saved, str):
        saved = getattr(torch, saved, None)
    return merged.to(saved) if saved in (torch.bfloat16, torch.float16) else merged


def write_adapter_meta(out_dir, adapter: str) -> None:
    if adapter != "none":
        (Path(out_dir) / "tripost_adapter.json").write_text(json.dumps({"adapter": adapter}) + "\n")


def init_model(model_cfg: dict, texts: Iterable[str] | None = None, init_model: str | None = None,
               work_dir=None):
    """The model a training stage starts from.

    `init_model` (a checkpoint dir / adapter dir / hub id) wins; otherwise `model_cfg["name"]`:
    "tiny-llama" builds tokenizer (from `texts`) and a fresh model; anything else is loaded with
    `from_pretrained`. The adapter mode comes from `model_cfg["adapter"]`.
    """
    adapter = model_cfg["adapter"]
    source = init_model or (None if model_cfg["name"] == "tiny-llama" else model_cfg["name"])
    if source:
        return load_for_training(source, adapter, lora=model_cfg["lora"], work_dir=work_dir)
    if texts is None:
        raise ValueError("tiny-llama from scratch needs the training texts to build its tokenizer")
    tok = build_tokenizer(texts, vocab_size=int(model_cfg["vocab_size"]), kind=model_cfg["tokenizer"])
    model = build_tiny_llama(model_cfg, tok)
    if adapter != "none":
        # A from-scratch model has nothing to adapt: save it and put the adapter on the saved copy.
        wd = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="tripost-base-"))
        save_checkpoint(model, tok, wd / "base")
        return load_for_training(wd / "base", adapter, lora=model_cfg["lora"])
    model.train()
    return model, tok
