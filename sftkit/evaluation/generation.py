"""Evaluators that score greedy generations: samples, exact_match, contains, regex, numeric_answer, json_valid."""

from __future__ import annotations

import json
from typing import Any

from ..api import EvalResult
from ..errors import Problem, SftkitError
from . import metrics as M
from .base import (
    MAX_NEW,
    NORMALIZE,
    PROMPT_OPTS,
    BaseEvaluator,
    by_cluster,
    check_patterns,
    empty_result,
    item_expected,
    item_messages,
    load_items,
    prompt_text,
    resolve,
    strict_options,
)


class GenerationEvaluator(BaseEvaluator):
    """Generate an answer per item, score each with ``score(output, item)`` (0..1), report the mean."""

    primary = "accuracy"
    needs_expected = True
    default_max_new_tokens = 128
    check = staticmethod(check_patterns)  # every one takes extract = "regex:..."

    def items(self, run: Any) -> list[dict]:
        return load_items(self, run)

    def score(self, output: str, item: dict, truncated: bool = False) -> tuple[float, dict]:  # pragma: no cover
        """The score (0..1) of one cleaned, extracted output for ``item``, and details for the sample;
        ``truncated``: the output was cut at the token limit."""
        raise NotImplementedError

    def score_output(self, output: str, item: dict, truncated: bool = False) -> tuple[float, dict]:
        """The scorer of one raw model output: cleaned, the ``extract`` part taken, scored. What the
        evaluator aggregates and what the reward of the same name returns, so both judge alike."""
        out = M.clean_text(output)
        how = self.options.get("extract") if isinstance(self.options.get("extract"), str) else None
        value, extra = self.score(M.extract_answer(out, how) if how else out, item, truncated)
        if how:
            extra = {"extracted_answer": M.extract_answer(out, how), **extra}
        if truncated:
            extra = {**extra, "truncated": True}
        return value, extra

    def evaluate(self, target: Any, run: Any) -> EvalResult:
        items = self.items(run)
        if not items:
            return empty_result(self, "no items to evaluate (empty prompts file / inline items, and no eval split)")
        if self.needs_expected:
            missing = [i for i, it in enumerate(items) if item_expected(it, self.options) is None]
            if missing:
                raise SftkitError(f"[[eval]] {self.name}: item {missing[0] + 1} has no expected answer",
                                  hint="add an `expected` field (or set expected_field = \"...\")")
        conversations = [item_messages(it, self.options) for it in items]
        max_new = int(self.opt("max_new_tokens", self.default_max_new_tokens))
        outputs = target.generate(conversations, max_new_tokens=max_new)
        scores, samples, records = [], [], []
        invalid = truncated = 0
        for it, conv, out in zip(items, conversations, outputs):
            out = M.clean_text(out)
            bad = M.has_invalid_utf8(out)
            invalid += bad
            cut = hit_limit(target, out, max_new)
            truncated += cut
            value, extra = self.score_output(out, it, cut)
            scores.append(value)
            sample = {"prompt": prompt_text(conv), "output": out, "score": value, **extra}
            expected = item_expected(it, self.options)
            if expected is not None:
                sample["expected"] = expected if isinstance(expected, (str, int, float, list)) else str(expected)
            if bad:
                sample["invalid_utf8"] = True
            if it.get("cluster") is not None:
                sample["cluster"] = it["cluster"]
            samples.append(sample)
            records.append({"score": value, "answer": self.answer(out, extra), "prompt": sample["prompt"],
                            "text": "\n".join(str(m.get("content", "")) for m in conv if m.get("role") == "user"),
                            **({"expected": sample["expected"]} if "expected" in sample else {}),
                            **({"cluster": it["cluster"]} if it.get("cluster") is not None else {})})
        metrics = {self.primary: sum(scores) / len(scores), "n": len(scores), "invalid_utf8": invalid,
                   "truncated": truncated,
                   "distinct_outputs": len({r["answer"] for r in records}) / len(records)}
        metrics.update(self.extra_metrics(samples))
        if self.opt("by_cluster", False):
            metrics.update(by_cluster(self.primary, scores, [it.get("cluster") for it in items]))
        return EvalResult(metrics=metrics, primary=self.primary, samples=samples, items=records)

    def answer(self, output: str, extra: dict) -> str:
        """The output as an answer, for collapse detection: normalised (and the extracted value, if any)."""
        if extra.get("extracted") is not None:
            return str(extra["extracted"])
        return M.normalize(output)[:200]

    def extra_metrics(self, samples: list[dict]) -> dict:
        return {}


def hit_limit(target: Any, output: str, max_new_tokens: int) -> bool:
    """Whether an answer used up ``max_new_tokens`` (cut off, not finished): its re-tokenised length
    reaches the limit (less one, as re-tokenising may merge a pair). False without a tokenizer."""
    tok = getattr(target, "tokenizer", None)
    if tok is None or not output:
        return False
    try:
        n = len(tok(output, add_special_tokens=False)["input_ids"])
    except Exception:
        return False
    return n >= max(1, max_new_tokens - 1)


class SamplesEvaluator(GenerationEvaluator):
    """Answers to fixed prompts, shown before/after side by side (no score)."""

    split_limit = 8

    name = "samples"
    doc = "Answers to fixed prompts (default: the first 8 eval-split rows), before and after, side by side."
    option_schema = strict_options(PROMPT_OPTS)
    bounds = None
    primary = "avg_chars"
    higher_is_better = None
    needs_expected = False

    def score(self, output, item, truncated=False):
        return float(len(output)), {}

    def evaluate(self, target, run):
        res = super().evaluate(target, run)
        for s in res.samples:
            s.pop("score", None)
        return res


class ExactMatchEvaluator(GenerationEvaluator):
    name = "exact_match"
    doc = "Generated answer equals the expected answer after normalisation."
    option_schema = strict_options({**PROMPT_OPTS, "normalize": NORMALIZE})

    def score(self, output, item, truncated=False):
        steps = self.opt("normalize", list(M.DEFAULT_NORMALIZE))
        return float(M.exact_match(output, item_expected(item, self.options), steps)), {}


class ContainsEvaluator(GenerationEvaluator):
    name = "contains"
    doc = "Generated answer contains the expected answer (as whole words) after normalisation."
    option_schema = strict_options({**PROMPT_OPTS, "normalize": NORMALIZE,
                      "whole_words": {"type": "boolean", "default": True,
                                      "description": "Match the expected answer as whole words only (\"No\" is not in \"not\")."}})

    def score(self, output, item, truncated=False):
        steps = self.opt("normalize", list(M.DEFAULT_NORMALIZE))
        return float(M.contains(output, item_expected(item, self.options), steps,
                                whole_words=bool(self.opt("whole_words", True)))), {}


class RegexEvaluator(GenerationEvaluator):
    """The output matches ``pattern`` (one for all items) or, without it, each item's expected regex."""

    name = "regex"
    doc = "Generated answer matches a regular expression."
    option_schema = strict_options({
        **PROMPT_OPTS,
        "pattern": {"type": "string", "description": "Regular expression every output must match (default: each item's expected answer as a pattern)."},
        "ignore_case": {"type": "boolean", "default": False},
        "full_match": {"type": "boolean", "default": False, "description": "The whole (stripped) output must match, not just a part."},
    })
    checks_format = True
    primary = "match_rate"

    @property
    def needs_expected(self):  # type: ignore[override]
        return not self.options.get("pattern")

    def score(self, output, item, truncated=False):
        pattern = self.options.get("pattern") or str(item_expected(item, self.options))
        try:
            ok = M.regex_match(output, pattern, ignore_case=bool(self.opt("ignore_case", False)),
                               full=bool(self.opt("full_match", False)))
        except Exception as exc:  # re.error
            raise SftkitError(f"[[eval]] regex: invalid pattern {pattern!r}: {exc}") from None
        return float(ok), {}


class NumericAnswerEvaluator(GenerationEvaluator):
    """GSM8K style, scored two ways (as lm-evaluation-harness): ``strict`` — the number in the answer
    format (``#### N``, or ``answer_pattern``) of an answer that was not cut off at
    ``max_new_tokens``; ``flexible`` — the last number in the text. ``match`` picks the primary."""

    name = "numeric_answer"
    doc = "GSM8K style: strict ('#### N' answer, not cut off) and flexible (last number) accuracy."
    option_schema = strict_options({
        **PROMPT_OPTS, "max_new_tokens": {**MAX_NEW, "default": 256},
        "tolerance": {"type": "number", "minimum": 0, "default": 1e-6, "description": "Relative/absolute tolerance."},
        "match": {"enum": ["strict", "flexible"], "default": "flexible",
                  "description": "Primary score: strict (the answer format, not cut off) or flexible (the last number). Both are reported."},
        "answer_pattern": {"type": "string", "description": "Regex of the strict answer format; group 1 holds the number (default: #### N)."},
    })
    default_max_new_tokens = 256

    def score(self, output, item, truncated=False):
        expected = item_expected(item, self.options)
        gold = float(expected) if isinstance(expected, (int, float)) else M.extract_number(str(expected))
        tol = float(self.opt("tolerance", 1e-6))
        strict = None if truncated else \
            M.extract_strict(output, self.opt("answer_pattern", M.STRICT_PATTERN))
        flexible = M.extract_flexible(output)
        ok = {"strict": M.numeric_equal(strict, gold, tol), "flexible": M.numeric_equal(flexible, gold, tol)}
        got = strict if self.opt("match", "flexible") == "strict" else flexible
        return float(ok[self.opt("match", "flexible")]), {"extracted": got, "strict": strict, "flexible": flexible,
                                                          "strict_ok": ok["strict"], "flexible_ok": ok["flexible"],
                                                          "gold": gold}

    def extra_metrics(self, samples):
        n = len(samples)
        return {"strict": sum(1 for s in samples if s.get("strict_ok")) / n,
                "flexible": sum(1 for s in samples if s.get("flexible_ok")) / n,
                "strict_answered_rate": sum(1 for s in samples if s.get("strict") is not None) / n,
                "answered_rate": sum(1 for s in samples if s.get("flexible") is not None) / n}


def check_json_valid(options: dict, ctx=None) -> list:
    """Only one of schema / schema_file; an ``extract = "regex:..."`` that compiles."""
    if options.get("schema") is not None and options.get("schema_file"):
        return [Problem("json_valid: give `schema` or `schema_file`, not both")]
    return check_patterns(options, ctx)


class JsonValidEvaluator(GenerationEvaluator):
    """Output is valid JSON and, when a schema is given, valid against it."""

    name = "json_valid"
    doc = "Output is valid JSON (and valid against a JSON Schema, if given)."
    option_schema = strict_options({
        **PROMPT_OPTS,
        "schema": {"type": "object", "description": "Inline JSON Schema outputs must satisfy."},
        "schema_file": {"type": "string", "x-sftkit-path": True, "description": "JSON Schema file outputs must satisfy."},
        "extract": {"type": "boolean", "default": True,
                    "description": "Accept JSON inside a code fence or surrounded by text (first balanced {...}/[...])."},
    })
    check = staticmethod(check_json_valid)
    checks_format = True
    primary = "valid_rate"
    needs_expected = False

    def __init__(self, options=None):
        super().__init__(options)
        self._schema = None
        self._loaded = False

    def schema(self, run):
        if not self._loaded:
            self._loaded = True
            schema = self.options.get("schema")
            if schema is None and self.options.get("schema_file"):
                schema = str(self.options["schema_file"])
            if isinstance(schema, str):
                path = resolve(run, schema)
                try:
                    schema = json.loads(path.read_text(encoding="utf-8"))
                except (OSError, ValueError) as exc:
                    raise SftkitError(f"[[eval]] json_valid: schema file {path} could not be read: {exc}") from None
            if schema is not None:
                from jsonschema import Draft202012Validator
                from jsonschema.exceptions import SchemaError

                try:
                    Draft202012Validator.check_schema(schema)
                except SchemaError as exc:
                    raise SftkitError(f"[[eval]] json_valid: the schema is not a valid JSON Schema: {exc.message}") from None
                self._schema = Draft202012Validator(schema)
        return self._schema

    def evaluate(self, target, run):
        self._run = run
        self.schema(run)
        return super().evaluate(target, run)

    def score(self, output, item, truncated=False):
        ok, value, err = M.parse_json(output, extract=bool(self.opt("extract", True)))
        extra = {"parsed": ok}
        if not ok:
            extra["reason"] = f"invalid JSON: {err}"
            return 0.0, extra
        validator = self.schema(getattr(self, "_run", None))  # loaded once (by evaluate, or here)
        if validator is not None:
            errors = sorted(validator.iter_errors(value), key=lambda e: list(e.path))
            if errors:
                extra["reason"] = f"schema: {errors[0].message}"
                return 0.0, extra
        return 1.0, extra

    def extra_metrics(self, samples):
        return {"parse_rate": sum(1 for s in samples if s.get("parsed")) / len(samples)}
