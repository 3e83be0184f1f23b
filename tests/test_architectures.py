"""Any causal-LM checkpoint: three architectures (tests/_checkpoints.py) load, take QLoRA on the CPU, and
generate the same greedy text through our fast path and through `model.generate`."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _checkpoints import ARCHITECTURES, save_tiny_checkpoint  # noqa: E402

PROMPTS = ["Q: ((-3 + 4) * 2) =\nAnswer:", "Q: Sort the words: apple zebra.\nAnswer: Let's", "Today is",
           "Q: (1 + 2) * 3 = ? Today is 01/12/2001. Sort the words: mango apple zebra.\nAnswer: Let's think"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    base = tmp_path_factory.mktemp("arch")
    return {arch: save_tiny_checkpoint(arch, base / arch) for arch in ARCHITECTURES}


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_fast_path_and_fallback_give_the_same_greedy_text(checkpoints, arch):
    from tripost.generation import _fast_path_ok, _generate_hf, generate
    from tripost.modeling import load_for_inference

    model, tok = load_for_inference(checkpoints[arch])
    assert _fast_path_ok(model) == (arch != "qwen2")  # the sliding-window Qwen2 config takes the fallback
    ours = generate(model, tok, PROMPTS, max_new_tokens=16, batch_size=3)
    hf = _generate_hf(model, tok, PROMPTS, max_new_tokens=16, batch_size=3)
    assert [g.text for g in ours] == [g.text for g in hf]
    assert [g.num_tokens for g in ours] == [g.num_tokens for g in hf]
    assert any(g.text for g in ours)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_qlora_with_all_linear_targets_any_architecture(checkpoints, arch, tmp_path):
    """`model.lora.target_modules: all-linear` finds the linear layers of every architecture (GPT-2's are
    Conv1D `c_attn`/`c_fc`); a list of LLaMA names would fail on GPT-2."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    from tripost.modeling import load_for_training

    model, _ = load_for_training(checkpoints[arch], "qlora", lora={"r": 4, "alpha": 8, "target_modules": "all-linear"})
    lora_layers = [m for m in model.modules() if isinstance(m, BaseTunerLayer)]
    assert len(lora_layers) >= 8  # 2 layers x (attention + MLP) at least
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) > 0
    if arch == "gpt2":
        with pytest.raises(ValueError, match="not found"):
            load_for_training(checkpoints[arch], "qlora", lora={"target_modules": ["q_proj", "v_proj"]})
