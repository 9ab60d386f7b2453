"""Contamination: evaluation items that also appear in the training rows.

Every evaluator's items (files, inline items, plugin item sets, the eval split) are compared with
the run's training rows in two ways:

- **exact**: the item's text equals a training text (a user turn, a prompt, a completion or a
  document) after normalisation (lower case, punctuation and whitespace folded);
- **n-gram**: the item's text shares a run of :data:`NGRAM` words with the training data (the
  long-overlap test of GPT-3's and Llama's contamination studies; items shorter than that can only
  match exactly).

The training side is indexed once per run (hashes only). An item's text is its ``text`` field, or
its ``prompt``. ``max_contamination`` (a share of items) makes contamination a gate.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

NGRAM = 13
MAX_TRAIN_ROWS = 200_000
MAX_EXAMPLES = 5

_ROLE = re.compile(r"^(system|user|assistant): ", re.MULTILINE)
_PUNCT = re.compile(r"[^\w\s]", re.UNICODE)


def norm_words(text: Any) -> list[str]:
    """Lower-cased words without punctuation (role prefixes of displayed conversations removed)."""
    text = _ROLE.sub("", str(text or ""))
    return _PUNCT.sub(" ", text.lower()).split()


def _texts_of_row(row: dict) -> Iterable[str]:
    msgs = row.get("messages")
    if isinstance(msgs, list):
        for m in msgs:
            if isinstance(m, dict) and m.get("role") != "system" and m.get("content"):
                yield str(m["content"])
    prompt = row.get("prompt")
    if isinstance(prompt, list):
        for m in prompt:
            if isinstance(m, dict) and m.get("role") != "system" and m.get("content"):
                yield str(m["content"])
    elif prompt:
        yield str(prompt)
    for key in ("completion", "chosen", "rejected", "text"):
        value = row.get(key)
        if isinstance(value, str) and value:
            yield value
        elif isinstance(value, list):
            for m in value:
                if isinstance(m, dict) and m.get("content"):
                    yield str(m["content"])


class TrainIndex:
    """Hashes of the training texts (normalised) and of their word n-grams."""

    def __init__(self, rows: Iterable[dict], n: int = NGRAM):
        self.n = n
        self.exact: set[int] = set()
        self.grams: set[int] = set()
        self.rows = 0
        for i, row in enumerate(rows):
            if i >= MAX_TRAIN_ROWS:
                break
            self.rows += 1
            for text in _texts_of_row(row if isinstance(row, dict) else {}):
                words = norm_words(text)
                if not words:
                    continue
                self.exact.add(hash(" ".join(words)))
                for j in range(len(words) - n + 1):
                    self.grams.add(hash(" ".join(words[j:j + n])))

    def match(self, text: str) -> str | None:
        """"exact", "ngram" or None for one item text."""
        words = norm_words(text)
        if not words:
            return None
        if hash(" ".join(words)) in self.exact:
            return "exact"
        for j in range(len(words) - self.n + 1):
            if hash(" ".join(words[j:j + self.n])) in self.grams:
                return "ngram"
        return None


def train_index(run: Any) -> TrainIndex | None:
    """The run's training rows indexed once (kept on ``run.train_index``); None without training data."""
    index = getattr(run, "train_index", None)
    if index is not None:
        return index
    ds = getattr(getattr(run, "data", None), "train", None)
    index = TrainIndex(iter(ds)) if ds is not None and len(ds) else None
    if index is not None and hasattr(run, "train_index"):
        run.train_index = index
    return index


def check_items(index: TrainIndex | None, items: list[dict]) -> dict | None:
    """``{"n", "exact", "ngram", "share", "examples"}`` for an evaluator's item records."""
    if index is None or not items:
        return None
    exact = ngram = 0
    examples = []
    seen = set()
    for item in items:
        text = item.get("text") if item.get("text") is not None else item.get("prompt")
        if text is None or not isinstance(text, str):
            continue
        key = text
        if key in seen:
            continue
        seen.add(key)
        found = index.match(text)
        if found == "exact":
            exact += 1
        elif found == "ngram":
            ngram += 1
        if found and len(examples) < MAX_EXAMPLES:
            examples.append({"item": text[:200], "match": found})
    n = len(seen)
    if not n:
        return None
    return {"n": n, "exact": exact, "ngram": ngram, "share": (exact + ngram) / n, "examples": examples,
            "ngram_words": index.n}
