"""Gates: ``min``, ``max`` and ``max_regression`` on an evaluator's primary metric (any evaluator).

With ``gate_on = "lower_bound"`` the thresholds apply to the 95% interval instead of the point
value: ``min`` to its lower bound, ``max`` to its upper bound (a gate that passes on luck fails).

A gate on the metric needs evidence: when the row's verdict found too little
(``row["evidence"]["shortfall"]``: fewer than :data:`~sftkit.evaluation.verdict.MIN_EVIDENCE_ITEMS`
items, or a degenerate interval) the gate is not decided, and an undecided gate fails with that
reason, never passes. ``max_contamination`` counts items in the training data (a fact, not an
estimate) and is checked whatever n is."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import EvalEntry

GATE_KEYS = ("min", "max", "max_regression")


def _fmt(x: Any) -> str:
    return f"{x:.4g}" if isinstance(x, (int, float)) and not isinstance(x, bool) else str(x)


def gates_metric(table: EvalEntry, evaluator: Any = None) -> bool:
    """Whether the ``[[eval]]`` slice gates on the evaluator's metric (``min``, ``max``,
    ``max_regression`` or one of the evaluator's own ``gate_options``)."""
    own = getattr(evaluator, "gate_options", ()) if evaluator is not None else ()
    return any(getattr(table, k) is not None for k in GATE_KEYS) or any(table.options.get(k) is not None for k in own)


def check_gate(row: dict, table: EvalEntry, evaluator: Any = None) -> dict:
    """The row's ``gate`` entry: thresholds from the ``[[eval]]`` slice, ``passed`` and failure messages."""
    gate = {k: getattr(table, k) for k in GATE_KEYS}
    failures: list[str] = []
    notes: list[str] = []
    name = f"{row['label']}.{row['primary']}"
    value, base = row.get("tuned"), row.get("base")
    has_threshold = any(gate[k] is not None for k in GATE_KEYS) or table.max_contamination is not None
    own = getattr(evaluator, "gate_options", ()) if evaluator is not None else ()
    on_metric = gates_metric(table, evaluator)
    short = (row.get("evidence") or {}).get("shortfall")
    if has_threshold and value is None:
        why = (row.get("errors") or {}).get("tuned") or "no value"
        failures.append(f"gate failed: {name} could not be computed ({why})")
    elif on_metric and short:
        failures.append(f"gate {name} not decided: {short}")
    elif value is not None:
        low = high = value
        what = ""
        if table.gate_on == "lower_bound":
            gate["gate_on"] = "lower_bound"
            iv = ((row.get("stats") or {}).get("tuned") or {})
            low, high = iv.get("low"), iv.get("high")
            what = " (95% interval bound)"
            if (low is None or high is None) and (gate["min"] is not None or gate["max"] is not None):
                failures.append(f"gate failed: {name}: gate_on = \"lower_bound\" but the evaluator gave no per-item "
                                "scores to compute an interval from")
                low = high = None
        if gate["min"] is not None and low is not None and low < gate["min"]:
            failures.append(f"gate failed: {name} = {_fmt(low)}{what} < min {_fmt(gate['min'])}")
        if gate["max"] is not None and high is not None and high > gate["max"]:
            failures.append(f"gate failed: {name} = {_fmt(high)}{what} > max {_fmt(gate['max'])}")
        limit = gate["max_regression"]
        if limit is not None:
            direction = row.get("higher_is_better")
            if base is None:
                notes.append(f"max_regression not checked for {name}: no base model result")
            elif direction is None:
                notes.append(f"max_regression not checked for {name}: the metric has no better direction")
            else:
                regression = (base - value) if direction else (value - base)
                if regression > limit:
                    failures.append(f"gate failed: {name} regressed by {_fmt(regression)} ({_fmt(base)} -> "
                                    f"{_fmt(value)}) > max_regression {_fmt(limit)}")
    limit = table.max_contamination
    if limit is not None:
        gate["max_contamination"] = limit
        found = row.get("contamination")
        if found is None:
            notes.append(f"max_contamination not checked for {row['label']}: no training rows or items to compare")
        elif found["share"] > limit:
            failures.append(f"gate failed: {row['label']}: {found['exact'] + found['ngram']} of {found['n']} items "
                            f"({found['share']:.1%}) appear in the training data > max_contamination {_fmt(limit)}")
    if evaluator is not None and hasattr(evaluator, "gate_failures") and not (on_metric and short):
        try:
            failures.extend(evaluator.gate_failures(row))
        except Exception as exc:  # an evaluator's own gate must not break the report
            failures.append(f"gate failed: {name}: evaluator gate raised {type(exc).__name__}: {exc}")
    gate["passed"] = not failures
    gate["defined"] = bool(has_threshold or failures or any(table.options.get(k) is not None for k in own))
    gate["failures"] = failures
    gate["message"] = "; ".join(failures) if failures else None
    if notes:
        gate["notes"] = notes
    return gate


def gate_failures(rows: list[dict]) -> list[str]:
    """Every violated gate's message, e.g. ``gate failed: json_valid.valid_rate = 0.42 < min 0.9``."""
    out: list[str] = []
    for row in rows:
        gate = row.get("gate") or {}
        if gate.get("failures"):
            out.extend(gate["failures"])
        elif gate.get("passed") is False and gate.get("message"):
            out.append(gate["message"])
    return out
