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


# Student's t, two-sided 95% (the 0.975 quantile), for 1-30 degrees of freedom; above 30 the
# Cornish-Fisher expansion below is within 0.0005 of the exact value.
_T975 = dict(enumerate((12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
                        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
                        2.060, 2.056, 2.052, 2.048, 2.045, 2.042), start=1))


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t with `df` degrees of freedom (df >= 1)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df in _T975:
        return _T975[df]
    z = 1.959964
    return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)


def seed_interval(values) -> dict:
    """Mean over runs that differ only in their seed, with the 95% Student-t interval of that mean
    ({"mean", "low", "high", "n"}; low/high None for a single run). Three seeds give a wide interval
    (t = 4.3): it says how much the seed alone moves the result, not the question sampling noise."""
    import math

    xs = [float(v) for v in values if v is not None]
    n = len(xs)
    if n == 0:
        return {"mean": None, "low": None, "high": None, "n": 0}
    mean = sum(xs) / n
    if n == 1:
        return {"mean": mean, "low": None, "high": None, "n": 1}
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = t975(n - 1) * sd / math.sqrt(n)
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": n}
