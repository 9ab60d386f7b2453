"""``preference``: does the model prefer the chosen answer of held-out preference pairs?

For each pair (prompt, chosen, rejected) the model scores both answers after the prompt (rendered
with the recipe's template); the pair counts as right when the chosen answer is more likely. It
reports ``accuracy`` (share of pairs right) and ``mean_margin`` (mean log-probability of chosen
minus rejected), for the base and the tuned model alike — what DPO / KTO training should move."""

from __future__ import annotations

from typing import Any

from ..api import EvalResult
from ..sampling import sample_rows
from .base import LIMIT, BaseEvaluator, empty_result, prompt_text, run_seed, strict_options


def _messages(prompt: Any) -> list[dict]:
    if isinstance(prompt, list):
        return [dict(m) for m in prompt]
    return [{"role": "user", "content": str(prompt)}]


def _text(answer: Any) -> str:
    if isinstance(answer, list):  # assistant turns
        return "".join(str(m.get("content", "")) for m in answer if isinstance(m, dict))
    return str(answer)


class PreferenceEvaluator(BaseEvaluator):
    name = "preference"
    doc = ("Preference accuracy and mean log-probability margin (chosen vs rejected) on held-out pairs, before "
           "and after.")
    option_schema = strict_options({
        "path": {"type": "string", "x-sftkit-path": True, "description": "JSONL of pairs (prompt, chosen, rejected). Default: the eval split."},
        "items": {"type": "array", "items": {"type": "object"}, "description": "Inline pairs instead of a file."},
        "limit": LIMIT,
        "normalize_length": {"type": "boolean", "default": False,
                             "description": "Compare log-probabilities per character (long answers are not penalised for their length)."},
        "samples": {"type": "integer", "minimum": 0, "default": 5},
    })
    primary = "accuracy"
    higher_is_better = True

    def pairs(self, run: Any) -> list[dict]:
        raw = self.source_records(run)
        rows = [r for r in raw if isinstance(r, dict) and r.get("prompt") is not None
                and r.get("chosen") is not None and r.get("rejected") is not None]
        return sample_rows(rows, self.opt("limit"), seed=run_seed(run))

    def evaluate(self, target: Any, run: Any) -> EvalResult:
        if getattr(target, "is_classifier", False):
            return empty_result(self, "preference scores language models; this is a sequence-classification model")
        pairs = self.pairs(run)
        if not pairs:
            return empty_result(self, "no preference pairs (prompt, chosen, rejected): the eval split has none "
                                      "(set [dataset] eval_fraction > 0) and no path / items given")
        per_char = bool(self.opt("normalize_length", False))
        requests = []
        for p in pairs:
            ctx = target.render(_messages(p["prompt"]))
            requests += [(ctx, _text(p["chosen"])), (ctx, _text(p["rejected"]))]
        lls = target.loglikelihood(requests)
        margins, items, samples = [], [], []
        for i, p in enumerate(pairs):
            c, r = lls[2 * i], lls[2 * i + 1]
            if per_char:
                c, r = c / max(1, len(_text(p["chosen"]))), r / max(1, len(_text(p["rejected"])))
            margin = c - r
            margins.append(margin)
            shown = prompt_text(_messages(p["prompt"]))
            items.append({"score": float(margin > 0), "prompt": shown, "text": shown})
            if len(samples) < int(self.opt("samples", 5)):
                samples.append({"prompt": shown, "output": f"margin {margin:+.3f}", "score": float(margin > 0),
                                "expected": _text(p["chosen"])})
        metrics = {"accuracy": sum(i["score"] for i in items) / len(items),
                   "mean_margin": sum(margins) / len(margins), "n": len(items)}
        return EvalResult(metrics=metrics, primary="accuracy", samples=samples, items=items)
