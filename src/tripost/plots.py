"""Figures from saved metrics (no model needed): matplotlib, written as PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from tripost.io import atomic_path  # noqa: E402
from tripost.report import method_label, method_order  # noqa: E402
from tripost.tasks import task_label  # noqa: E402


def _save(fig, path) -> Path:
    path = Path(path)
    with atomic_path(path.with_suffix(".png")) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def accuracy_by_method(metrics: dict, path) -> Path:
    """One panel per task: seen and unseen accuracy of every method."""
    tasks = [t for t in metrics]
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.8), squeeze=False, sharey=True)
    for ax, task in zip(axes[0], tasks):
        methods = method_order(metrics[task])
        xs = range(len(methods))
        for offset, split, color in ((-0.2, "seen", "#4C72B0"), (0.2, "unseen", "#DD8452")):
            ax.bar([x + offset for x in xs], [100 * (metrics[task][m].get(split) or 0) for m in methods],
                   width=0.4, label=split, color=color)
        ax.set_xticks(list(xs), [method_label(m) for m in methods], rotation=45, ha="right", fontsize=8)
        ax.set_title(task_label(task))
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("accuracy (%)")
    axes[0][0].legend()
    return _save(fig, path)


def si_by_iteration(metrics: dict, path) -> Path:
    """SI frequency, SI contribution and self-verification (share of wrong first attempts the model's
    own feedback rejects) of TriPosT across iterations t = 1..T, per task."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for task, rows in metrics.items():
        its = sorted((int(m.rsplit("t", 1)[1]), m) for m in rows if m.startswith("tripost_t"))
        if not its:
            continue
        ts = [t for t, _ in its]
        label = task_label(task)
        axes[0].plot(ts, [100 * (rows[m].get("si_freq") or 0) for _, m in its], marker="o", label=label)
        axes[1].plot(ts, [100 * (rows[m].get("si_contrib") or 0) for _, m in its], marker="o", label=label)
        flagged = [(t, (rows[m].get("verification") or {}).get("wrong_rejected_rate")) for t, m in its]
        flagged = [(t, 100 * v) for t, v in flagged if v is not None]
        if flagged:
            axes[2].plot([t for t, _ in flagged], [v for _, v in flagged], marker="o", label=label)
    for ax, title in zip(axes, ("SI frequency (%)", "SI contribution (%)",
                                "wrong first attempts it flags (%)")):
        ax.set_title(title)
        ax.set_xlabel("TriPosT iteration t")
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    axes[0].legend()
    return _save(fig, path)


def ratio_sweep(rows: list[dict], path) -> Path:
    """rows: [{"task", "ratio", "total", "si_freq", "si_contrib"}, ...] from `dvc exp` runs over the
    improvement ratio r (improvement : other : gold = r : 1 : 1; the paper's share p = r / (r + 2))."""
    panels = [("total", "total accuracy (%)"), ("si_freq", "SI frequency (%)"), ("si_contrib", "SI contribution (%)")]
    fig, axes = plt.subplots(1, len(panels), figsize=(12, 3.6))
    for task in sorted({r["task"] for r in rows}):
        pts = sorted((r for r in rows if r["task"] == task), key=lambda r: r["ratio"])
        label = task_label(task)
        for ax, (key, _) in zip(axes, panels):
            xy = [(r["ratio"], 100 * r[key]) for r in pts if r.get(key) is not None]
            ax.plot([x for x, _ in xy], [y for _, y in xy], marker="o", label=label)
    for ax, (_, title) in zip(axes, panels):
        ax.set_title(title)
        ax.set_xlabel("improvement ratio r  (p = r / (r + 2))")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    return _save(fig, path)


def sft_loss_curves(histories: dict[str, list[dict]], path) -> Path:
    """M0's SFT learning curves: training loss against optimizer step, one line per task.
    `histories`: task -> the `loss_history.json` rows ({"step", "loss", ...}) of its SFT run."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for task, rows in histories.items():
        rows = [r for r in rows if r.get("loss") is not None]
        ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], label=task_label(task))
    ax.set_yscale("log")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss (answer tokens)")
    ax.set_title("M0 (+ft) from scratch")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return _save(fig, path)
