"""Shared helpers for the small-model tests: synthetic records and a tiny model trained in seconds."""

from __future__ import annotations

import random

def repo_params(overrides: dict | None = None) -> dict:
    """The repo's params.yaml (every setting's value) with `overrides` deep-merged over it."""
    from pathlib import Path

    from tripost.params import deep_merge, load_params

    return deep_merge(load_params(Path(__file__).resolve().parent.parent / "params.yaml"), overrides or {})


def edit_limits() -> dict:
    """params.yaml's FBK/IMP limits for `tripost.interaction.edit` (rounds, attempt length)."""
    cfg = repo_params()["interaction"]
    return {"max_rounds": cfg["max_rounds"], "max_attempt_words": cfg["max_attempt_words"]}


def llm_client(**overrides):
    """The LLM client of params.yaml's `feedback_backend.llm`, with a test's `overrides` (its server, cache)."""
    from tripost.feedback import LLMClient

    return LLMClient.from_config(repo_params()["feedback_backend"]["llm"], **overrides)


def llm_backend(task, client, **overrides):
    """The LLM FBK/IMP of params.yaml's `feedback_backend.llm`, with `overrides` (e.g. fewer shots)."""
    from tripost.feedback import LLMBackend

    return LLMBackend.from_config(task, client, repo_params()["feedback_backend"]["llm"], **overrides)


# params.yaml's model settings at a seconds-to-train size
TINY = {**repo_params()["model"], "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 2, "num_key_value_heads": 2, "max_position_embeddings": 512}


def add_record(rng: random.Random, weighted: bool = False) -> dict:
    a, b = rng.randint(0, 99), rng.randint(0, 99)
    prompt = f"Q: {a} + {b} =\nAnswer: Let's think step by step."
    completion = f"\n(1) {a} + {b} = {a + b}.\n(Final response) So the answer is {a + b}."
    if weighted:
        completion += "\nFeedback: Step (1) is correct. The final response is also correct."
    return {"prompt": prompt, "completion": completion, "weighted": weighted, "kind": "gold"}


def records(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [add_record(rng, weighted=(i % 3 == 0)) for i in range(n)]


def texts(recs) -> list[str]:
    return [r["prompt"] + r["completion"] for r in recs]


def train_config(**overrides) -> dict:
    """The repo's params.yaml `train:` settings (and model placement) with `overrides`: what train() needs."""
    from pathlib import Path

    from tripost.params import load_params
    from tripost.training import train_config as from_params

    return from_params(load_params(Path(__file__).resolve().parent.parent / "params.yaml"), "train", **overrides)


def train_tiny(out_dir, n: int = 300, epochs: float = 3, seed: int = 0):
    """A tiny LLaMA trained for a few seconds on the addition records; returns (model, tok, metrics)."""
    from tripost.modeling import build_tiny_llama, build_tokenizer
    from tripost.training import train

    recs = records(n, seed)
    tok = build_tokenizer(texts(recs), vocab_size=512)
    model = build_tiny_llama(TINY, tok)
    metrics = train(model, tok, recs, out_dir, train_config(epochs=epochs, lr=3e-3, batch_size=16, warmup_ratio=0.1,
                                                            logging_steps=5, save_steps=1000))
    return model, tok, metrics
