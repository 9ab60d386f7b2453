"""Shared pieces of the built-in evaluators: the options they share and how they are declared, reading
items, turning them into prompts, per-cluster metrics."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable

from ..api import EvalResult
from ..errors import DataError, Problem, SftkitError
from ..sampling import sample_rows


# ---------------------------------------------------------------------------- declaring options
def strict_options(props: dict, required: tuple = ()) -> dict:
    """An evaluator's option schema: exactly these options (a misspelt one is a validate error)."""
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


def registration(cls) -> dict:
    """What sftkit registers for an evaluator class, all declared on the class beside its code: the
    option schema, doc, check and the bounds of its primary metric (registration metadata ``range``)."""
    return {"schema": cls.option_schema, "doc": cls.doc, "check": cls.check, "range": cls.bounds}


PROMPT_FIELDS = ("prompt", "question", "instruction", "input", "text")
EXPECTED_FIELDS = ("expected", "answer", "completion", "output", "target", "response")


class BaseEvaluator:
    """An evaluator built from its recipe options. Subclasses set ``name``, ``primary`` and
    ``higher_is_better`` (None: no direction) and implement ``evaluate(target, run)``."""

    name = "base"
    primary = "score"
    higher_is_better: bool | None = True
    pairwise = False  # True: compare(base_result, tuned_result, run) produces the row's result
    checks_format = False  # True: the primary metric is the share of outputs in a required format (health reads it)
    split_limit: int | None = None  # items taken from the eval split when no limit is set (None: all)
    gate_options: tuple = ()  # the evaluator's own gate options (gate_failures), e.g. ("max_increase",)
    stat_scale: str | None = None  # "exp": item scores are on the log scale of the primary metric
    # what sftkit's own evaluators register (:func:`registration`; a plugin passes these to ``register``)
    doc = ""
    option_schema: dict | None = None  # the options it takes (:func:`strict_options`)
    bounds: tuple | None = (0, 1)  # the primary metric's possible values (None: unbounded; (0, None): >= 0)
    check: Any = None  # check(options, ctx) -> [Problem] run by ``sftkit validate``

    def __init__(self, options: dict | None = None):
        self.options = dict(options or {})

    def opt(self, key: str, default: Any = None) -> Any:
        value = self.options.get(key)
        return default if value is None else value

    def gate_failures(self, row: dict) -> list[str]:
        """Evaluator-specific gates beyond min/max/max_regression (e.g. forgetting's max_increase)."""
        return []

    def evaluate(self, target: Any, run: Any) -> EvalResult:  # pragma: no cover - interface
        raise NotImplementedError

    def source_records(self, run: Any) -> list:
        """The raw records to score: inline ``items``, else the ``path`` file, else the eval split."""
        if self.options.get("items") is not None:
            return list(self.options["items"])
        if self.opt("path"):
            return read_records(resolve(run, self.opt("path")), where=f"[[eval]] {self.name}")
        return eval_split_rows(run)


# ---------------------------------------------------------------------------- reading items
def read_records(path: Path, *, where: str = "") -> list[dict]:
    """Rows of a .jsonl / .jsonl.gz / .json (list) file; errors name file and line; a value that is
    not an object is a prompt."""
    from ..jsonl import read_values

    return [row if isinstance(row, dict) else {"prompt": row} for row in read_values(path, where=where or None)]


def resolve(run: Any, path: str) -> Path:
    from ..paths import resolve_path

    return resolve_path(path, getattr(run, "base_dir", None))


def eval_split_rows(run: Any) -> list[dict]:
    """The rows of the run's eval split (``run.data.eval``), or [] when there is none."""
    data = getattr(run, "data", None)
    ds = getattr(data, "eval", None) if data is not None else None
    if ds is None:
        return []
    return [dict(r) for r in ds]


def load_items(evaluator: BaseEvaluator, run: Any, *, file_keys=("prompts", "path"), default_path: str | None = None,
               from_eval_split: bool = True) -> list[dict]:
    """Items from inline ``items``, a file option, ``default_path``, or the run's eval split; ``limit``
    items sampled with the recipe's seed, stratified by subject / label / cluster (items taken from
    the eval split default to the evaluator's first ``split_limit``)."""
    opts = evaluator.options
    where = f"[[eval]] {evaluator.name}"
    if opts.get("items") is not None:
        items = [i if isinstance(i, dict) else {"prompt": i} for i in opts["items"]]
    else:
        path = next((opts[k] for k in file_keys if opts.get(k)), None) or default_path
        if path:
            items = read_records(resolve(run, path), where=where)
        elif from_eval_split:
            items = [split_row_item(r) for r in eval_split_rows(run)]
            items = [i for i in items if i is not None]
            if not opts.get("limit") and getattr(evaluator, "split_limit", None):
                items = items[: evaluator.split_limit]
        else:
            raise SftkitError(f"{where}: no items", hint=f"set {file_keys[0]} = \"file.jsonl\" or items = [...]")
    return sample_rows(items, opts.get("limit"), seed=run_seed(run))


def run_seed(run: Any) -> int:
    """The recipe's seed (what ``limit`` samples with)."""
    from ..config import of_run

    return of_run(run).seed


def split_row_item(row: dict) -> dict | None:
    """An eval-split canonical record as an item: the conversation up to the last assistant turn
    is the prompt, that turn is the expected answer; the row's kept other columns
    (:data:`sftkit.records.FIELDS`: ``tests``, ``entry_point``...) come along."""
    from ..records import FIELDS, row_fields

    if row.get(FIELDS):
        item = split_row_item({k: v for k, v in row.items() if k != FIELDS})
        if item is None:
            return None
        extra = {k: v for k, v in row_fields(row).items() if k not in row}
        return {**extra, **{k: v for k, v in item.items() if v is not None or k not in extra}}
    if "messages" in row and row["messages"]:
        msgs = list(row["messages"])
        expected = None
        if msgs[-1].get("role") == "assistant":
            expected = msgs[-1].get("content", "")
            msgs = msgs[:-1]
        if not msgs:
            return None
        return {"messages": msgs, "expected": expected, "cluster": row.get("cluster")}
    if "prompt" in row and isinstance(row["prompt"], list):
        expected = row.get("completion", row.get("chosen"))
        return {"messages": row["prompt"], "expected": expected, "cluster": row.get("cluster")}
    if "text" in row:
        return {"prompt": row["text"], "expected": row.get("label"), "cluster": row.get("cluster")}
    return None


def item_messages(item: dict, options: dict) -> list[dict]:
    """The conversation to send for an item (``messages``, or the prompt field as one user turn)."""
    system = options.get("system")
    if isinstance(item.get("messages"), list):
        msgs = [dict(m) for m in item["messages"]]
        if msgs and msgs[-1].get("role") == "assistant":
            msgs = msgs[:-1]
    else:
        field = options.get("prompt_field")
        keys = (field,) if field else PROMPT_FIELDS
        text = next((item[k] for k in keys if k in item and item[k] is not None), None)
        if text is None:
            raise DataError(f"item has no prompt field ({', '.join(keys)}); fields found: {', '.join(item) or 'none'}",
                            hint="set prompt_field = \"...\" in the [[eval]] table")
        template = options.get("prompt_template")
        content = template.format(**{k: v for k, v in item.items() if isinstance(k, str)}) if template else str(text)
        msgs = [{"role": "user", "content": content}]
    if system and not any(m.get("role") == "system" for m in msgs):
        msgs = [{"role": "system", "content": system}] + msgs
    return msgs


def item_expected(item: dict, options: dict) -> Any:
    field = options.get("expected_field")
    if field:
        return item.get(field)
    for key in EXPECTED_FIELDS:
        if key in item and item[key] is not None:
            return item[key]
    if isinstance(item.get("messages"), list) and item["messages"] and item["messages"][-1].get("role") == "assistant":
        return item["messages"][-1].get("content")
    return None


def prompt_text(messages: list[dict]) -> str:
    """A short display form of a conversation for samples."""
    return "\n".join(f"{m.get('role')}: {m.get('content')}" for m in messages if m.get("role") != "system")


def by_cluster(metric: str, scores: Iterable[float], clusters: Iterable[Any]) -> dict[str, float]:
    """``{"metric[cluster]": mean, "n[cluster]": items}`` for every cluster present."""
    groups: dict[str, list[float]] = {}
    for s, c in zip(scores, clusters):
        if c is None:
            continue
        groups.setdefault(str(c), []).append(float(s))
    out: dict[str, float] = {}
    for c, v in sorted(groups.items()):
        out[f"{metric}[{c}]"] = sum(v) / len(v)
        out[f"n[{c}]"] = len(v)
    return out


def empty_result(evaluator: BaseEvaluator, why: str) -> EvalResult:
    """A scored failure for an evaluator that had nothing to score."""
    return EvalResult(metrics={}, primary=evaluator.primary, error=why)
