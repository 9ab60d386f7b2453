"""The items an evaluator scored, kept in each ``metrics.json`` row (``row["items"]``) so that two
finished runs can be compared item by item (``sftkit compare``) without running a model again.

``record(items)`` is ``{"digest", "n", "scale", "items"}``: the per-item records the verdict is
built from (score, weight, answer, expected, prompt; long texts cut), and a content hash of what
each item *is* (prompt, text, expected, options, cluster — never the score or the answer), so that
two runs scored on different items are told apart. Items that name their row by index (loss-type
evaluators) add the eval split's content to the hash.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

IDENTITY = ("prompt", "text", "expected", "options", "cluster")
KEPT = ("prompt", "expected", "answer", "score", "weight", "options", "cluster")
TEXT_LIMIT = 500


def split_digest(split) -> str | None:
    """The content hash of a ``datasets`` split's own rows, in order (None for no split): each row
    as canonical JSON, so the same rows give the same digest wherever the data and its Arrow cache
    live (the Arrow bytes of a slice differ with the table it came from)."""
    if split is None:
        return None
    h = hashlib.sha256()
    rows = split.with_format("arrow")  # the split's own rows (``.data`` would be the table it was selected from)
    for start in range(0, len(split), 1024):
        for row in rows[start:start + 1024].to_pylist():
            h.update(json.dumps(row, sort_keys=True, default=str, separators=(",", ":")).encode())
            h.update(b"\n")
    return h.hexdigest()


def digest(items: list[dict], split: str | None = None) -> str:
    """What the items are (in order), by content; ``split``: the eval split's digest for indexed items."""
    ids = [{k: item[k] for k in IDENTITY if k in item} for item in items]
    blob = json.dumps({"items": ids, "split": split}, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def _cut(value: Any) -> Any:
    return value[:TEXT_LIMIT] if isinstance(value, str) else value


def record(items: list[dict], *, scale: str | None = None, eval_split: Any = None) -> dict | None:
    """The row's ``items`` entry (None without items); ``eval_split`` is hashed only when the items
    name their rows by index rather than by text."""
    if not items:
        return None
    indexed = any(not isinstance(i.get("prompt", i.get("text")), str) for i in items)
    split = split_digest(eval_split) if indexed and eval_split is not None else None
    return {"digest": digest(items, split), "n": len(items), "scale": scale,
            "items": [{k: _cut(i[k]) for k in KEPT if k in i} for i in items]}
