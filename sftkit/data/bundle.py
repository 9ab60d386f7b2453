"""What the data stage hands to the next stages: canonical rows per split, plus statistics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class DataBundle:
    """Canonical records (``datasets.Dataset``) of one kind (see :mod:`sftkit.api`), split in train/eval.

    ``stats``: ``{"kind", "sources": {name: {"rows", "train", "eval", "format", "skipped"}},
    "dropped": {reason: n}, "duplicates": n, "leakage": {"exact": n, "examples": [...]},
    "skipped": {reason: n}, "train_rows": n, "eval_rows": n, "files": [paths]}``.
    """

    kind: str
    train: Any
    eval: Any | None
    stats: dict = field(default_factory=dict)


@dataclass
class TokenizedBundle:
    """Token ids and labels (``IGNORE_INDEX`` where untrained) per split, plus token statistics.

    Datasets carry the canonical columns plus ``input_ids``, ``labels`` and ``length``.
    ``stats`` is the :class:`DataBundle` statistics plus ``truncated``, ``dropped`` (by reason),
    ``trained_tokens``, ``total_tokens``, ``no_trained_rows``, ``length_histogram`` for the train
    split, and the same keys under ``stats["eval_tokens"]`` for the eval split.
    """

    train: Any
    eval: Any | None
    stats: dict = field(default_factory=dict)
    kind: str = "messages"
