"""Seeded, stratified subsets: what ``limit`` (evaluators) and ``max_rows`` ([[data]]) take.

Taking the first rows in file order biases a subset toward whatever the file starts with (one
subject, one label); :func:`sample_indices` draws ``k`` of ``n`` rows with the recipe's seed,
proportionally from every stratum (subject, label or cluster) when the rows have one, and returns
them in their original order. Same seed, same rows: base and tuned models see the same items.
"""

from __future__ import annotations

import random
from typing import Any, Sequence

STRATA_FIELDS = ("subject", "topic", "category", "cluster", "label")


def stratum_of(row: Any, fields: Sequence[str] = STRATA_FIELDS) -> Any:
    """The first stratum field a row has (None when it has none)."""
    if not isinstance(row, dict):
        return None
    for key in fields:
        value = row.get(key)
        if value is not None and not isinstance(value, (list, dict)):
            return value
    return None


def sample_indices(n: int, k: int, *, seed: int, strata: Sequence[Any] | None = None) -> list[int]:
    """``min(k, n)`` indices of ``range(n)``, sorted, drawn with ``seed``; with ``strata`` (one value
    per row, None = none), each stratum gets its proportional share (largest remainder)."""
    if k >= n:
        return list(range(n))
    rng = random.Random(seed)
    if not strata or all(s is None for s in strata):
        return sorted(rng.sample(range(n), k))
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(strata):
        groups.setdefault(repr(s), []).append(i)
    keys = sorted(groups)
    exact = {g: k * len(groups[g]) / n for g in keys}
    take = {g: int(exact[g]) for g in keys}
    rest = k - sum(take.values())
    for g in sorted(keys, key=lambda g: (-(exact[g] - take[g]), g))[:rest]:
        take[g] += 1
    chosen: list[int] = []
    for g in keys:
        chosen.extend(rng.sample(groups[g], take[g]))
    return sorted(chosen)


def sample_rows(rows: list, k: int | None, *, seed: int, fields: Sequence[str] = STRATA_FIELDS) -> list:
    """``rows`` cut to ``k`` with :func:`sample_indices` (stratified by the first of ``fields`` present)."""
    if not k or len(rows) <= int(k):
        return list(rows)
    idx = sample_indices(len(rows), int(k), seed=seed, strata=[stratum_of(r, fields) for r in rows])
    return [rows[i] for i in idx]
