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
    assert "| +ft (M0) | 40.0 | 5.0 | 22.5 | 60.0 | 20.0 | 40.0 |" in md


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


def test_sft_loss_histories_reads_existing_runs_only(tmp_path):
    from tripost.report import sft_loss_histories

    run = tmp_path / "word_sorting" / "ft"
    run.mkdir(parents=True)
    (run / "loss_history.json").write_text('[{"step": 1, "loss": 5.0}]')
    assert sft_loss_histories(tmp_path, ["word_sorting", "logical_deduction"]) == {"word_sorting": [{"step": 1, "loss": 5.0}]}
