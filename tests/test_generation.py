"""Batched generation: equal to plain model.generate one prompt at a time, stops, order, sampling."""

from __future__ import annotations

import random

import pytest
import torch

from _tiny import records, train_tiny
from tripost.generation import Generation, _generate_hf, generate


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    model, tok, _ = train_tiny(tmp_path_factory.mktemp("gen") / "m", n=300, epochs=3)
    return model.eval(), tok


def _prompts(n, seed=0):
    rng = random.Random(seed)
    out = []
    for r in records(n, seed):
        # vary prompt lengths a lot so groups are left-padded and slots refill mid-generation
        out.append(r["prompt"] + " ok" * rng.choice([0, 0, 1, 5, 17]))
    return out


def test_greedy_equals_plain_generate_one_prompt_at_a_time(tiny):
    model, tok = tiny
    prompts = _prompts(36)
    fast = generate(model, tok, prompts, max_new_tokens=48, batch_size=8)
    ref = [_generate_hf(model, tok, [p], max_new_tokens=48)[0] for p in prompts]
    same = sum(a.text == b.text and a.stop_reason == b.stop_reason for a, b in zip(fast, ref))
    assert same / len(prompts) >= 0.99, [(a, b) for a, b in zip(fast, ref) if a != b][:3]
    assert {g.stop_reason for g in fast} >= {"eos"}
    for g, b in zip(fast, ref):
        assert isinstance(g, Generation) and g.num_tokens == b.num_tokens
    # batch size does not change greedy outputs; order = input order
    assert [g.text for g in generate(model, tok, prompts, max_new_tokens=48, batch_size=36)] == [g.text for g in fast]
    assert [g.text for g in generate(model, tok, prompts[::-1], max_new_tokens=48, batch_size=5)] == [
        g.text for g in fast[::-1]]


def test_lean_decode_step_matches_the_hf_forward(tiny):
    from tripost.generation import _LeanLlama

    model, tok = tiny
    assert _LeanLlama.supported(model)
    prompts = _prompts(20, seed=11)
    lean = generate(model, tok, prompts, max_new_tokens=40, batch_size=6)
    hf = generate(model, tok, prompts, max_new_tokens=40, batch_size=6, lean=False)
    assert [g.text for g in lean] == [g.text for g in hf]


def test_stop_strings_and_length(tiny):
    model, tok = tiny
    prompts = _prompts(10, seed=3)
    full = generate(model, tok, prompts, max_new_tokens=48)
    cut = generate(model, tok, prompts, max_new_tokens=48, stop=["\n(Final"])
    for f, c in zip(full, cut):
        if "\n(Final" in f.text:
            assert c.stop_reason == "stop" and c.text == f.text[: f.text.index("\n(Final")]
            assert c.num_tokens < f.num_tokens
        else:
            assert c.text == f.text
    short = generate(model, tok, prompts, max_new_tokens=3)
    assert all(g.stop_reason == "length" and g.num_tokens == 3 for g in short)
    assert generate(model, tok, [], max_new_tokens=3) == []


def test_sampling_is_deterministic_for_a_seed(tiny):
    model, tok = tiny
    prompts = _prompts(12, seed=4)
    kw = dict(max_new_tokens=32, do_sample=True, temperature=1.3, top_p=0.95, batch_size=4)
    a = generate(model, tok, prompts, seed=7, **kw)
    b = generate(model, tok, prompts, seed=7, **kw)
    c = generate(model, tok, prompts, seed=8, **kw)
    assert [g.text for g in a] == [g.text for g in b]
    assert [g.text for g in a] != [g.text for g in c]


def test_left_truncation_and_training_mode_restored(tiny):
    model, tok = tiny
    model.train()
    g = generate(model, tok, ["Q: 1 + 2 =\nAnswer: Let's think step by step."], max_new_tokens=8, max_input_tokens=4)
    assert model.training and len(g) == 1
    model.eval()


def test_greedy_accuracy_with_a_stub_task(tiny):
    from tripost.evaluation import greedy_accuracy
    from tripost.tasks.base import Example

    model, tok = tiny

    class Stub:
        def prompt(self, q):
            return f"Q: {q}\nAnswer: Let's think step by step."

        def parse_answer(self, text):
            import re

            m = re.findall(r"So the answer is (-?\d+)", text)
            return m[-1] if m else None

        def is_correct(self, pred, gold):
            return pred == gold

    exs = []
    rng = random.Random(0)
    for i in range(12):
        a, b = rng.randint(0, 99), rng.randint(0, 99)
        exs.append(Example(f"{a} + {b} =", str(a + b), "", "b1" if i % 2 else "b2", "seen" if i < 8 else "unseen"))
    res = greedy_accuracy(model, tok, Stub(), exs, max_new_tokens=40, batch_size=8)
    assert set(res) >= {"seen", "unseen", "total", "buckets", "predictions"}
    assert len(res["predictions"]) == 12 and set(res["buckets"]) == {"b1", "b2"}
    acc = [p["correct"] for p in res["predictions"]]
    assert res["total"] == pytest.approx(sum(acc) / 12)
    assert res["seen"] == pytest.approx(sum(acc[:8]) / 8)
    assert all("\nFeedback:" not in p["output"] for p in res["predictions"])


def test_generation_benchmark_runs_both_workloads_and_writes_its_json(tiny, tmp_path):
    """benchmarks/generation_throughput.py end to end on a saved tiny model (few prompts, few tokens)."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    model, tok = tiny
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    root = Path(__file__).resolve().parent.parent
    out = tmp_path / "gen.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    res = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "generation_throughput.py"),
         "--model", f"multistep_arithmetic={tmp_path / 'm'}", "--n", "6", "--batch-size", "4",
         "--max-new-tokens", "12", "--si-max-new-tokens", "12", "--equality-n", "3", "--out", str(out)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "overall speedup" in res.stdout and "self_improve" in res.stdout
    d = json.loads(out.read_text())
    assert [r["workload"] for r in d["rows"]] == ["answer", "self_improve"]
    for r in d["rows"]:
        assert r["prompts"] == 6 and r["gen_tokens"] > 0 and r["ours_s"] > 0 and r["hf_generate_s"] > 0
        assert r["same_as_batched_hf"] == 1.0  # both paths decode the same greedy texts
    total = sum(r["hf_generate_s"] for r in d["rows"]) / sum(r["ours_s"] for r in d["rows"])
    assert d["speedup"] == pytest.approx(total)
    assert set(d["speedup_by_workload"]) == {"answer", "self_improve"}
    assert d["greedy_equality"]["total"] == 3 and d["greedy_equality"]["rate"] == 1.0
