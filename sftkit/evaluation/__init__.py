"""Evaluation: run a recipe's [[eval]] tables on the base and the tuned model, compare, apply gates.

What the run pipeline calls::

    from sftkit.evaluation import Target, evaluate_all, compare, gate_failures
    base = evaluate_all(run, Target(base_model, tokenizer, formatter, "base"))
    tuned = evaluate_all(run, Target(tuned_model, tokenizer, formatter, "tuned"))
    rows = compare(run, base, tuned)            # -> metrics.json "eval"
    failures = gate_failures(rows)              # -> metrics.json "gates"

Nothing heavy is imported here (these names are imported on first use); torch is imported inside
:class:`Target`'s methods.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .gates import gate_failures
    from .runner import compare, eval_specs, evaluate_all, jsonable, run_evaluation
    from .target import Target

# imported on first use, so registering the evaluators (their modules live here) stays light
_WHERE = {"gate_failures": "gates", "compare": "runner", "eval_specs": "runner", "evaluate_all": "runner",
          "jsonable": "runner", "run_evaluation": "runner", "Target": "target"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["Target", "evaluate_all", "compare", "gate_failures", "run_evaluation", "eval_specs", "jsonable"]
