import json

import pytest

from tripost import plots
from tripost.report import method_label, method_order, results_markdown

METRICS = {
    "multistep_arithmetic": {
        "tripost_t2": {"seen": 0.5, "unseen": 0.1, "total": 0.3, "si_freq": 0.2, "si_contrib": 0.05},
        "ft": {"seen": 0.4, "unseen": 0.05, "total": 0.225, "si_freq": 0.0, "si_contrib": 0.0},
        "tripost_t1": {"seen": 0.45, "unseen": 0.1, "total": 0.275, "si_freq": 0.1, "si_contrib": 0.02},
        "tripost_auto_t2": {"seen": 0.42, "unseen": 0.1, "total": 0.26, "si_freq": 0.3, "si_contrib": 0.01},
    },
    "word_sorting": {"ft": {"seen": 0.6, "unseen": 0.2, "total": 0.4, "si_freq": None, "si_contrib": None}},
}


def test_methods_are_ordered_like_the_paper():
    assert method_order(METRICS["multistep_arithmetic"]) == ["ft", "tripost_t1", "tripost_t2", "tripost_auto_t2"]
    assert method_label("tripost_auto_t3") == "TriPosT-auto (t=3)"


def test_results_table_has_every_method_and_task():
    md = results_markdown(METRICS)
    assert "| Method | MSA seen | MSA unseen | MSA total | WS seen |" in md
    assert "| TriPosT (t=2) | 50.0 | 10.0 | 30.0 | – | – | – |" in md
    assert "| +ft (M0, greedy) | 40.0 | 5.0 | 22.5 | 60.0 | 20.0 | 40.0 |" in md
    with_ci = {"word_sorting": {"ft": {"seen": 0.6, "unseen": 0.2, "total": 0.4,
                                       "intervals": {"total": {"low": 0.333, "high": 0.4671}}},
                                "tripost_t1": {"seen": 0.7, "unseen": 0.2, "total": 0.45,
                                               "vs_ft": {"mean": 0.05, "low": 0.01, "high": 0.09},
                                               "verification": {"right_accepted_rate": 0.9, "wrong_rejected_rate": 0.5,
                                                                "step_located_rate": 0.25}}}}
    md = results_markdown(with_ci)
    assert "| +ft (M0, greedy) | 60.0 | 20.0 | 40.0 [33.3, 46.7] |" in md
    assert "| TriPosT (t=1) | +5.0 [+1.0, +9.0] |" in md
    assert "| TriPosT (t=1) | 90.0 | 50.0 | 25.0 |" in md


def test_figures_are_written(tmp_path):
    for fn, name in ((plots.accuracy_by_method, "acc"), (plots.si_by_iteration, "si")):
        path = fn(METRICS, tmp_path / f"{name}.png")
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = [{"task": "multistep_arithmetic", "ratio": r, "total": 0.3, "si_freq": r / 10} for r in (-1, 0.5, 1.5)]
    assert plots.ratio_sweep(rows, tmp_path / "sweep.png").stat().st_size > 1000


def test_sft_loss_curves_figure(tmp_path):
    histories = {"multistep_arithmetic": [{"step": s, "loss": 6.0 / s} for s in range(1, 200, 20)],
                 "word_sorting": [{"step": 1, "loss": 5.0}, {"step": 50, "loss": None}, {"step": 100, "loss": 0.4}]}
    path = plots.sft_loss_curves(histories, tmp_path / "loss.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 1000


def _sft_run(model_dir, seen=0.5):
    """The three files an SFT stage leaves beside its checkpoint (tripost.training)."""
    model_dir.mkdir(parents=True)
    (model_dir / "train_metrics.json").write_text(json.dumps(
        {"final_loss": 0.05, "steps": 40, "examples": 640, "wall_time_s": 90.0, "tokens_per_s": 7000.0,
         "config": {"lr": 0.002}, "kinds": {"gold": 640}}))
    (model_dir / "greedy_accuracy.json").write_text(json.dumps(
        {"seen": seen, "unseen": 0.1, "total": (seen + 0.1) / 2, "buckets": {"1": seen, "3": 0.1},
         "n": {"seen": 10, "unseen": 10, "total": 20}, "eval_wall_time_s": 3.0}))
    (model_dir / "loss_history.json").write_text(json.dumps(
        [{"step": 1, "epoch": 0.0, "loss": 6.0, "lr": 1e-4}, {"step": 20, "epoch": 0.5, "loss": None, "lr": 2e-3},
         {"step": 40, "epoch": 1.0, "loss": 0.05, "lr": 0.0}]))


def test_sft_summary_cli_writes_metrics_and_loss_history(tmp_path):
    from tripost.report import main, sft_loss_histories, sft_markdown, sft_metrics

    _sft_run(tmp_path / "models" / "date_understanding" / "ft")
    main(["sft-summary", str(tmp_path / "models" / "date_understanding" / "ft"), str(tmp_path / "sft" / "date_understanding")])
    m = json.loads((tmp_path / "sft" / "date_understanding" / "metrics.json").read_text())
    assert m == {"task": "date_understanding", "steps": 40, "examples": 640, "final_loss": 0.05, "tokens_per_s": 7000.0,
                 "train_wall_time_s": 90.0, "seen": 0.5, "unseen": 0.1, "total": 0.3,
                 "buckets": {"1": 0.5, "3": 0.1}, "n": {"seen": 10, "unseen": 10, "total": 20}, "eval_wall_time_s": 3.0}
    tasks = ["word_sorting", "date_understanding"]
    # the logged points with a loss, in order; tasks without a summary are left out
    assert sft_loss_histories(tmp_path / "sft", tasks) == {"date_understanding": [{"step": 1, "loss": 6.0},
                                                                                   {"step": 40, "loss": 0.05}]}
    summaries = sft_metrics(tmp_path / "sft", tasks)
    assert list(summaries) == ["date_understanding"]
    assert "| DU | 50.0 | 10.0 | 30.0 | 40 | 1.5 | 7,000 | 0.050 |" in sft_markdown(summaries)


def test_sft_summary_of_a_directory_that_is_not_an_sft_run(tmp_path):
    from tripost.report import sft_summary

    (tmp_path / "ft").mkdir()
    (tmp_path / "ft" / "loss_history.json").write_text("[]")
    with pytest.raises(FileNotFoundError, match="train_metrics.json, greedy_accuracy.json"):
        sft_summary(tmp_path / "ft")


def test_llm_usage_sums_calls_tokens_and_cost_per_task(tmp_path):
    from tripost.report import llm_markdown, llm_usage, main

    def write(task, model, llm, backend="llm"):
        path = tmp_path / task / model / "interaction_metrics.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"task": task, "backend": backend, "llm": llm}))
        return path

    paths = [write("date_understanding", "ft", {"requests": 10, "calls": 12, "cache_hits": 1, "retries": 2,
                                                  "prompt_tokens": 1000, "completion_tokens": 100, "cost_usd": 0.25}),
             write("date_understanding", "tripost_t1", {"requests": 4, "calls": 4, "cache_hits": 0, "retries": 0,
                                                          "prompt_tokens": 500, "completion_tokens": 50, "cost_usd": 0.5}),
             write("word_sorting", "ft", {"requests": 0, "calls": 0}, backend="scripted")]
    usage = llm_usage(paths)
    du = usage["date_understanding"]
    assert (du["requests"], du["calls"], du["prompt_tokens"], du["completion_tokens"]) == (14, 16, 1500, 150)
    assert du["cost_usd"] == pytest.approx(0.75) and du["backends"] == ["llm"]
    assert usage["word_sorting"]["cost_usd"] is None and usage["word_sorting"]["backends"] == ["scripted"]
    md = llm_markdown(usage)
    assert "| DU | llm | 14 | 16 | 1 | 1,500 | 150 | 0.7500 |" in md and "| WS | scripted | 0 | 0 | 0 | 0 | 0 | – |" in md
    main(["llm-usage", str(tmp_path / "usage.json"), *map(str, paths)])
    assert json.loads((tmp_path / "usage.json").read_text()) == json.loads(json.dumps(usage))


def test_llm_cost_from_prices_per_million_tokens():
    from tripost.feedback import LLMMetrics

    m = LLMMetrics(price_per_million={"prompt": 0.15, "completion": 0.6})
    m.add("prompt_tokens", 2_000_000)
    m.add("completion_tokens", 500_000)
    assert m.cost == pytest.approx(0.6) and m.to_dict()["cost_usd"] == pytest.approx(0.6)
    assert LLMMetrics().to_dict()["cost_usd"] is None
