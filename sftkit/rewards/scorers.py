"""The rewards that are evaluators' scorers: ``numeric_answer``, ``exact_match``, ``contains``,
``regex``, ``json_valid``, and ``format`` (the regex scorer with a required pattern).

Each builds the evaluator of its name with the reward's options and calls its per-output scorer
(:meth:`sftkit.evaluation.generation.GenerationEvaluator.score_output`) on every completion, with
the completion's data row as the item: what is rewarded during training is exactly what the
``[[eval]]`` of that name judges afterwards. The option schemas are the evaluator's scoring options
(no prompts, items or generation length: the strategy samples). A row without an expected answer
scores None (not applicable). ``rows[i]["truncated"]`` (set by the strategy when completion i was
cut at the length limit) is the scorer's ``truncated``: ``numeric_answer``'s strict match refuses it.
"""

from __future__ import annotations

from ..evaluation import base as EB
from ..evaluation import generation as G
from .base import Reward


def scoring_schema(evaluator: type, keys: tuple, required: tuple = ()) -> dict:
    """The reward's option schema: these options of the evaluator's, as declared there."""
    props = evaluator.option_schema["properties"]
    return EB.strict_options({k: props[k] for k in keys}, required)


def expected_reads(options: dict) -> list:
    """The column holding the expected answer: ``expected_field``, else any of the usual names."""
    field = options.get("expected_field")
    return [field] if field else [list(EB.EXPECTED_FIELDS) + ["messages"]]


class ScorerReward(Reward):
    """A reward that is the evaluator ``evaluator``'s scorer (see the module docstring)."""

    evaluator: type = G.GenerationEvaluator

    def __init__(self, options: dict | None = None):
        super().__init__(options)
        self.scorer = self.evaluator(self.options)

    def score(self, prompts, completions, rows, step):
        out: list[float | None] = []
        for completion, row in zip(completions, rows):
            row = dict(row or {})
            if self.scorer.needs_expected and EB.item_expected(row, self.options) is None:
                out.append(None)
                continue
            value, _extra = self.scorer.score_output(completion, row, bool(row.get("truncated")))
            out.append(float(value))
        return out


class NumericAnswerReward(ScorerReward):
    name = "numeric_answer"
    evaluator = G.NumericAnswerEvaluator
    doc = ("1 when the completion's number equals the row's expected answer (match = strict: the '#### N' "
           "answer of a completion not cut at the limit; flexible: the last number), else 0.")
    option_schema = scoring_schema(evaluator, ("match", "tolerance", "answer_pattern", "expected_field", "extract"))
    check = staticmethod(EB.check_patterns)
    reads = staticmethod(expected_reads)


class ExactMatchReward(ScorerReward):
    name = "exact_match"
    evaluator = G.ExactMatchEvaluator
    doc = "1 when the completion equals the row's expected answer after normalisation, else 0."
    option_schema = scoring_schema(evaluator, ("normalize", "expected_field", "extract"))
    check = staticmethod(EB.check_patterns)
    reads = staticmethod(expected_reads)


class ContainsReward(ScorerReward):
    name = "contains"
    evaluator = G.ContainsEvaluator
    doc = "1 when the completion contains the row's expected answer (whole words, normalised), else 0."
    option_schema = scoring_schema(evaluator, ("normalize", "whole_words", "expected_field", "extract"))
    check = staticmethod(EB.check_patterns)
    reads = staticmethod(expected_reads)


def _regex_reads(options: dict) -> list:
    return [] if options.get("pattern") else expected_reads(options)


class RegexReward(ScorerReward):
    name = "regex"
    evaluator = G.RegexEvaluator
    doc = "1 when the completion matches `pattern` (default: the row's expected answer as a pattern), else 0."
    option_schema = scoring_schema(evaluator, ("pattern", "ignore_case", "full_match", "expected_field", "extract"))
    check = staticmethod(EB.check_patterns)
    reads = staticmethod(_regex_reads)


class FormatReward(ScorerReward):
    """The regex scorer with a pattern every completion should match: a format reward."""

    name = "format"
    evaluator = G.RegexEvaluator
    doc = "1 when the completion is in the required format (matches `pattern`, e.g. \"#### -?[0-9]+\\s*$\"), else 0."
    option_schema = scoring_schema(evaluator, ("pattern", "ignore_case", "full_match"), required=("pattern",))
    check = staticmethod(EB.check_patterns)
    reads = ()


class JsonValidReward(ScorerReward):
    name = "json_valid"
    evaluator = G.JsonValidEvaluator
    doc = "1 when the completion is valid JSON (and valid against `schema` / `schema_file`, if given), else 0."
    option_schema = scoring_schema(evaluator, ("schema", "schema_file", "extract"))
    check = staticmethod(G.check_json_valid)
    reads = ()

    def __init__(self, options: dict | None = None):
        super().__init__(options)
        self.scorer.schema(None)  # loads (and checks) the schema now; build_rewards made schema_file absolute
