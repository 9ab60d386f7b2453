"""Likelihood evaluators: ``loss`` (eval split loss / perplexity) and ``forgetting`` (general-text perplexity)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..api import IGNORE_INDEX, EvalResult
from ..config import Training
from ..errors import SftkitError
from ..sampling import sample_rows
from .base import BY_CLUSTER, LIMIT, BaseEvaluator, empty_result, eval_split_rows, resolve, run_seed, strict_options

GENERAL_TEXT = Path(__file__).parent / "data" / "general.txt"


def encode_row(formatter: Any, row: dict, max_length: int | None) -> dict | None:
    """Token ids + labels of a canonical record (trained tokens as in training), or None if not scorable."""
    if "messages" in row and row["messages"]:
        return formatter.encode_messages(list(row["messages"]), max_length=max_length)
    if isinstance(row.get("prompt"), list):
        if "chosen" in row:
            answer = row["chosen"]
        elif row.get("label", True) and "completion" in row:
            answer = row["completion"]
        else:
            return None
        msgs = list(row["prompt"]) + [{"role": "assistant", "content": answer}]
        return formatter.encode_messages(msgs, max_length=max_length)
    if "text" in row and "label" not in row:
        return formatter.encode_text(row["text"], max_length=max_length)
    return None


class LossEvaluator(BaseEvaluator):
    """Mean loss over the trained tokens of the eval split (formatted as in training) and its perplexity."""

    name = "loss"
    doc = "Loss and perplexity on the eval split, formatted as in training (lower is better)."
    option_schema = strict_options({
        "limit": LIMIT, "by_cluster": BY_CLUSTER,
        "max_length": {"type": "integer", "minimum": 8, "description": "Tokens per row (default: training.max_length)."},
    })
    bounds = (0, None)
    primary = "eval_loss"
    higher_is_better = False

    def evaluate(self, target: Any, run: Any) -> EvalResult:
        rows = sample_rows(eval_split_rows(run), self.opt("limit"), seed=run_seed(run))
        if not rows:
            return empty_result(self, "the eval split is empty: set [dataset] eval_fraction > 0 or add a [[data]] "
                                      "entry with split = \"eval\"")
        if getattr(target, "is_classifier", False):
            return empty_result(self, "loss scores language models; this is a sequence-classification model "
                                      "(use the classification evaluator)")
        formatter = target.formatter or getattr(run, "formatter", None)
        if formatter is None:
            raise SftkitError("loss evaluator needs the recipe's formatter to tokenize the eval split")
        max_length = int(self.opt("max_length", getattr(target, "row_length", None) or Training().max_length))
        encoded, clusters = [], []
        for row in rows:
            enc = encode_row(formatter, row, max_length)
            if enc is None or not any(label != IGNORE_INDEX for label in enc["labels"]):
                continue
            encoded.append(enc)
            clusters.append(row.get("cluster"))
        if not encoded:
            return empty_result(self, f"none of the {len(rows)} eval rows has trained tokens "
                                      "(classification data? use the classification evaluator)")
        scored = target.labeled_nll(encoded)
        nll = sum(s for s, _ in scored)
        tokens = sum(n for _, n in scored)
        loss = nll / tokens
        metrics = {"eval_loss": loss, "perplexity": _safe_exp(loss), "tokens": tokens, "rows": len(encoded)}
        if self.opt("by_cluster", False):
            groups: dict[str, list] = {}
            for (s, n), c in zip(scored, clusters):
                if c is not None:
                    g = groups.setdefault(str(c), [0.0, 0])
                    g[0] += s
                    g[1] += n
            for c, (s, n) in sorted(groups.items()):
                if n:
                    metrics[f"eval_loss[{c}]"] = s / n
                    metrics[f"perplexity[{c}]"] = _safe_exp(s / n)
        # per-row mean loss weighted by its tokens: the weighted mean is eval_loss (intervals, paired test)
        items = [{"score": s / n, "weight": n, "prompt": i} for i, (s, n) in enumerate(scored) if n]
        return EvalResult(metrics=metrics, primary="eval_loss", items=items)


def _safe_exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        return float("inf")


class ForgettingEvaluator(BaseEvaluator):
    """Perplexity on general reference text (shipped with sftkit, or ``path``); fails when the tuned
    model's is more than ``max_increase`` (relative) above the base model's."""

    name = "forgetting"
    doc = "Perplexity on general text before vs after (max_increase: allowed relative rise)."
    option_schema = strict_options({
        "path": {"type": "string", "x-sftkit-path": True,
                 "description": "Reference text (paragraphs separated by blank lines). Default: general prose shipped with sftkit."},
        "max_increase": {"type": "number", "minimum": 0,
                         "description": "Fail when the tuned perplexity exceeds the base one by more than this fraction (0.1 = +10%). Omit to only report."},
    })
    bounds = (1, None)
    primary = "perplexity"
    higher_is_better = False
    gate_options = ("max_increase",)
    stat_scale = "exp"  # item scores are NLL per token; the metric is exp of their weighted mean

    def texts(self, run: Any) -> list[str]:
        path = self.opt("path")
        file = resolve(run, path) if path else GENERAL_TEXT
        try:
            raw = Path(file).read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise SftkitError(f"[[eval]] forgetting: reference text {file} could not be read: {exc}") from None
        paras = [" ".join(p.split()) for p in raw.split("\n\n")]
        return [p for p in paras if p]

    def evaluate(self, target: Any, run: Any) -> EvalResult:
        texts = self.texts(run)
        if not texts:
            return empty_result(self, "the reference text is empty")
        pairs = target.rolling_loglikelihood(texts)
        ll = sum(a for a, _ in pairs)
        n = sum(b for _, b in pairs)
        # per-text NLL per token, token-weighted; perplexity = exp(weighted mean), hence stat_scale "exp"
        items = [{"score": -a / b, "weight": b, "prompt": i} for i, (a, b) in enumerate(pairs) if b]
        return EvalResult(metrics={"perplexity": _safe_exp(-ll / n), "nll_per_token": -ll / n, "tokens": n},
                          primary="perplexity", items=items)

    def gate_failures(self, row: dict) -> list[str]:
        limit = self.options.get("max_increase")
        base, tuned = row.get("base"), row.get("tuned")
        if limit is None or base is None or tuned is None or not base:
            return []
        increase = tuned / base - 1.0
        row.setdefault("metrics", {})["relative_increase"] = {"base": None, "tuned": increase, "delta": None}
        if increase > float(limit):
            return [f"gate failed: {row['label']}.perplexity rose {increase:.1%} ({base:.4g} -> {tuned:.4g}) "
                    f"> max_increase {float(limit):.1%}"]
        return []
