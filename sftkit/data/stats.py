"""Token statistics of a tokenized split, and their plain-text rendering for ``sftkit preview``."""

from __future__ import annotations

HIST_BINS = 8


def length_histogram(lengths, max_length: int | None, bins: int = HIST_BINS) -> list[dict]:
    """Counts of token lengths in ``bins`` equal bins up to ``max_length`` plus one bin above it."""
    import numpy as np

    lengths = np.asarray(lengths, dtype=np.int64)
    seen = int(lengths.max()) if len(lengths) else 1
    top = int(max_length) if max_length else seen
    if seen < top / 2:  # short rows: spread the bins over what is there, not over max_length
        top = -(-seen // bins) * bins
    top = max(top, bins)
    edges = np.unique(np.linspace(0, top, bins + 1).round().astype(np.int64))
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        first = lo + 1 if lo else 0
        n = int(((lengths >= first) & (lengths <= hi)).sum())
        out.append({"lo": int(first), "hi": int(hi), "count": n})
    limit = int(max_length) if max_length else top
    out.append({"lo": limit + 1, "hi": None, "count": int((lengths > limit).sum())})
    return out


def token_stats(orig_len, trained, kept_mask, *, max_length, truncation: str, dropped: dict) -> dict:
    """Summary of one tokenized split (arrays over all rows before dropping)."""
    import numpy as np

    orig_len = np.asarray(orig_len)
    trained = np.asarray(trained)
    final_len = np.minimum(orig_len, max_length) if (max_length and truncation == "truncate") else orig_len
    kept = np.asarray(kept_mask, dtype=bool)
    total = int(final_len[kept].sum())
    trained_tokens = int(trained[kept].sum())
    return {
        "rows": int(kept.sum()),
        "max_length": max_length,
        "truncated": int((orig_len > max_length).sum()) if (max_length and truncation == "truncate") else 0,
        "dropped": dropped,
        "trained_tokens": trained_tokens,
        "total_tokens": total,
        "trained_share": round(trained_tokens / total, 4) if total else 0.0,
        "no_trained_rows": int((trained == 0).sum()),
        "mean_length": round(float(final_len[kept].mean()), 1) if kept.any() else 0.0,
        "max_length_seen": int(orig_len.max()) if len(orig_len) else 0,
        "length_histogram": length_histogram(orig_len, max_length),
    }


def _bar(n: int, most: int, width: int = 30) -> str:
    return "█" * (round(width * n / most) if most else 0)


def format_histogram(hist: list[dict], max_length: int | None) -> list[str]:
    most = max((b["count"] for b in hist), default=0)
    lines = []
    for b in hist:
        label = f"{b['lo']}-{b['hi']}" if b["hi"] is not None else f">{max_length or b['lo'] - 1}"
        lines.append(f"  {label:>13} {b['count']:>9,} {_bar(b['count'], most)}")
    return lines


def format_stats(stats: dict, split: str = "train") -> str:
    """The statistics block of ``sftkit preview`` (plain text)."""
    lines = [f"Data: kind {stats.get('kind')}, train {stats.get('train_rows', 0):,} rows, "
             f"eval {stats.get('eval_rows', 0):,} rows"]
    lines.append("Rows per source:")
    for name, s in (stats.get("sources") or {}).items():
        lines.append(f"  {name} [{s.get('format')}, split {s.get('split')}]: {s.get('rows', 0):,} usable of "
                     f"{s.get('read', 0):,} read -> train {s.get('train', 0):,}, eval {s.get('eval', 0):,}")
    skipped = stats.get("skipped") or {}
    lines.append("Skipped bad rows: " + (", ".join(f"{r}: {n:,}" for r, n in skipped.items()) or "none"))
    dropped = stats.get("dropped") or {}
    lines.append("Dropped rows: " + (", ".join(f"{r}: {n:,}" for r, n in dropped.items()) or "none"))
    lines.append(f"Duplicates removed: {stats.get('duplicates', 0):,}")
    held = stats.get("held_out")
    if held:
        lines.append(f"Held-out clusters ({', '.join(held['clusters'])}): {held['rows']:,} rows moved to eval")
    leak = stats.get("leakage") or {}
    lines.append(f"Leakage (eval prompts also in train): {leak.get('exact', 0):,}")
    for ex in leak.get("examples", [])[:3]:
        lines.append(f"  e.g. {ex[:100]!r}")
    tok = stats if split == "train" else (stats.get("eval_tokens") or {})
    if "total_tokens" in tok:
        ml = tok.get("max_length")
        lines.append(f"Tokens ({split}, max_length {ml}): {tok['total_tokens']:,} total, "
                     f"{tok['trained_tokens']:,} trained ({100 * tok['trained_share']:.1f}%), "
                     f"mean length {tok['mean_length']}, longest {tok['max_length_seen']:,}")
        lines.append(f"Truncated rows: {tok['truncated']:,}; rows with no trained token: {tok['no_trained_rows']:,}")
        lines.append("Token lengths:")
        lines.extend(format_histogram(tok["length_histogram"], ml))
    return "\n".join(lines)
