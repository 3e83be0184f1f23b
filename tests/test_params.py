from pathlib import Path

import pytest
import yaml

from tripost.params import deep_merge, load_params, section
from tripost.profiles import apply_profile

ROOT = Path(__file__).resolve().parent.parent


def test_section_merges_per_task_overrides():
    params = {"sft": {"lr": 1e-3, "steps": 10}, "per_task": {"word_sorting": {"sft": {"steps": 20}}}}
    assert section(params, "sft", "word_sorting") == {"lr": 1e-3, "steps": 20}
    assert section(params, "sft", "multistep_arithmetic") == {"lr": 1e-3, "steps": 10}
    with pytest.raises(KeyError):
        section(params, "nope")


def test_the_trace_records_each_setting_read_with_its_stage(tmp_path, monkeypatch):
    """TRIPOST_PARAMS_TRACE: the record the DVC-dependency test compares with dvc.yaml."""
    import json

    import tripost.params as tp

    trace = tmp_path / "trace.jsonl"
    monkeypatch.setattr(tp, "_traced", set())
    monkeypatch.setenv("DVC_STAGE", "evaluate@x")
    monkeypatch.setenv(tp.TRACE_ENV, str(trace))
    params = load_params(ROOT / "params.yaml")
    cfg = section(params, "evaluation", "word_sorting")
    cfg["batch_size"], cfg["batch_size"], cfg.get("max_new_tokens"), params["seed"]
    with pytest.raises(KeyError, match="evaluation.nope is not set"):
        cfg["nope"]
    spread = {**section(params, "generation")}  # reading a whole section (spread, copy, dump) records it
    reads = [json.loads(line) for line in trace.read_text().splitlines()]
    assert {r["stage"] for r in reads} == {"evaluate@x"}
    assert [r["key"] for r in reads][:5] == ["per_task.word_sorting.evaluation", "evaluation.batch_size",
                                             "evaluation.max_new_tokens", "seed", "generation"]
    assert spread == params["generation"]
    monkeypatch.delenv(tp.TRACE_ENV)  # unset: nothing recorded, plain dicts
    assert type(load_params(ROOT / "params.yaml")) is dict


def test_deep_merge_does_not_mutate():
    a = {"x": {"y": 1, "z": 2}}
    assert deep_merge(a, {"x": {"y": 3}}) == {"x": {"y": 3, "z": 2}}
    assert a == {"x": {"y": 1, "z": 2}}


def test_repo_params_load_and_name_every_task():
    params = load_params(ROOT / "params.yaml")
    assert params["profile"] == "default"
    assert set(params["tasks"]) <= set(params["per_task"])


@pytest.mark.parametrize("profile", ["smoke", "paper"])
def test_profiles_apply_over_the_default(tmp_path, profile):
    params = tmp_path / "params.yaml"
    params.write_text((ROOT / "params.yaml").read_text())
    apply_profile(profile, params, ROOT / "profiles")
    merged = yaml.safe_load(params.read_text())
    overlay = yaml.safe_load((ROOT / "profiles" / f"{profile}.yaml").read_text()) or {}
    assert merged["profile"] == profile

    def check(over, got):
        for k, v in over.items():
            if isinstance(v, dict) and isinstance(got.get(k), dict):
                check(v, got[k])
            else:
                assert got[k] == v

    check({k: v for k, v in overlay.items() if k != "profile"}, merged)


def test_unknown_profile_is_a_clear_error(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("profile: default\n")
    with pytest.raises(ValueError, match="no profile 'nope'"):
        apply_profile("nope", params, ROOT / "profiles")


@pytest.mark.parametrize("edit, message", [
    ("model:\n  num_hidden_layer: 8\n", "params.yaml: model.num_hidden_layer is not a known setting"),
    ("processing:\n  improvement_ratio: abc\n", "params.yaml: processing.improvement_ratio must be a number, got 'abc'"),
    ("data:\n  train_size: '100'\n", "params.yaml: data.train_size must be an integer, got '100'"),
    ("train:\n  mask_prompt: 1\n", "params.yaml: train.mask_prompt must be true or false, got 1"),
    ("per_task:\n  word_sorting:\n    sft: {max_step: 3}\n", "params.yaml: per_task.word_sorting.sft.max_step is not a known"),
    ("per_task:\n  word_sorting:\n    pipeline: {}\n", "params.yaml: per_task.word_sorting.pipeline is not a section a task can"),
    ("sft:\n  per_task:\n    word_sorting: {lr: 0.1}\n", "params.yaml: sft.per_task is not a known setting: per-task overrides live in"),
    ("pipeline:\n  iterations:\n    - {name: t1, t: one, prev: ft, rebalance: true}\n",
     r"params.yaml: pipeline.iterations\[0\].t must be an integer, got 'one'"),
    ("baselines:\n  lmsi:\n    train: {lrr: 1.0}\n", "params.yaml: baselines.lmsi.train.lrr is not a known setting"),
    ("model:\n  lora: {target_modules: 7}\n", "params.yaml: model.lora.target_modules must be a list or a string, got 7"),
    ("sede: 3\n", "params.yaml: sede is not a known setting"),
    ("tasks: [word_sortin]\n", "params.yaml: tasks 'word_sortin' is not a task: no src/tripost/tasks/word_sortin.py"),
    ("per_task:\n  msa:\n    train: {lr: 0.1}\n", "params.yaml: per_task.msa 'msa' is not a task"),
])
def test_an_unknown_or_mistyped_key_is_one_line_naming_it(tmp_path, edit, message):
    from tripost.config import ConfigError
    from tripost.params import deep_merge

    params = deep_merge(yaml.safe_load((ROOT / "params.yaml").read_text()), yaml.safe_load(edit))
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(ConfigError, match=message) as err:
        load_params(path)
    assert "\n" not in str(err.value)


def test_every_shipped_profile_is_valid_and_a_bad_profile_is_refused_before_params_change(tmp_path):
    from tripost.config import ConfigError, check

    for f in [ROOT / "params.yaml", *sorted((ROOT / "profiles").glob("*.yaml"))]:
        check(yaml.safe_load(f.read_text()), str(f))
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "typo.yaml").write_text("train:\n  epoch: 2\n")
    params = tmp_path / "params.yaml"
    params.write_text((ROOT / "params.yaml").read_text())
    before = params.read_text()
    with pytest.raises(ConfigError, match="typo.yaml: train.epoch is not a known setting"):
        apply_profile("typo", params, tmp_path / "profiles")
    assert params.read_text() == before


def test_a_setting_only_a_task_sets_is_traced_under_per_task(tmp_path, monkeypatch):
    import json

    import tripost.params as tp

    assert "buckets" not in load_params(ROOT / "params.yaml")["data"]  # set per task only
    trace = tmp_path / "trace.jsonl"
    monkeypatch.setattr(tp, "_traced", set())
    monkeypatch.setenv(tp.TRACE_ENV, str(trace))
    params = load_params(ROOT / "params.yaml")
    section(params, "data", "word_sorting")["buckets"]
    section(params, "data", "word_sorting")["seed"]
    keys = [json.loads(line)["key"] for line in trace.read_text().splitlines()]
    assert keys == ["per_task.word_sorting.data", "per_task.word_sorting.data.buckets", "data.seed"]
