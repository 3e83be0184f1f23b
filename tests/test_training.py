"""Weighted SL (docs/method.md §4.2, end-of-text fix of §7): collator weights/labels, the loss by hand, a real run, resume."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from _tiny import TINY, records, texts, train_config, train_tiny
from tripost.modeling import build_tiny_llama, build_tokenizer
from tripost.training import IGNORE, WeightedCollator, encode_record, sft_records, weighted_loss


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer(texts(records(200)), vocab_size=512)


def _pieces(tok, ids):
    return [tok.decode([i]) for i in ids]


def test_collator_weights_labels_pads_eos(tok):
    rec = {"prompt": "Q: 12 + 3 =\nAnswer: Let's think step by step.",
           "completion": "\n(1) 12 + 3 = 15.\n(Final response) So the answer is 15.\nFeedback: Step (1) is correct.",
           "weighted": True, "kind": "improvement"}
    short = {"prompt": "Q: 1 + 2 =", "completion": "\n(1) 3.", "weighted": False, "kind": "gold"}
    enc = encode_record(tok, rec, section_weight=1.5, mask_prompt=False)
    ids = enc["input_ids"]
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id  # BOS in front, EOS appended
    text = rec["prompt"] + rec["completion"]
    assert tok.decode(ids, skip_special_tokens=True) == text
    # weights: 1.0 up to the token before "\nFeedback:", 1.5 from its "\n" to the EOS
    pieces = _pieces(tok, ids)
    cut = len(ids) - 1 - pieces[::-1].index("\n")  # the last "\n" is the one before Feedback
    assert "".join(pieces[cut:-1]) == "\nFeedback: Step (1) is correct."
    assert enc["weights"][:cut] == [1.0] * cut
    assert enc["weights"][cut:] == [1.5] * (len(ids) - cut)
    assert enc["labels"] == ids  # no prompt masking by default (paper)

    # unweighted records: 1.0 everywhere, even with a Feedback line
    enc_u = encode_record(tok, {**rec, "weighted": False}, section_weight=1.5, mask_prompt=False)
    assert enc_u["weights"] == [1.0] * len(ids)

    # mask_prompt: prompt tokens ignored, completion + EOS trained
    enc_m = encode_record(tok, rec, section_weight=1.5, mask_prompt=True)
    n_prompt = len(tok(rec["prompt"])["input_ids"])
    assert enc_m["labels"][:n_prompt] == [IGNORE] * n_prompt
    assert enc_m["labels"][n_prompt:] == ids[n_prompt:]
    assert tok.decode(ids[n_prompt:-1]) == rec["completion"]

    # collator: right padding with pad id, attention 0, label IGNORE, weight 0
    enc_s = encode_record(tok, short, section_weight=1.5, mask_prompt=False)
    batch = WeightedCollator(tok.pad_token_id)([enc, enc_s])
    n, m = len(ids), len(enc_s["input_ids"])
    assert batch["input_ids"].shape == (2, n)
    assert batch["input_ids"][1, m:].eq(tok.pad_token_id).all()
    assert batch["attention_mask"][1].tolist() == [1] * m + [0] * (n - m)
    assert batch["labels"][1, m:].eq(IGNORE).all() and batch["weights"][1, m:].eq(0).all()
    assert batch["labels"][1, m - 1] == tok.eos_token_id  # the EOS is trained
    assert batch["weights"][0].tolist() == enc["weights"]

    # too long -> skipped
    assert encode_record(tok, rec, section_weight=1.5, mask_prompt=False, max_length=5) is None


def test_loss_equals_hand_computation(tok):
    torch.manual_seed(0)
    model = build_tiny_llama(TINY, tok).eval()
    recs = records(3, seed=5)
    recs[0]["weighted"] = True
    encs = [encode_record(tok, r, section_weight=1.5, mask_prompt=(i == 2)) for i, r in enumerate(recs)]
    batch = WeightedCollator(tok.pad_token_id)(encs)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    got = weighted_loss(logits, batch["labels"], batch["weights"]).item()

    per_example, sums, counts = [], [], []
    for i, e in enumerate(encs):
        num, den = 0.0, 0
        for t in range(1, len(e["input_ids"])):
            if e["labels"][t] == IGNORE:
                continue
            logp = torch.log_softmax(logits[i, t - 1].double(), -1)[e["labels"][t]].item()
            num += -logp * e["weights"][t]
            den += 1
        per_example.append(num / den)
        sums.append(num)
        counts.append(den)
    want = sum(per_example) / len(per_example)
    assert math.isclose(got, want, rel_tol=1e-5)
    # token normalisation: one mean over every trained token of the batch, whatever its record
    got_token = weighted_loss(logits, batch["labels"], batch["weights"], "token").item()
    assert math.isclose(got_token, sum(sums) / sum(counts), rel_tol=1e-5)
    assert counts[2] < counts[0] and not math.isclose(got_token, want, rel_tol=1e-3)
    with pytest.raises(ValueError, match="loss_normalization"):
        weighted_loss(logits, batch["labels"], batch["weights"], "sequence")
    # the weighted example really carries weights > 1 and its loss is larger than unweighted
    unw = weighted_loss(logits[:1], batch["labels"][:1], torch.ones_like(batch["weights"][:1])).item()
    assert got != pytest.approx(unw) and per_example[0] > unw


def test_sft_records_format():
    class T:
        def prompt(self, q):
            return f"Q: {q}\nAnswer: Let's think step by step."

    class E:
        question, rationale = "1 + 1 =", "(1) 1 + 1 = 2.\n(Final response) So the answer is 2."

    (r,) = sft_records(T(), [E()])
    assert r == {"prompt": "Q: 1 + 1 =\nAnswer: Let's think step by step.",
                 "completion": "\n(1) 1 + 1 = 2.\n(Final response) So the answer is 2.", "weighted": False,
                 "kind": "gold"}


def test_real_training_lowers_loss_and_writes_history(tmp_path):
    _, _, m = train_tiny(tmp_path / "run", n=200, epochs=2)
    hist = json.loads((tmp_path / "run" / "loss_history.json").read_text())
    assert hist[0]["loss"] > 2 * hist[-1]["loss"]
    assert (tmp_path / "run" / "loss_curve.png").stat().st_size > 1000
    assert (tmp_path / "run" / "loss_history.csv").exists()
    assert (tmp_path / "run" / "model.safetensors").exists() and (tmp_path / "run" / "tokenizer.json").exists()
    assert not (tmp_path / "run" / "checkpoints").exists()
    assert m["steps"] > 0 and m["tokens_per_s"] > 0 and m["wall_time_s"] > 0


def test_an_unknown_loss_normalization_stops_training_before_it_starts(tmp_path, tok):
    from tripost.training import train

    with pytest.raises(ValueError, match="loss_normalization must be one of example, token, got 'sequence'"):
        train(build_tiny_llama(TINY, tok), tok, records(4), tmp_path / "run", train_config(loss_normalization="sequence"))
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_interrupted_training_resumes_from_last_checkpoint(tmp_path):
    from tripost.training import train

    recs = records(64)
    tok = build_tokenizer(texts(recs), vocab_size=512)
    cfg = train_config(max_steps=6, lr=1e-3, batch_size=8, save_steps=3, logging_steps=1, keep_checkpoints=True)
    m1 = train(build_tiny_llama(TINY, tok), tok, recs, tmp_path, cfg)
    assert m1["steps"] == 6 and (tmp_path / "checkpoints" / "checkpoint-6").exists()
    # "interrupted" after 6 of 10 steps: the next call continues from checkpoint-6, not from scratch
    m2 = train(build_tiny_llama(TINY, tok), tok, recs, tmp_path, {**cfg, "max_steps": 10, "keep_checkpoints": False})
    assert m2["resumed_from"].endswith("checkpoint-6") and m2["steps"] == 10
    steps = [h["step"] for h in json.loads((tmp_path / "loss_history.json").read_text())]
    assert steps[0] == 1 and steps[-1] == 10  # history carried over from the checkpoint


_KILL_DURING_SAVE = """
import os, signal, sys
sys.path.insert(0, {tests!r})
from transformers.trainer_callback import TrainerState
from _tiny import TINY, records, texts
from tripost.modeling import build_tiny_llama, build_tokenizer
from tripost.training import train

real = TrainerState.save_to_json
def save_to_json(self, path):
    if "checkpoint-6" in str(path):  # model and optimizer are written; the state file is not
        os.kill(os.getpid(), signal.SIGKILL)
    real(self, path)
TrainerState.save_to_json = save_to_json
recs = records(64)
tok = build_tokenizer(texts(recs), vocab_size=512)
train(build_tiny_llama(TINY, tok), tok, recs, {out!r}, {cfg!r})
"""


def test_a_kill_during_a_checkpoint_save_does_not_block_the_rerun(tmp_path):
    """SIGKILL while checkpoint-6 is being written leaves a torn folder; the rerun resumes from
    checkpoint-3 (removing the torn one) and ends with the weights of an uninterrupted run."""
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from safetensors.torch import load_file

    from tripost.training import train

    cfg = train_config(max_steps=9, lr=1e-3, batch_size=8, save_steps=3, logging_steps=1)
    code = _KILL_DURING_SAVE.format(tests=str(Path(__file__).parent), out=str(tmp_path / "run"), cfg=cfg)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    torn = tmp_path / "run" / "checkpoints" / "checkpoint-6"
    assert torn.exists() and not (torn / "trainer_state.json").exists()

    recs = records(64)
    tok = build_tokenizer(texts(recs), vocab_size=512)
    m = train(build_tiny_llama(TINY, tok), tok, recs, tmp_path / "run", cfg)
    assert m["resumed_from"].endswith("checkpoint-3") and m["steps"] == 9
    ref = train(build_tiny_llama(TINY, tok), tok, recs, tmp_path / "ref", cfg)
    assert ref["resumed_from"] is None
    a, b = load_file(tmp_path / "run" / "model.safetensors"), load_file(tmp_path / "ref" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


@pytest.mark.slow
def test_training_notebook_runs_sft_with_the_smoke_profile(tmp_path):
    """notebooks/04_training.ipynb under papermill: SFT from scratch, loss curve, M0 accuracy."""
    from pathlib import Path

    import papermill as pm
    import yaml

    from tripost.data import prepare_task
    from tripost.params import deep_merge, load_params, section

    root = Path(__file__).resolve().parent.parent
    params = deep_merge(load_params(root / "params.yaml"), yaml.safe_load((root / "profiles" / "smoke.yaml").read_text()))
    params["sft"]["epochs"] = 1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    task = "multistep_arithmetic"
    prepare_task(task, section(params, "data", task), tmp_path / "data")
    out = tmp_path / "model"
    pm.execute_notebook(
        str(root / "notebooks" / "04_training.ipynb"), str(tmp_path / "executed.ipynb"), kernel_name="tripost",
        cwd=str(root), progress_bar=False,
        parameters={"task": task, "mode": "sft", "train_file": str(tmp_path / "data" / "train.jsonl"),
                    "output_dir": str(out), "params_file": str(tmp_path / "params.yaml")},
    )
    for f in ("model.safetensors", "tokenizer.json", "loss_curve.png", "greedy_accuracy.json", "train_metrics.json"):
        assert (out / f).exists(), f
    acc = json.loads((out / "greedy_accuracy.json").read_text())
    assert acc["n"]["seen"] > 0 and acc["n"]["unseen"] > 0 and 0 <= acc["seen"] <= 1


def test_the_run_seed_shifts_iteration_training_but_not_sft(tmp_path):
    from tripost.io import write_jsonl
    from tripost.training import stage_records

    write_jsonl(tmp_path / "train.jsonl", records(4))
    from tripost.params import deep_merge, load_params

    params = deep_merge(load_params(Path(__file__).resolve().parent.parent / "params.yaml"),
                        {"seed": 0, "train": {"seed": 42, "lr": 1e-3}})
    _, cfg0 = stage_records("word_sorting", "tripost", tmp_path / "train.jsonl", params)
    _, cfg3 = stage_records("word_sorting", "tripost", tmp_path / "train.jsonl", {**params, "seed": 3})
    assert (cfg0["seed"], cfg3["seed"]) == (42, 45) and cfg3["lr"] == 1e-3


def test_a_checkpoint_half_removed_by_a_killed_cleanup_is_not_resumed_from(tmp_path):
    """A kill while the finished run deletes its checkpoints can leave checkpoint-N with its
    trainer_state.json but without its weights; the rerun must not resume from it (and it ends with the
    weights of an uninterrupted run). The cleanup itself renames before deleting (remove_dir)."""
    from safetensors.torch import load_file

    from tripost.training import last_complete_checkpoint, remove_dir, train

    recs = records(32)
    tok = build_tokenizer(texts(recs), vocab_size=512)
    cfg = train_config(max_steps=4, lr=1e-3, batch_size=4, save_steps=2, logging_steps=1, seed=5)
    train(build_tiny_llama(TINY, tok), tok, recs, tmp_path / "run", {**cfg, "keep_checkpoints": True})
    ckpt = tmp_path / "run" / "checkpoints" / "checkpoint-4"
    (ckpt / "model.safetensors").unlink()  # what a cleanup killed half-way leaves
    assert last_complete_checkpoint(tmp_path / "run" / "checkpoints") is None and not ckpt.exists()
    (tmp_path / "run" / "checkpoints").mkdir(exist_ok=True)
    m = train(build_tiny_llama(TINY, tok), tok, recs, tmp_path / "run", cfg)
    ref = train(build_tiny_llama(TINY, tok), tok, recs, tmp_path / "ref", cfg)
    assert m["resumed_from"] is None and m["steps"] == ref["steps"] == 4
    a, b = load_file(tmp_path / "run" / "model.safetensors"), load_file(tmp_path / "ref" / "model.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert not (tmp_path / "run" / "checkpoints").exists()

    d = tmp_path / "gone"
    (d / "sub").mkdir(parents=True)
    stale = tmp_path / ".gone.removing-1"
    stale.mkdir()
    remove_dir(d)
    assert not d.exists() and not stale.exists() and not list(tmp_path.glob(".gone.removing-*"))


def test_the_tokenizer_can_learn_the_feedback_words_without_the_model_training_on_them(tmp_path):
    """`model.tokenizer_feedback_examples`: the real sft stage (smoke sizes, one step) builds its BPE
    from the SFT texts plus the scripted FBK's feedback on gold and planted mistakes, so "incorrect"
    and "calculation" are whole tokens; the SFT texts alone spell "incorrect" in pieces. The model's
    training records are the gold ones either way."""
    import yaml
    from transformers import AutoTokenizer

    from tripost.data import prepare_task
    from tripost.params import deep_merge, load_params, section
    from tripost.tasks import Example, task_from_params
    from tripost.training import feedback_texts, run_stage, stage_records

    root = Path(__file__).resolve().parent.parent
    params = deep_merge(load_params(root / "params.yaml"), yaml.safe_load((root / "profiles" / "smoke.yaml").read_text()))
    params = deep_merge(params, {"model": {"tokenizer_feedback_examples": 24},
                                 "per_task": {"multistep_arithmetic": {"sft": {"max_steps": 1}}}})
    task_name = "multistep_arithmetic"
    prepare_task(task_name, section(params, "data", task_name), tmp_path / "data")
    train_file = tmp_path / "data" / "train.jsonl"
    task = task_from_params(params, task_name)
    examples = [Example.from_dict(json.loads(line)) for line in train_file.read_text().splitlines()]
    fbs = feedback_texts(task, examples, 24)
    assert sum("are correct." in f and "In step" not in f for f in fbs) == 24  # every gold verdict
    assert sum("is incorrect" in f for f in fbs) >= 20  # and (nearly) every planted mistake's

    m = run_stage(task_name, "sft", train_file, tmp_path / "model", params)
    assert m["kinds"] == {"gold": len(examples)}  # the feedback texts are never trained on
    line = ' In step (3) the part " (1 - 2) = -3 " is incorrect. This is because there is a calculation error'
    with_fb = AutoTokenizer.from_pretrained(str(tmp_path / "model"))
    records, _ = stage_records(task_name, "sft", train_file, params)
    plain = build_tokenizer([r["prompt"] + r["completion"] for r in records],
                            vocab_size=int(section(params, "model", task_name)["vocab_size"]))
    for word in (" incorrect", " calculation"):
        assert len(with_fb(word, add_special_tokens=False)["input_ids"]) == 1, word
    assert len(plain(" incorrect", add_special_tokens=False)["input_ids"]) > 2
    assert len(with_fb(line, add_special_tokens=False)["input_ids"]) < 0.7 * len(plain(line, add_special_tokens=False)["input_ids"])
