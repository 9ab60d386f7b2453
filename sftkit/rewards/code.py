"""``code_exec``: 1 when the completion's code passes the row's tests in the sandbox, else 0.

The scorer is the ``code_exec`` evaluator's (:func:`sftkit.evaluation.code.score_outputs`): the
program runs in an OS sandbox and the tests in a separate checker process, which alone decides
"passed", so a completion cannot forge its verdict (a forged pass scores 0). A row is a
HumanEval-format problem: the function stub (``prompt_column``), the tests defining ``check``
(``test_column``) and the function's name (``entry_point_column``). A row without tests or entry
point scores None (not applicable).
"""

from __future__ import annotations

from ..evaluation import code as C
from .base import Reward
from .scorers import scoring_schema

COLUMNS = {
    "prompt_column": {"type": "string", "minLength": 1, "default": "prompt",
                      "description": "Column with the function stub the code completes (a conversation there counts as no stub)."},
    "test_column": {"type": "string", "minLength": 1, "default": "test",
                    "description": "Column with the tests: Python defining check(candidate)."},
    "entry_point_column": {"type": "string", "minLength": 1, "default": "entry_point",
                           "description": "Column with the name of the function under test."},
}


def _reads(options: dict) -> list:
    return [options.get("test_column") or "test", options.get("entry_point_column") or "entry_point"]


class CodeExecReward(Reward):
    name = "code_exec"
    doc = ("1 when the completion's code passes the row's tests (HumanEval format), run sandboxed with an "
           "unforgeable verdict, else 0.")
    option_schema = scoring_schema(C.CodeExecEvaluator, ("mode", "timeout", "memory_mb", "workers"))
    option_schema["properties"].update(COLUMNS)
    reads = staticmethod(_reads)

    def problem(self, row: dict) -> dict | None:
        test, entry = row.get(self.opt("test_column", "test")), row.get(self.opt("entry_point_column", "entry_point"))
        if not (isinstance(test, str) and test.strip() and isinstance(entry, str) and entry.strip()):
            return None
        stub = row.get(self.opt("prompt_column", "prompt"))
        return {"prompt": stub if isinstance(stub, str) else "", "test": test, "entry_point": entry}

    def score(self, prompts, completions, rows, step):
        problems = [self.problem(dict(row or {})) for row in rows]
        todo = [i for i, p in enumerate(problems) if p is not None]
        out: list[float | None] = [None] * len(completions)
        if todo:
            results = C.score_outputs([problems[i] for i in todo], [completions[i] for i in todo],
                                      mode=self.opt("mode", "chat"), timeout=float(self.opt("timeout", 5.0)),
                                      memory_mb=int(self.opt("memory_mb", 2048)), workers=int(self.opt("workers", 2)))
            for i, r in zip(todo, results):
                out[i] = float(r.passed)
        return out
