"""``classification``: accuracy, macro-F1 and a confusion matrix on labelled texts.

A sequence-classification model predicts directly; a causal LM picks the label whose text is most
likely after the prompt (so base and tuned causal models can be compared too)."""

from __future__ import annotations

from typing import Any

from ..api import EvalResult
from ..sampling import sample_rows
from . import metrics as M
from .base import BY_CLUSTER, LIMIT, BaseEvaluator, by_cluster, empty_result, run_seed, strict_options


class ClassificationEvaluator(BaseEvaluator):
    name = "classification"
    doc = "Accuracy, macro-F1 and confusion matrix on labelled texts."
    option_schema = strict_options({
        "path": {"type": "string", "x-sftkit-path": True, "description": "JSONL of labelled texts (default: the eval split)."},
        "items": {"type": "array", "items": {"type": "object"}},
        "text_field": {"type": "string", "default": "text"},
        "label_field": {"type": "string", "default": "label"},
        "labels": {"type": "array", "items": {"type": "string"}, "description": "Label set (default: the model's, or those in the data)."},
        "instruction": {"type": "string", "description": "For causal LMs: prompt with {labels} and {text}; the most likely label wins."},
        "chat": {"type": "boolean", "default": True, "description": "For causal LMs: render the instruction with the chat template."},
        "limit": LIMIT, "by_cluster": BY_CLUSTER,
        "samples": {"type": "integer", "minimum": 0, "default": 10},
    })
    primary = "accuracy"
    higher_is_better = True

    def rows(self, run: Any) -> list[dict]:
        text_f, label_f = self.opt("text_field", "text"), self.opt("label_field", "label")
        raw = self.source_records(run)
        rows = [{"text": str(r[text_f]), "label": str(r[label_f]), "cluster": r.get("cluster")}
                for r in raw if text_f in r and label_f in r and r[label_f] is not None]
        return sample_rows(rows, self.opt("limit"), seed=run_seed(run), fields=("label", "cluster"))

    def labels(self, target: Any, rows: list[dict]) -> list[str]:
        if self.opt("labels"):
            return [str(label) for label in self.opt("labels")]
        id2label = getattr(getattr(target.model, "config", None), "id2label", None) or {}
        if target.is_classifier and id2label:
            return [str(id2label[k]) for k in sorted(id2label, key=lambda k: int(k))]
        return sorted({r["label"] for r in rows})

    def predict(self, target: Any, texts: list[str], labels: list[str]) -> list[str]:
        if target.is_classifier:
            return target.classify(texts)
        instruction = self.opt("instruction", "Classify the text as one of: {labels}.\n\nText: {text}\nLabel:")
        requests = []
        for text in texts:
            content = instruction.format(labels=", ".join(labels), text=text)
            ctx = target.render([{"role": "user", "content": content}]) if self.opt("chat", True) else content
            requests.extend((ctx, (" " if not self.opt("chat", True) else "") + label) for label in labels)
        lls = target.loglikelihood(requests)
        preds = []
        for i in range(len(texts)):
            scores = lls[i * len(labels):(i + 1) * len(labels)]
            preds.append(labels[max(range(len(labels)), key=lambda j: scores[j])])
        return preds

    def evaluate(self, target: Any, run: Any) -> EvalResult:
        rows = self.rows(run)
        if not rows:
            return empty_result(self, "no labelled rows (classification eval split empty, or text/label fields missing)")
        labels = self.labels(target, rows)
        gold = [r["label"] for r in rows]
        preds = self.predict(target, [r["text"] for r in rows], labels)
        metrics = {"accuracy": M.accuracy(preds, gold), "macro_f1": M.macro_f1(preds, gold, labels), "n": len(rows)}
        if self.opt("by_cluster", False):
            metrics.update(by_cluster("accuracy", [float(p == g) for p, g in zip(preds, gold)], [r["cluster"] for r in rows]))
        samples = [{"prompt": r["text"], "output": p, "expected": r["label"], "score": float(p == r["label"])}
                   for r, p in list(zip(rows, preds))[: int(self.opt("samples", 10))]]
        items = [{"score": float(p == r["label"]), "answer": p, "expected": r["label"], "options": len(labels),
                  "prompt": r["text"], "cluster": r.get("cluster")} for r, p in zip(rows, preds)]
        return EvalResult(metrics=metrics, primary="accuracy", samples=samples, items=items,
                          details={"confusion_matrix": M.confusion_matrix(preds, gold, labels)})
