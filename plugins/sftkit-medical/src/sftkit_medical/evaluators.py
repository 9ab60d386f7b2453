"""``medical_mmlu``: accuracy on held-out medical MMLU questions, multiple choice by log-likelihood.

Reuses sftkit's built-in multiple-choice machinery (:mod:`sftkit.evaluation.choice`): each question
is scored as lm-evaluation-harness scores MMLU, the prompt ending in ``Answer:`` and the model's
log-likelihood of `` A``..`` D`` deciding (no generation, so base and tuned models are compared on
equal terms). This plugin chooses the questions (the held-out medical ones, balanced over topics)
and scores the four letters of a question from one forward pass.
"""

from __future__ import annotations

from sftkit.evaluation.choice import MultipleChoiceEvaluator, normalize_item

from .mmlu import MEDICAL_TOPICS, balanced, load_items
from .scoring import SharedContextTarget

PREAMBLE = "The following are multiple choice questions (with answers) about {subject}.\n\n"


class MedicalMMLU(MultipleChoiceEvaluator):
    """The evaluator object sftkit calls with ``evaluate(target, run)``."""

    name = "medical_mmlu"

    def __init__(self, options: dict | None = None):
        options = dict(options or {})
        self.topics = options.pop("topics", None) or list(MEDICAL_TOPICS)
        self.path = options.pop("path", "package://sftkit_medical/mmlu_data/medical.jsonl.gz")
        self.questions = options.pop("questions", "eval")
        self.limit = int(options.pop("limit", 200))
        self.smoke_limit = int(options.pop("smoke_limit", 8))
        super().__init__({"mode": "letters", "preamble": PREAMBLE, "by_subject": True, "samples": 5, **options})
        self.skipped = []

    def items(self, run=None) -> list[dict]:
        """The questions scored: held-out part, balanced over topics, ``limit`` (``smoke_limit`` in --smoke)."""
        from sftkit.paths import resolve_path

        rows = load_items(resolve_path(self.path, getattr(run, "base_dir", None)), self.topics, self.questions)
        limit = min(self.limit, self.smoke_limit) if getattr(run, "smoke", False) else self.limit
        chosen = balanced(rows, limit)
        return [normalize_item({"question": r["question"], "choices": r["choices"], "answer": r["answer"],
                                "topic": r["topic"]}, i) for i, r in enumerate(chosen)]

    def evaluate(self, target, run=None):
        """sftkit's multiple-choice scoring, with one forward pass per question (see :mod:`.scoring`)."""
        return super().evaluate(SharedContextTarget(target), run)
