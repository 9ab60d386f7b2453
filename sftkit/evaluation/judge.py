"""``judge``: a judge model prefers the base or the tuned answer; both orders asked to cancel position bias."""

from __future__ import annotations

from typing import Any

from ..api import EvalResult
from . import metrics as M
from .base import (
    PROMPT_OPTS,
    BaseEvaluator,
    check_patterns,
    empty_result,
    item_messages,
    load_items,
    prompt_text,
    strict_options,
)

JUDGE_PROMPT = (
    "You are comparing two answers to the same request.{criteria}\n\n"
    "Request:\n{question}\n\n"
    "Answer A:\n{a}\n\n"
    "Answer B:\n{b}\n\n"
    "Which answer is better? Reply with the single letter A or B."
)


def load_judge(spec: str, run: Any):
    """(model, tokenizer) of the judge named in the recipe (hub id, local dir or .gguf), through the
    run's model loader (which decides the smoke stand-in, caches and plugin loaders)."""
    load_model = getattr(run, "load_model", None)
    if load_model is None:
        raise TypeError("RunContext.load_model is unset: the run hands evaluators its model loader")
    return load_model(run, {"name": spec})


class JudgeEvaluator(BaseEvaluator):
    split_limit = 32
    name = "judge"
    doc = ("Pairwise preference of a judge model between base and tuned answers (both orders asked); win rate. "
           "Prompts default to the first 32 eval-split rows.")
    option_schema = strict_options({
        **PROMPT_OPTS,
        "model": {"type": "string", "minLength": 1, "description": "Judge model: hub id, local directory or .gguf (path or package://)."},
        "criteria": {"type": "string", "description": "What the judge should prefer, e.g. \"politeness and correctness\"."},
    }, required=("model",))
    check = staticmethod(check_patterns)
    primary = "win_rate"
    higher_is_better = True
    pairwise = True

    def evaluate(self, target: Any, run: Any) -> EvalResult:
        """Collect this model's answers; the preference is computed in :meth:`compare`."""
        items = load_items(self, run)
        if not items:
            return empty_result(self, "no prompts for the judge (prompts file / items empty and no eval split)")
        convs = [item_messages(it, self.options) for it in items]
        outputs = target.generate(convs, max_new_tokens=int(self.opt("max_new_tokens", 128)))
        samples = [{"prompt": prompt_text(c), "output": M.clean_text(o)} for c, o in zip(convs, outputs)]
        return EvalResult(metrics={"n": len(samples)}, primary="n", samples=samples)

    def compare(self, base: EvalResult | None, tuned: EvalResult | None, run: Any) -> EvalResult:
        """Win rate of the tuned answers over the base answers (ties: 0.5)."""
        if base is None or tuned is None or base.error or tuned.error:
            why = "judge needs answers from both the base and the tuned model"
            errs = [e for e in (base and base.error, tuned and tuned.error) if e]
            return EvalResult(metrics={}, primary=self.primary, error=why + (f" ({'; '.join(errs)})" if errs else ""))
        spec = self.options.get("model")
        try:
            from .target import Target

            model, tokenizer = load_judge(spec, run)
            judge = Target(model, tokenizer, None, "judge")
        except Exception as exc:  # any load failure is a scored failure; the report is still written
            return EvalResult(metrics={}, primary=self.primary,
                              error=f"judge model {spec!r} could not be loaded: {type(exc).__name__}: {exc}")
        criteria = self.opt("criteria", "")
        criteria = f" Judge by: {criteria}." if criteria else ""
        requests = []
        pairs = list(zip(base.samples, tuned.samples))
        for b, t in pairs:
            for first, second in ((b["output"], t["output"]), (t["output"], b["output"])):
                ctx = judge.render([{"role": "user", "content": JUDGE_PROMPT.format(
                    criteria=criteria, question=b["prompt"], a=first, b=second)}])
                requests.append((ctx, "A"))
                requests.append((ctx, "B"))
        lls = judge.loglikelihood(requests)
        wins = losses = ties = consistent = 0
        scores, samples = [], []
        for n, (b, t) in enumerate(pairs):
            a1, b1, a2, b2 = lls[4 * n:4 * n + 4]
            tuned_first = b1 > a1   # order 1: A = base, B = tuned
            tuned_second = a2 > b2  # order 2: A = tuned, B = base
            score = (tuned_first + tuned_second) / 2
            scores.append(score)
            wins += score == 1
            losses += score == 0
            ties += score == 0.5
            consistent += tuned_first == tuned_second
            samples.append({"prompt": b["prompt"], "base": b["output"], "tuned": t["output"], "score": score,
                            "verdict": {1.0: "tuned", 0.0: "base", 0.5: "tie (position bias)"}[score]})
        total = len(pairs)
        if not total:
            return EvalResult(metrics={}, primary=self.primary, error="no answer pairs to judge")
        metrics = {"win_rate": sum(scores) / total, "wins": wins, "losses": losses, "ties": ties,
                   "position_consistency": consistent / total, "n": total}
        items = [{"score": s["score"], "prompt": s["prompt"]} for s in samples]
        return EvalResult(metrics=metrics, primary="win_rate", samples=samples, details={"judge": spec}, items=items)
