"""Intervals for accuracies: percentile bootstrap over questions (numpy only, no torch: the report uses it)."""

from __future__ import annotations

BOOTSTRAP_RESAMPLES = 2000


def bootstrap_interval(xs, *, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0, level: float = 0.95) -> dict:
    """Mean of 0/1 outcomes with a percentile bootstrap interval over questions:
    {"mean", "low", "high", "n"} (all None for an empty list). Deterministic for `seed`."""
    import numpy as np

    x = np.asarray([float(v) for v in xs])
    if x.size == 0:
        return {"mean": None, "low": None, "high": None, "n": 0}
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(resamples, x.size))].mean(axis=1)
    a = (1 - level) / 2
    return {"mean": float(x.mean()), "low": float(np.quantile(means, a)), "high": float(np.quantile(means, 1 - a)),
            "n": int(x.size)}


def paired_difference(a, b, *, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0, level: float = 0.95) -> dict:
    """Mean of a - b over the same questions (0/1 outcomes, paired) with a percentile bootstrap interval."""
    if len(a) != len(b):
        raise ValueError(f"paired difference needs equal lengths, got {len(a)} and {len(b)}")
    return bootstrap_interval([float(x) - float(y) for x, y in zip(a, b)], resamples=resamples, seed=seed,
                              level=level)
