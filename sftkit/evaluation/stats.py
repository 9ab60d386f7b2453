"""Uncertainty of evaluation numbers, from the per-item scores evaluators already produce.

- A **rate** (every item scores 0 or 1) gets a Wilson score interval; a **mean** of other scores
  (optionally weighted, e.g. token-weighted loss) gets a seeded percentile bootstrap interval.
- Base vs tuned on the **same items** is a paired test: exact McNemar on the discordant pairs
  for rates, a paired bootstrap of the difference otherwise (two-sided p-value, and the interval
  of the difference). No model is run again: these are functions of the score lists.

Everything is deterministic for a given seed; numpy is imported lazily (the bootstrap only).
"""

from __future__ import annotations

import math
from typing import Sequence

Z95 = 1.959963984540054
RESAMPLES = 2000


def is_binary(scores: Sequence[float]) -> bool:
    """Every score is 0 or 1 (a rate)."""
    return bool(scores) and all(s in (0, 1, 0.0, 1.0) for s in scores)


def weighted_mean(scores: Sequence[float], weights: Sequence[float] | None = None) -> float | None:
    if not scores:
        return None
    if weights is None:
        return sum(scores) / len(scores)
    total = sum(weights)
    return sum(s * w for s, w in zip(scores, weights)) / total if total else None


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval of a proportion (good at small n and at 0 or 1)."""
    if n <= 0:
        return None
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _rng(seed: int):
    import numpy as np

    return np.random.default_rng(seed)


def bootstrap_mean(scores: Sequence[float], weights: Sequence[float] | None = None, *, seed: int = 0,
                   resamples: int = RESAMPLES, level: float = 0.95) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the (weighted) mean."""
    import numpy as np

    n = len(scores)
    if n == 0:
        return None
    s = np.asarray(scores, dtype=float)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    idx = _rng(seed).integers(0, n, size=(resamples, n))
    ws = w[idx]
    den = ws.sum(axis=1)
    stats = (s[idx] * ws).sum(axis=1) / np.where(den == 0, 1, den)
    lo, hi = np.quantile(stats, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def interval(scores: Sequence[float], weights: Sequence[float] | None = None, *, seed: int = 0) -> dict:
    """``{"n", "low", "high", "method"}``: Wilson for rates, bootstrap for (weighted) means."""
    n = len(scores)
    if n == 0:
        return {"n": 0, "low": None, "high": None, "method": None}
    if weights is None and is_binary(scores):
        lo, hi = wilson(int(round(sum(scores))), n)
        return {"n": n, "low": lo, "high": hi, "method": "wilson"}
    lo, hi = bootstrap_mean(scores, weights, seed=seed)
    return {"n": n, "low": lo, "high": hi, "method": "bootstrap"}


def binom_two_sided(k: int, n: int) -> float:
    """Exact two-sided p-value of k successes in n fair coin flips (McNemar's exact test)."""
    if n == 0:
        return 1.0
    k = min(k, n - k)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def mcnemar(base: Sequence[float], tuned: Sequence[float]) -> dict:
    """Exact McNemar test on paired 0/1 scores: ``{"test", "p", "base_only", "tuned_only"}``."""
    base_only = sum(1 for b, t in zip(base, tuned) if b and not t)
    tuned_only = sum(1 for b, t in zip(base, tuned) if t and not b)
    p = binom_two_sided(tuned_only, base_only + tuned_only)
    return {"test": "mcnemar", "p": p, "base_only": base_only, "tuned_only": tuned_only}


def paired_bootstrap(base: Sequence[float], tuned: Sequence[float], weights: Sequence[float] | None = None, *,
                     seed: int = 0, resamples: int = RESAMPLES, level: float = 0.95) -> dict:
    """Paired bootstrap of tuned − base (weighted means over the same resampled items):
    ``{"test", "p", "delta_low", "delta_high"}`` with a two-sided p-value for "no difference"."""
    import numpy as np

    n = len(base)
    b = np.asarray(base, dtype=float)
    t = np.asarray(tuned, dtype=float)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    idx = _rng(seed).integers(0, n, size=(resamples, n))
    ws = w[idx]
    den = np.where(ws.sum(axis=1) == 0, 1, ws.sum(axis=1))
    diff = ((t[idx] - b[idx]) * ws).sum(axis=1) / den
    observed = float(((t - b) * w).sum() / (w.sum() or 1))
    if observed == 0 and not diff.any():
        p = 1.0
    else:
        p = float(min(1.0, 2 * min((diff <= 0).mean(), (diff >= 0).mean())))
        p = max(p, 1.0 / resamples)  # a bootstrap cannot show a smaller p-value than this
    lo, hi = np.quantile(diff, [(1 - level) / 2, 1 - (1 - level) / 2])
    return {"test": "paired_bootstrap", "p": p, "delta_low": float(lo), "delta_high": float(hi)}


def paired_test(base: Sequence[float], tuned: Sequence[float], weights: Sequence[float] | None = None, *,
                seed: int = 0) -> dict:
    """McNemar for paired rates, paired bootstrap otherwise; the interval of the difference either way."""
    boot = paired_bootstrap(base, tuned, weights, seed=seed)
    if weights is None and is_binary(base) and is_binary(tuned):
        return {**mcnemar(base, tuned), "delta_low": boot["delta_low"], "delta_high": boot["delta_high"]}
    return boot
