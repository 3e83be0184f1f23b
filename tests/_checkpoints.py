"""Tiny Hugging Face checkpoints of three architectures, each with a tokenizer of its own kind, saved with
`save_pretrained` like a downloaded checkpoint (nothing is fetched):

* `llama`: LlamaForCausalLM + LlamaTokenizerFast (SentencePiece-style BPE over "▁" with byte fallback, `<s>`
  prepended); takes the fast generation path;
* `qwen2`: Qwen2ForCausalLM with sliding-window attention + Qwen2TokenizerFast (byte-level BPE, no BOS,
  `<|endoftext|>`); the sliding window sends generation to the `model.generate` fallback;
* `gpt2`: GPT2LMHeadModel (Conv1D layers, learned positions) + GPT2TokenizerFast (byte-level BPE); fast path.

Randomly initialised, and optionally "pretrained" for a few hundred steps on a task's gold texts (the
tokenizer is trained on them too): a random model never writes an attempt the interaction can parse, so
its iterations would have nothing to train on. The few steps stand in for what a real checkpoint brings.

    python tests/_checkpoints.py ARCH OUT_DIR [--params params.yaml --task TASK --steps 300]
"""

from __future__ import annotations

from pathlib import Path

ARCHITECTURES = ("llama", "qwen2", "gpt2")

_CORPUS = [
    f"Q: (({-i} + {i * 3}) * {i % 7}) = ? Sort the words: apple zebra mango. Today is 0{i % 9 + 1}/1{i % 3}/2001.\n"
    f"Answer: Let's think step by step.\n({i % 5 + 1}) The result is {i * 7 - 3}. So the answer is (A).\n"
    f"Feedback: Step ({i % 4 + 1}) is correct. In step (2) the part \"x\" is incorrect."
    for i in range(200)
]


def _byte_level(vocab_size: int, specials: list[str], corpus: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    return tok


def _sentencepiece_like(vocab_size: int, corpus: list[str]):
    """LLaMA-style: words start with "▁", a newline and each digit are tokens of their own, byte fallback,
    `<s>` prepended."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split("\n", behavior="isolated"),
                                                 pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first"),
                                                 pre_tokenizers.Digits(individual_digits=True)])
    tok.decoder = decoders.Sequence([decoders.Metaspace(replacement="▁", prepend_scheme="first"),
                                     decoders.ByteFallback(), decoders.Fuse()])
    specials = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)]
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                                         show_progress=False))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", tok.token_to_id("<s>"))])
    return tok


def save_tiny_checkpoint(arch: str, out_dir, seed: int = 0, texts: list[str] | None = None) -> Path:
    """Write a random `arch` model (~100k parameters) and its tokenizer (trained on `texts`, else on a small
    built-in corpus) to `out_dir`; returns the path."""
    corpus = list(texts) if texts else _CORPUS
    import torch
    from transformers import (GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast, LlamaConfig, LlamaForCausalLM,
                              LlamaTokenizerFast, Qwen2Config, Qwen2ForCausalLM, Qwen2TokenizerFast)

    torch.manual_seed(seed)
    sizes = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2}
    if arch == "llama":
        tok = LlamaTokenizerFast(tokenizer_object=_sentencepiece_like(1000, corpus), bos_token="<s>", eos_token="</s>",
                                 unk_token="<unk>")
        model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), num_key_value_heads=2, max_position_embeddings=2048,
                                             bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, **sizes))
    elif arch == "qwen2":
        tok = Qwen2TokenizerFast(tokenizer_object=_byte_level(1000, ["<|endoftext|>"], corpus), eos_token="<|endoftext|>",
                                 pad_token="<|endoftext|>", unk_token=None, bos_token=None)
        model = Qwen2ForCausalLM(Qwen2Config(vocab_size=len(tok), num_key_value_heads=1, max_position_embeddings=2048,
                                             use_sliding_window=True, sliding_window=4096, max_window_layers=0,
                                             eos_token_id=tok.eos_token_id, **sizes))
    elif arch == "gpt2":
        tok = GPT2TokenizerFast(tokenizer_object=_byte_level(1000, ["<|endoftext|>"], corpus), eos_token="<|endoftext|>",
                                bos_token="<|endoftext|>", unk_token="<|endoftext|>")
        model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=64, n_layer=2, n_head=2, n_positions=2048,
                                           bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id))
    else:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
    out = Path(out_dir)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def pretrained_checkpoint(arch: str, out_dir, params_file: str, task_name: str, steps: int = 300) -> Path:
    """`save_tiny_checkpoint` on the task's gold texts, then `steps` steps of training on them (whole text)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tripost.params import load_params, section
    from tripost.processing import gold_record
    from tripost.tasks import task_from_params
    from tripost.training import extra_sft_examples, train, train_config

    params = load_params(params_file)
    task = task_from_params(params, task_name)
    buckets = (section(params, "data", task_name).get("buckets") or {}).get("seen")
    recs = [gold_record(task, e) for e in extra_sft_examples(task, 8 * steps, buckets, set(), seed=5)]
    raw = Path(out_dir).with_name(Path(out_dir).name + "-random")
    save_tiny_checkpoint(arch, raw, texts=[r["prompt"] + r["completion"] for r in recs[:300]])
    model, tok = AutoModelForCausalLM.from_pretrained(raw), AutoTokenizer.from_pretrained(raw)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    train(model, tok, recs, out_dir, train_config(params, "train", max_steps=steps, lr=3e-3, batch_size=8,
                                                  mask_prompt=True, warmup_ratio=0.05, save_steps=100000,
                                                  logging_steps=100, max_length=1024, device="cpu"))
    return Path(out_dir)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("arch", choices=ARCHITECTURES)
    ap.add_argument("out")
    ap.add_argument("--params", default="")
    ap.add_argument("--task", default="")
    ap.add_argument("--steps", type=int, default=300)
    a = ap.parse_args()
    if a.task:
        pretrained_checkpoint(a.arch, a.out, a.params or "params.yaml", a.task, a.steps)
    else:
        save_tiny_checkpoint(a.arch, a.out)
