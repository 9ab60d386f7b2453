"""sftkit-code: conformance, sources, no eval leakage, the sandboxed evaluator, the shipped recipe."""

import json
from pathlib import Path

import pytest

from sftkit.api import SourceContext
from sftkit.errors import DataError
from sftkit.testing import check_plugin

PKG = Path(__file__).resolve().parents[1] / "src" / "sftkit_code"
RECIPE = PKG / "recipes" / "code-instruct.toml"
BUNDLED = PKG / "recipes" / "data" / "code_instructions.jsonl"


def make_source(host, name, options, base_dir=Path(".")):
    return host.registry.get("sources", name).create(options, SourceContext(base_dir=Path(base_dir), name=name))


def test_plugin_conforms(sftkit_plugin):
    host = check_plugin(sftkit_plugin)
    names = {(c.kind, c.name) for c in host.registry.by_origin(sftkit_plugin.__name__)}
    assert names == {("sources", "code_instructions"), ("sources", "humaneval_solutions"),
                     ("evaluators", "humaneval"), ("recipes", "code-instruct")}


def test_bundled_solutions_pass_their_tests():
    from sftkit.evaluation.codeexec import check_many

    rows = [json.loads(line) for line in BUNDLED.read_text().splitlines()]
    problems = [{"prompt": r["solution"] + "\n", "test": r["test"] + "\ndef check(_):\n    pass\n",
                 "entry_point": "None"} for r in rows]
    results = check_many(problems, [""] * len(rows))
    assert len(rows) == 26 and all(r.passed for r in results), [r.result for r in results if not r.passed]


def test_code_instructions_source(sftkit_host, tmp_path):
    rows = make_source(sftkit_host, "code_instructions", {})
    assert len(rows) == 26
    assert rows[0]["prompt"].startswith("Write a Python function `reverse_words")
    assert rows[0]["completion"].startswith("```python\ndef reverse_words(s):") and rows[0]["completion"].endswith("```")
    (tmp_path / "mine.jsonl").write_text('{"q": "Say hi", "a": "print(1)"}\n\n{"q": "Bad"}\n')
    with pytest.raises(DataError, match=r"mine.jsonl:3: missing a \(found: q\)"):
        make_source(sftkit_host, "code_instructions",
                    {"path": "mine.jsonl", "instruction_key": "q", "solution_key": "a"}, tmp_path)
    (tmp_path / "ok.jsonl").write_text('{"q": "Say hi", "a": "print(1)"}\n')
    plain = make_source(sftkit_host, "code_instructions",
                        {"path": "ok.jsonl", "instruction_key": "q", "solution_key": "a", "fence": False}, tmp_path)
    assert plain == [{"prompt": "Say hi", "completion": "print(1)"}]


def test_humaneval_solutions_exclude_evaluated_problems(sftkit_host):
    from sftkit_code.evaluators import HumanEval

    train = make_source(sftkit_host, "humaneval_solutions", {})
    evaluated = HumanEval({"limit": 1000}).selected()
    assert len(train) == 123 and len(evaluated) == 41
    for problem in evaluated:  # no training row contains an evaluated problem's prompt
        assert not any(problem["prompt"].strip() in row["prompt"] for row in train), problem["task_id"]
    fewer = make_source(sftkit_host, "humaneval_solutions", {"exclude": ["HumanEval/1", "HumanEval/2"]})
    assert len(fewer) == 121
    assert len(make_source(sftkit_host, "humaneval_solutions", {"problems": "all"})) == 164


class ScriptedTarget:
    """Answers every prompt with ``answer(problem)``, as a chat model would."""

    def __init__(self, problems, answer):
        self.answers = {p["prompt"].strip(): answer(p) for p in problems}

    def generate(self, conversations, max_new_tokens=128):
        return [next(a for q, a in self.answers.items() if q in conv[-1]["content"]) for conv in conversations]


def test_humaneval_runs_answers_in_the_sandbox(sftkit_host):
    from sftkit_code.humaneval import solution

    evaluator = sftkit_host.registry.get("evaluators", "humaneval").create({"limit": 3})
    problems = evaluator.selected()
    assert [p["task_id"] for p in problems] == ["HumanEval/0", "HumanEval/4", "HumanEval/8"]
    right = evaluator.evaluate(ScriptedTarget(problems, solution), None)
    assert right.metrics == {"pass@1": 1.0, "n": 3}
    hostile = ("```python\nimport os\ndef {name}(*a):\n    os.system('touch /tmp/pwned')\n    while True:\n"
               "        pass\n```")
    wrong = evaluator.evaluate(ScriptedTarget(problems, lambda p: hostile.format(name=p["entry_point"])), None)
    assert wrong.metrics["pass@1"] == 0.0
    assert all("disabled" in reason for reason in wrong.details["per_task"].values())


def test_humaneval_on_a_tiny_model(sftkit_host, sftkit_tiny_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sftkit.evaluation import Target

    target = Target(AutoModelForCausalLM.from_pretrained(sftkit_tiny_model),
                    AutoTokenizer.from_pretrained(sftkit_tiny_model), None, "base")
    evaluator = sftkit_host.registry.get("evaluators", "humaneval").create(
        {"limit": 2, "max_new_tokens": 8, "prompt_style": "completion"})
    result = evaluator.evaluate(target, None)
    assert result.metrics == {"pass@1": 0.0, "n": 2}  # a random model passes nothing, and nothing crashes


def test_shipped_recipe_is_valid(sftkit_cli):
    result = sftkit_cli("validate", RECIPE)
    assert result.exit_code == 0, result.output


def test_copied_recipe_runs_two_steps(sftkit_cli, sftkit_run, sftkit_tiny_model, tmp_path):
    assert sftkit_cli("recipes", "copy", "code-instruct", tmp_path / "code").exit_code == 0
    recipe = tmp_path / "code" / "code-instruct.toml"
    assert (tmp_path / "code" / "data" / "code_instructions.jsonl").is_file()
    outcome = sftkit_run(recipe, f"model.name={sftkit_tiny_model!r}", "eval[0].smoke_limit=1",
                         "eval[0].max_new_tokens=8")
    assert (outcome.run_dir / "COMPLETE").exists()
    (row,) = outcome.metrics["eval"]
    assert row["name"] == "humaneval" and row["tuned"] == 0.0
