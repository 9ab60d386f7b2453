"""Built-in evaluators (a plugin like any other): this module only lists them.

Each evaluator declares what is registered beside its code, on its class: options (``schema``),
``doc``, ``check`` and the bounds of its metric (``bounds``, registered as ``range``); the direction
of its metric is its ``higher_is_better``, read by the run. Every evaluator runs on the base and the
tuned model with the same template; ``min``, ``max`` and ``max_regression`` gates are handled by
sftkit for all of them. Registering imports the evaluator modules, which import nothing heavy.
"""

from __future__ import annotations

from sftkit import hookimpl

EVALUATORS = tuple(f"sftkit.evaluation.{address}" for address in (
    "likelihood:LossEvaluator",
    "generation:SamplesEvaluator",
    "generation:ExactMatchEvaluator",
    "generation:ContainsEvaluator",
    "generation:RegexEvaluator",
    "generation:NumericAnswerEvaluator",
    "generation:JsonValidEvaluator",
    "choice:MultipleChoiceEvaluator",
    "classify:ClassificationEvaluator",
    "code:CodeExecEvaluator",
    "likelihood:ForgettingEvaluator",
    "abstention:AbstentionEvaluator",
    "preference:PreferenceEvaluator",
    "judge:JudgeEvaluator",
))


@hookimpl
def sftkit_register_evaluators(register):
    from sftkit.evaluation.base import registration
    from sftkit.registry import import_object

    for address in EVALUATORS:
        cls = import_object(address)
        register(cls.name, address, **registration(cls))
