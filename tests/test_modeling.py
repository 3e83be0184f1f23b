"""Model/tokenizer building, offline save/load round trips, and a real QLoRA run on CPU."""

from __future__ import annotations

import json
import os

import pytest
import torch

from _tiny import TINY, records, texts, train_config
from tripost.modeling import (build_tiny_llama, build_tokenizer, load_for_inference, load_for_training,
                              save_checkpoint)


def test_tokenizer_digits_specials_and_offline_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    tok = build_tokenizer(texts(records(200)), vocab_size=512)
    s = "Q: ((-12 + 345) * 6) =\nAnswer: Let's think step by step."
    toks = tok.tokenize("12345 678")
    assert [t for t in toks if t.strip("Ġ")][:5] == ["1", "2", "3", "4", "5"]  # one digit per token
    assert tok.pad_token == "<pad>" and tok.eos_token == "</s>" and tok.bos_token == "<s>"
    assert len({tok.pad_token_id, tok.eos_token_id, tok.bos_token_id}) == 3
    ids = tok(s)["input_ids"]
    assert ids[0] == tok.bos_token_id
    assert tok.decode(ids, skip_special_tokens=True) == s
    tok.save_pretrained(tmp_path)
    from transformers import AutoTokenizer

    tok2 = AutoTokenizer.from_pretrained(tmp_path)
    assert tok2(s)["input_ids"] == ids and tok2.decode(ids, skip_special_tokens=True) == s
    assert tok2.pad_token_id == tok.pad_token_id and tok2.eos_token_id == tok.eos_token_id


def test_model_save_load_round_trip_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tok = build_tokenizer(texts(records(100)), vocab_size=512)
    model = build_tiny_llama(TINY, tok).eval()
    assert model.config.vocab_size == len(tok) and model.config.hidden_size == TINY["hidden_size"]
    save_checkpoint(model, tok, tmp_path / "m")
    m2, t2 = load_for_inference(tmp_path / "m")
    x = tok(["Q: 1 + 2 =\nAnswer:"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.equal(model(x).logits, m2(x).logits)
    assert t2("Q: 7")["input_ids"] == tok("Q: 7")["input_ids"]
    assert m2.dtype == torch.float32 and not m2.training


@pytest.mark.slow
def test_qlora_on_cpu_trains_and_adapter_reloads(tmp_path, monkeypatch):
    """4-bit NF4 base + LoRA, trained for real on CPU: loss falls; the saved adapter reloads to the
    same outputs; continuing from it merges it into the fp base and adds a fresh adapter."""
    pytest.importorskip("bitsandbytes")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from tripost.generation import generate
    from tripost.training import train

    from _tiny import train_tiny

    train_tiny(tmp_path / "base", n=160, epochs=1)  # a briefly pre-trained full-precision base
    recs = records(96, seed=1)

    model, tok = load_for_training(tmp_path / "base", "qlora", lora={"r": 8, "alpha": 16, "dropout": 0.0})
    import bitsandbytes as bnb

    assert any(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert 0 < trainable < 0.5 * sum(p.numel() for p in model.parameters())
    m = train(model, tok, recs, tmp_path / "qlora", train_config(max_steps=48, lr=1e-2, batch_size=8, warmup_ratio=0.1,
                                                                 logging_steps=2))
    hist = json.loads((tmp_path / "qlora" / "loss_history.json").read_text())
    assert hist[-1]["loss"] < 0.85 * hist[0]["loss"], hist
    assert (tmp_path / "qlora" / "adapter_config.json").exists()
    assert not (tmp_path / "qlora" / "model.safetensors").exists()  # only the adapter is saved

    prompts = [r["prompt"] for r in records(6, seed=9)]
    model.eval()
    x = tok(prompts[:1], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        want_logits = model(input_ids=x).logits
    want = [g.text for g in generate(model, tok, prompts, max_new_tokens=24)]
    m2, t2 = load_for_inference(tmp_path / "qlora")  # 4-bit base + adapter (kept as a PeftModel)
    with torch.no_grad():
        assert torch.allclose(m2(input_ids=x).logits, want_logits, atol=1e-4)
    assert [g.text for g in generate(m2, t2, prompts, max_new_tokens=24)] == want

    # next iteration: the adapter is merged into the fp base, then a fresh LoRA goes on top
    m3, _ = load_for_training(tmp_path / "qlora", "lora", work_dir=tmp_path / "work")
    assert (tmp_path / "work" / "merged_base" / "model.safetensors").exists()
    assert sum(p.numel() for p in m3.parameters() if p.requires_grad) > 0

    # as the pipeline does it: the merged base inside the next model's folder, named relative to it, so
    # the model loads from any working directory (paths in the repo are relative to its root)
    monkeypatch.chdir(tmp_path)
    m4, t4 = load_for_training("qlora", "qlora", lora={"r": 4, "alpha": 8}, work_dir="next/base")
    train(m4, t4, recs[:16], "next", train_config(max_steps=2, lr=1e-3, batch_size=8))
    cfg = json.loads((tmp_path / "next" / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == "base/merged_base"
    monkeypatch.chdir(tmp_path / "work")
    m5, _ = load_for_inference(tmp_path / "next")
    assert m5.config.model_type == "llama"


def test_char_tokenizer_round_trip(tmp_path):
    from transformers import AutoTokenizer

    tok = build_tokenizer(["List: apple banana"], kind="char", vocab_size=512)
    s = "Q: Sort zebra yak\nFeedback: Step (1) is correct."  # characters unseen in the texts
    ids = tok(s)["input_ids"]
    assert ids[0] == tok.bos_token_id and len(ids) == len(s) + 1
    assert tok.decode(ids, skip_special_tokens=True) == s
    tok.save_pretrained(tmp_path)
    assert AutoTokenizer.from_pretrained(tmp_path)(s)["input_ids"] == ids


def test_a_missing_local_checkpoint_is_named_as_such(tmp_path):
    from tripost.modeling import load_for_inference

    for missing in (tmp_path / "no-such-model", "models/word_sorting/no-such-iteration"):
        with pytest.raises(FileNotFoundError, match=f"model checkpoint not found: {missing}"):
            load_for_inference(missing)


def test_zero_epochs_is_an_error_not_an_untrained_model(tmp_path):
    from _tiny import TINY, records, texts

    from tripost.modeling import build_tiny_llama, build_tokenizer
    from tripost.training import train

    recs = records(8)
    tok = build_tokenizer(texts(recs), vocab_size=512)
    with pytest.raises(ValueError, match="epochs > 0 or max_steps > 0"):
        train(build_tiny_llama(TINY, tok), tok, recs, tmp_path / "out", train_config(epochs=0))
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_device_and_dtype_selection(monkeypatch):
    from tripost.modeling import placement, resolve_device, resolve_dtype

    assert resolve_device("cpu") == "cpu" and resolve_dtype("auto", "cpu") == torch.float32
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    with pytest.raises(ValueError, match="model.device is 'cuda' but torch sees no CUDA GPU"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="model.device must be one of"):
        resolve_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert resolve_dtype("auto", "cuda") == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert resolve_dtype("auto", "cuda") == torch.float16 and resolve_dtype("float32", "cuda") == torch.float32
    params = {"model": {"device": "cpu", "dtype": "auto"}, "per_task": {"word_sorting": {"model": {"dtype": "bfloat16"}}}}
    assert placement(params, "word_sorting") == {"device": "cpu", "dtype": "bfloat16"}
    assert placement({}, None) == {"device": "auto", "dtype": "auto"}


def test_a_cpu_machine_loads_every_model_on_the_cpu_in_fp32(tmp_path):
    from _tiny import train_tiny

    train_tiny(tmp_path / "m", n=16, epochs=1)
    model, _ = load_for_inference(tmp_path / "m")  # device auto, dtype auto
    p = next(model.parameters())
    assert p.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert p.dtype == (torch.float32 if not torch.cuda.is_available() else p.dtype)
