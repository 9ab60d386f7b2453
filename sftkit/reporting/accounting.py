"""Where the rows went, and whether a run can mean anything at all.

:func:`row_accounting` turns the loader's and the tokenizer's statistics into one honest count for
``metrics.json`` (rows read, rows trained on, rows dropped by reason, the share dropped);
:func:`check_inputs` stops a run before training when its evaluation cannot mean anything (an
empty eval split although ``eval_fraction > 0``); :func:`evaluation_errors` names every evaluator
that failed, which makes ``run`` and ``eval`` exit non-zero after writing the report.
"""

from __future__ import annotations

from typing import Any

from ..errors import DataError, SftkitError

EXIT_EVAL_FAILED = 4


class EvaluationFailed(SftkitError):
    """An evaluator errored: the run's metrics and report are written, but they are incomplete."""

    exit_code = EXIT_EVAL_FAILED


def row_accounting(loaded: dict | None, tokenized: dict | None, *, train_rows: int, eval_rows: int) -> dict:
    """``{"rows_read", "train_rows", "eval_rows", "dropped": {reason: n}, "dropped_share"}``.

    ``loaded`` is the loader's statistics (duplicates, skipped invalid rows), ``tokenized`` the
    tokenizer's (too long, no trained tokens, template errors); ``train_rows`` is what the split
    produced, so the rows actually trained on are that minus the tokenizer's drops."""
    loaded, tokenized = loaded or {}, tokenized or {}
    dropped: dict[str, int] = {}

    def add(reason: str, n: Any) -> None:
        if isinstance(n, int) and n > 0:
            dropped[reason] = dropped.get(reason, 0) + n

    for reason, n in (loaded.get("dropped") or {}).items():
        add(str(reason), n)
    skipped = loaded.get("skipped")
    if isinstance(skipped, dict):
        add("invalid", sum(v for v in skipped.values() if isinstance(v, int)))
    elif isinstance(skipped, int):
        add("invalid", skipped)
    trained = train_rows
    if isinstance(tokenized.get("train_rows"), int):
        trained = tokenized["train_rows"]
        for reason, n in (tokenized.get("dropped") or {}).items():
            if reason not in (loaded.get("dropped") or {}):  # the tokenizer's stats repeat the loader's
                add(str(reason), n)
    read = trained + eval_rows + sum(dropped.values())
    return {"rows_read": read, "train_rows": trained, "eval_rows": eval_rows, "dropped": dropped,
            "dropped_share": (sum(dropped.values()) / read) if read else 0.0}


def check_inputs(dataset, bundle: Any) -> None:
    """Raise :class:`DataError` when the evaluation cannot mean anything: ``eval_fraction > 0`` (or
    held-out clusters) but the eval split is empty, while an [[eval]] table needs it. ``dataset``:
    the ``[dataset]`` slice (:class:`sftkit.config.Dataset`)."""
    ds = dataset
    wants_eval = float(ds.eval_fraction or 0) > 0 or bool(ds.holdout_clusters)
    n_eval = len(bundle.eval) if getattr(bundle, "eval", None) is not None else 0
    if wants_eval and n_eval == 0:
        stats = getattr(bundle, "stats", None) or {}
        dup = stats.get("duplicates") or 0
        why = f" ({dup} duplicate rows were removed)" if dup else ""
        raise DataError(f"the eval split is empty although [dataset] eval_fraction = {ds.eval_fraction}"
                        f"{why}: {len(bundle.train)} train row(s) leave nothing to evaluate on",
                        where="[dataset] eval_fraction",
                        hint="add more distinct rows, raise eval_fraction, or add a [[data]] entry with split = \"eval\"")


def evaluation_errors(rows: list[dict]) -> list[str]:
    """``evaluator LABEL failed on the tuned model: why`` for every evaluator result that errored,
    also under a prompt-only baseline (``[[baseline]]``): a verdict that skipped one is incomplete."""
    out = []
    for row in rows or []:
        for side, why in (row.get("errors") or {}).items():
            if why:
                out.append(f"evaluator {row.get('label')} failed on the {side} model: {why}")
        for label, entry in (row.get("prompt_baselines") or {}).items():
            if isinstance(entry, dict) and entry.get("error"):
                out.append(f"evaluator {row.get('label')} failed under prompt-only baseline {label}: {entry['error']}")
    return out
