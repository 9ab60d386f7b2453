"""``tokenize_bundle``: format and tokenize canonical rows with a Formatter, in one batched pass.

Kinds messages and text are encoded as they are; preference rows are viewed as prompt + chosen,
labeled rows as prompt + completion, classification rows as their text (so previews and token
statistics work for every kind; strategies that need more encode those kinds themselves).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os

from ..api import IGNORE_INDEX
from ..errors import DataError
from .bundle import DataBundle, TokenizedBundle
from .stats import token_stats

TOKENIZER_VERSION = "1"
AUTO_NUM_PROC_ROWS = 50_000
# No token spans more characters than this, so a text cut at max_length * CHARS_PER_TOKEN characters
# still yields more than max_length tokens: the kept tokens (and a "drop" decision) are unchanged,
# and memory per row is bounded by max_length, not by the row (a 50 MB row would need GBs).
CHARS_PER_TOKEN = 128


def _cap(text, limit: int | None):
    return text[:limit] if limit and isinstance(text, str) and len(text) > limit else text


def _cap_messages(messages, limit: int | None):
    if not limit or not isinstance(messages, list):
        return messages
    return [{**m, "content": _cap(m.get("content"), limit)} if isinstance(m, dict) else m for m in messages]


def _messages_view(row: dict, kind: str) -> list[dict] | None:
    if kind == "messages":
        return row["messages"]
    if kind == "preference":
        return list(row["prompt"]) + [{"role": "assistant", "content": row["chosen"]}]
    if kind == "labeled":
        return list(row["prompt"]) + [{"role": "assistant", "content": row["completion"]}]
    return None


class Encoder:
    """The ``Dataset.map(batched=True)`` function: rows -> input_ids, labels, length (+ stats columns)."""

    def __init__(self, formatter, kind: str, max_length: int | None, truncation: str):
        self.formatter, self.kind = formatter, kind
        self.max_length, self.truncation = max_length, truncation
        self.cap = int(max_length) * CHARS_PER_TOKEN if max_length else None

    def _encode_all(self, batch: dict, n: int) -> list[dict]:
        f = self.formatter
        if self.kind in ("text", "classification"):
            texts = [_cap(t, self.cap) for t in batch["text"]]
            many = getattr(f, "encode_text_batch", None)
            return many(texts) if many else [f.encode_text(t) for t in texts]
        keys = list(batch)
        convs = [_cap_messages(_messages_view({k: batch[k][i] for k in keys}, self.kind), self.cap)
                 for i in range(n)]
        many = getattr(f, "encode_messages_batch", None)
        if many is not None:
            try:
                return many(convs, errors="return")
            except TypeError:  # a formatter whose batch method has no errors= option
                return many(convs)
        out = []
        for m in convs:
            try:
                out.append(f.encode_messages(m))
            except DataError as exc:
                out.append({"input_ids": [], "labels": [], "error": str(exc)})
        return out

    def __call__(self, batch: dict) -> dict:
        n = len(next(iter(batch.values())))
        encoded = self._encode_all(batch, n)
        ids_out, labels_out, length, orig, trained, errors = [], [], [], [], [], []
        cut = self.max_length if (self.max_length and self.truncation == "truncate") else None
        for enc in encoded:
            ids, labels = enc["input_ids"], enc["labels"]
            errors.append(enc.get("error") or "")
            orig.append(len(ids))
            if cut is not None and len(ids) > cut:
                ids, labels = ids[:cut], labels[:cut]
            ids_out.append(ids)
            labels_out.append(labels)
            length.append(len(ids))
            trained.append(sum(1 for x in labels if x != IGNORE_INDEX))
        return {"input_ids": ids_out, "labels": labels_out, "length": length, "_orig_len": orig,
                "_trained": trained, "_error": errors}


def _fingerprint(ds, formatter, kind: str, max_length, truncation: str) -> str | None:
    base = getattr(ds, "_fingerprint", None)
    if not base:
        return None
    tok = getattr(formatter, "tokenizer", None)
    tok_id = None
    if tok is not None:
        backend = getattr(tok, "backend_tokenizer", None)
        tok_id = [getattr(tok, "name_or_path", ""), len(tok)]
        if backend is not None:
            tok_id.append(hashlib.sha256(backend.to_str().encode()).hexdigest())
    simple = {k: v for k, v in sorted(vars(formatter).items())
              if isinstance(v, (str, int, float, bool, type(None)))} if hasattr(formatter, "__dict__") else {}
    ident = getattr(formatter, "fingerprint", None) or [type(formatter).__module__, type(formatter).__qualname__,
                                                       getattr(formatter, "chat_template", None), simple, tok_id]
    from .arrowcache import code_version

    code = code_version(formatter, Encoder)
    text = json.dumps([TOKENIZER_VERSION, code, base, kind, max_length, truncation, ident], default=str, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _auto_num_proc(n_rows: int) -> int | None:
    # the fast tokenizer already encodes a batch on every core; worker processes pay off from 4 cores
    cpus = os.cpu_count() or 1
    if n_rows >= AUTO_NUM_PROC_ROWS and cpus >= 4:
        return min(cpus // 2, 8)
    return None


def tokenize_split(ds, formatter, kind: str, *, max_length: int | None, truncation: str = "truncate",
                   min_trained_tokens: int = 1, num_proc: int | None = None):
    """Tokenize one split; returns ``(dataset, stats)`` with too-long / untrained rows dropped."""
    import numpy as np
    from datasets import Features, List, Value

    if truncation not in ("truncate", "drop", "none"):
        raise DataError(f"truncation must be truncate, drop or none, got {truncation!r}", where="[dataset]")
    features = Features({**ds.features, "input_ids": List(Value("int32")), "labels": List(Value("int32")),
                         "length": Value("int32"), "_orig_len": Value("int32"), "_trained": Value("int32"),
                         "_error": Value("string")})
    fn = Encoder(formatter, kind, max_length, truncation)
    kwargs = dict(batched=True, batch_size=500, features=features, desc="Tokenizing",
                  new_fingerprint=_fingerprint(ds, formatter, kind, max_length, truncation))
    if num_proc is None:
        num_proc = _auto_num_proc(len(ds))
    try:
        out = ds.map(fn, num_proc=num_proc, **kwargs) if num_proc and num_proc > 1 else ds.map(fn, **kwargs)
    except (TypeError, AttributeError, RuntimeError) as exc:  # formatter not picklable for worker processes
        if not (num_proc and num_proc > 1) or "pickle" not in str(exc).lower():
            raise
        out = ds.map(fn, **kwargs)
    if out._indices is not None:  # map output is a fresh table; be safe if a plugin dataset is not
        out = out.flatten_indices()
    orig = out.data.column("_orig_len").to_numpy().astype(np.int64)
    trained = out.data.column("_trained").to_numpy().astype(np.int64)
    keep = np.ones(len(orig), dtype=bool)
    dropped: dict = {}
    import pyarrow.compute as pc

    err_col = out.data.column("_error")
    bad = pc.not_equal(err_col, "").to_numpy(zero_copy_only=False)
    template_errors = []
    if bad.any():
        dropped["template_error"] = int(bad.sum())
        keep &= ~bad
        first = int(np.flatnonzero(bad)[0])
        template_errors.append(f"{out[first].get('source')} row: {err_col[first].as_py()}")
    if max_length and truncation == "drop":
        too_long = orig > max_length
        if too_long.any():
            dropped["too_long"] = int(too_long.sum())
        keep &= ~too_long
    few = (trained < max(min_trained_tokens, 0)) & keep
    if min_trained_tokens > 0 and few.any():
        dropped["no_trained_tokens"] = int(few.sum())
        keep &= ~few
    stats = token_stats(orig, trained, keep, max_length=max_length, truncation=truncation, dropped=dropped)
    if template_errors:
        stats["template_errors"] = template_errors
    if not keep.all():
        out = out.select(np.flatnonzero(keep))
    out = out.remove_columns(["_orig_len", "_trained", "_error"])
    return out, stats


def tokenize_bundle(bundle: DataBundle, formatter, *, max_length: int | None, truncation: str = "truncate",
                    min_trained_tokens: int = 1, num_proc: int | None = None) -> TokenizedBundle:
    """Encode every row with ``formatter`` (already ``setup`` with its tokenizer).

    Rows longer than ``max_length`` are truncated (``truncation="truncate"``) or dropped
    (``"drop"``); ``"none"`` keeps them whole (packing strategies). Rows with fewer than
    ``min_trained_tokens`` trained tokens are dropped. Raises :class:`DataError` when no train row
    is left, naming why.
    """
    train, tstats = tokenize_split(bundle.train, formatter, bundle.kind, max_length=max_length,
                                   truncation=truncation, min_trained_tokens=min_trained_tokens, num_proc=num_proc)
    evals, estats = None, None
    if bundle.eval is not None and len(bundle.eval):
        evals, estats = tokenize_split(bundle.eval, formatter, bundle.kind, max_length=max_length,
                                       truncation=truncation, min_trained_tokens=min_trained_tokens,
                                       num_proc=num_proc)
    stats = copy.deepcopy(bundle.stats)
    dropped = dict(stats.get("dropped") or {})
    for reason, n in tstats["dropped"].items():
        dropped[reason] = dropped.get(reason, 0) + n
    stats.update({k: v for k, v in tstats.items() if k != "dropped"})
    stats["dropped"] = dropped
    stats["train_rows"] = len(train)
    if estats is not None:
        stats["eval_tokens"] = estats
        stats["eval_rows"] = len(evals)
    if len(train) == 0:
        why = ", ".join(f"{r}: {n}" for r, n in tstats["dropped"].items())
        fixes = []
        if "too_long" in tstats["dropped"]:
            fixes.append('raise training.max_length or set [dataset] truncation = "truncate"')
        if "template_error" in tstats["dropped"]:
            fixes.append(f"the template cannot render the rows ({tstats['template_errors'][0]})")
        if "no_trained_tokens" in tstats["dropped"] and tstats["truncated"]:
            fixes.append("raise training.max_length: truncation cut off the trained answers")
        elif "no_trained_tokens" in tstats["dropped"]:
            fixes.append("check the template masks assistant turns, or lower [dataset] min_trained_tokens")
        raise DataError(f"no train rows left after tokenizing (dropped {why}; max_length {max_length})",
                        hint="; ".join(fixes) or None)
    return TokenizedBundle(train=train, eval=evals, stats=stats, kind=bundle.kind)
