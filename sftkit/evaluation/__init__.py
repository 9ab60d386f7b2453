"""Evaluation: run a recipe's [[eval]] tables on the base and the tuned model, compare, apply gates.

What the run pipeline calls::

    from sftkit.evaluation import Target, evaluate_all, compare, gate_failures
    base = evaluate_all(run, Target(base_model, tokenizer, formatter, "base"))
    tuned = evaluate_all(run, Target(tuned_model, tokenizer, formatter, "tuned"))
    rows = compare(run, base, tuned)            # -> metrics.json "eval"
    failures = gate_failures(rows)              # -> metrics.json "gates"

Nothing heavy is imported here; torch is imported inside :class:`Target`'s methods.
"""

from .gates import gate_failures
from .runner import compare, eval_specs, evaluate_all, jsonable, run_evaluation
from .target import Target

__all__ = ["Target", "evaluate_all", "compare", "gate_failures", "run_evaluation", "eval_specs", "jsonable"]
