"""Decide which rows go to train and eval: dedupe, held-out clusters, eval fraction, weights, shuffle.

Everything works on row numbers (numpy arrays) of the concatenated converted rows, never on the
rows themselves, so a million-row dataset costs a few megabytes here. Seeded: the same recipe and
data give the same split on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Entry:
    """One ``[[data]]`` entry's rows inside the concatenated table: ``[start, stop)``."""

    name: str
    split: str  # train | eval | auto
    weight: float
    start: int
    stop: int


@dataclass
class Plan:
    train: "object"  # np.ndarray of row numbers
    eval: "object"
    per_entry: dict = field(default_factory=dict)  # name -> {"train": n, "eval": n}
    duplicates: int = 0
    held_out: int = 0
    leaked: "object" = None  # eval row numbers whose prompt is also in train


def _first_occurrences(rows, hashes):
    """Mask over ``rows`` keeping the first row of each distinct hash."""
    import numpy as np

    keep = np.zeros(len(rows), dtype=bool)
    if len(rows):
        _, first = np.unique(hashes[rows], return_index=True)
        keep[first] = True
    return keep


def _resample(rows, target: int, rng):
    """``target`` rows drawn from ``rows``: a seeded subset, or whole repeats plus a seeded remainder."""
    import numpy as np

    n = len(rows)
    if target == n or n == 0:
        return rows
    if target < n:
        return np.sort(rng.choice(rows, size=target, replace=False))
    reps, rem = divmod(target, n)
    extra = np.sort(rng.choice(rows, size=rem, replace=False)) if rem else rows[:0]
    return np.concatenate([rows] * reps + [extra])


def plan_splits(entries: list[Entry], valid, hashes, phashes, held=None, *, eval_fraction: float = 0.0,
                dedupe: bool = True, shuffle: bool = True, seed: int = 42) -> Plan:
    """Return the train and eval row numbers.

    - ``split = "eval"`` entries go to eval; ``held`` (bool per row) moves held-out clusters of the
      other entries to eval; ``split = "auto"`` entries give ``eval_fraction`` of their rows to eval.
    - ``dedupe`` keeps the first of exactly equal rows (within train, and within eval).
    - Weights: when train entries have different weights, each entry is resampled so its share of
      the train rows is proportional to ``weight × rows``; the train size stays the sum of rows.
    - Leakage: eval rows whose prompt (``phashes``) also occurs in train.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    plan = Plan(train=None, eval=None)
    tr_parts, ev_parts = {}, {}
    for e in entries:
        rows = np.arange(e.start, e.stop)[valid[e.start:e.stop]]
        if e.split == "eval":
            tr_parts[e.name], ev_parts[e.name] = rows[:0], rows
            continue
        if held is not None:
            h = held[rows]
            plan.held_out += int(h.sum())
            tr_parts[e.name], ev_parts[e.name] = rows[~h], rows[h]
        else:
            tr_parts[e.name], ev_parts[e.name] = rows, rows[:0]

    if dedupe:
        names = [e.name for e in entries]
        for parts in (tr_parts, ev_parts):
            allrows = np.concatenate([parts[n] for n in names]) if names else np.zeros(0, dtype=np.int64)
            keep = _first_occurrences(allrows, hashes)
            plan.duplicates += int((~keep).sum())
            pos = 0
            for n in names:
                k = len(parts[n])
                parts[n] = parts[n][keep[pos:pos + k]]
                pos += k

    for e in entries:
        if e.split != "auto" or eval_fraction <= 0:
            continue
        rows = tr_parts[e.name]
        k = int(round(len(rows) * eval_fraction))
        if k == 0 and len(rows) >= 2:
            k = 1
        perm = rng.permutation(len(rows))
        ev_parts[e.name] = np.sort(np.concatenate([ev_parts[e.name], rows[perm[:k]]]))
        tr_parts[e.name] = np.sort(rows[perm[k:]])

    train_entries = [e for e in entries if len(tr_parts[e.name])]
    weights = {e.weight for e in train_entries}
    if len(train_entries) > 1 and len(weights) > 1:
        total = sum(len(tr_parts[e.name]) for e in train_entries)
        denom = sum(e.weight * len(tr_parts[e.name]) for e in train_entries)
        for e in train_entries:
            target = int(round(total * e.weight * len(tr_parts[e.name]) / denom))
            tr_parts[e.name] = _resample(tr_parts[e.name], max(target, 1), rng)

    empty = np.zeros(0, dtype=np.int64)
    train = np.concatenate([tr_parts[e.name] for e in entries]) if entries else empty
    evals = np.concatenate([ev_parts[e.name] for e in entries]) if entries else empty
    if shuffle and len(train):
        train = train[rng.permutation(len(train))]
    plan.train, plan.eval = train.astype(np.int64), evals.astype(np.int64)
    plan.per_entry = {e.name: {"train": int(len(tr_parts[e.name])), "eval": int(len(ev_parts[e.name]))}
                      for e in entries}
    if len(evals) and len(train):
        plan.leaked = evals[np.isin(phashes[evals], phashes[train])]
    else:
        plan.leaked = empty
    return plan
