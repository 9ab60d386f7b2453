"""A plugin can never fake a pass, crash sftkit or change someone else's recipe (issue 24): an
evaluator that fails is exit 4 naming the plugin, a clashing name never takes a built-in's bare
name, option schemas and lazy factory paths are checked at load, and a slow plugin is named."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from sftkit import hookimpl
from sftkit.api import EvalResult, RunContext
from sftkit.evaluation import compare, evaluate_all, gate_failures
from sftkit.plugins import make_host

sys.path.insert(0, str(Path(__file__).parent))


class _Target:
    label = "tuned"
    formatter = None


class _Fixed:
    """An evaluator returning fixed metrics (what a careless plugin's evaluator returns)."""

    name = "fixed"
    primary = "ece"
    higher_is_better = False

    def __init__(self, options):
        self.metrics = dict(options.get("metrics") or {})

    def evaluate(self, target, run):
        return EvalResult(metrics=dict(self.metrics), primary=self.primary)


class _EvalPlugin:
    @hookimpl
    def sftkit_register_evaluators(self, register):
        register("calibration", _Fixed, schema={"type": "object", "properties": {"metrics": {"type": "object"}}})


def _run_ctx(tmp_path, evals, host):
    return RunContext(recipe={"eval": evals, "training": {"max_length": 64}}, recipe_path=None, base_dir=tmp_path,
                      run_dir=tmp_path, data=None, host=host)


@pytest.mark.parametrize("metrics, why", [
    ({"n": 3}, "returned no value for its primary metric 'ece' (metrics returned: n)"),
    ({"ece": math.nan}, "returned nan for its primary metric 'ece': it must be a finite number"),
    ({"ece": "0.1"}, "returned '0.1' for its primary metric 'ece': it must be a finite number"),
])
def test_an_evaluator_without_a_usable_primary_value_failed_naming_its_plugin(tmp_path, metrics, why):
    from sftkit.reporting.accounting import evaluation_errors

    host = make_host(entry_points=False, extra=(("sentiment", _EvalPlugin()),))
    run = _run_ctx(tmp_path, [{"name": "calibration", "metrics": metrics, "max": 0.2}], host)
    tuned = evaluate_all(run, _Target())
    assert tuned["calibration"].error == f"evaluator 'calibration' from plugin 'sentiment' {why}"
    rows = compare(run, {}, tuned)
    assert rows[0]["verdict"] == "error"
    assert evaluation_errors(rows) == [f"evaluator calibration failed on the tuned model: evaluator 'calibration' "
                                       f"from plugin 'sentiment' {why}"]
    assert gate_failures(rows)  # never a pass either


def test_a_finite_primary_value_is_not_an_error(tmp_path):
    host = make_host(entry_points=False, extra=(("sentiment", _EvalPlugin()),))
    run = _run_ctx(tmp_path, [{"name": "calibration", "metrics": {"ece": 0.1}}], host)
    assert evaluate_all(run, _Target())["calibration"].error is None


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from sftkit.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def test_run_with_a_failing_plugin_evaluator_exits_4_even_with_a_gate(tmp_path, tiny_dir, monkeypatch):
    from test_run import cli, error_line, make_recipe

    from sftkit import plugins

    monkeypatch.setattr(plugins, "_HOST", make_host(entry_points=False, extra=(("sentiment", _EvalPlugin()),)))
    evals = [{"name": "calibration", "metrics": {"n": 3}, "max": 0.2}]
    recipe = make_recipe(tmp_path, tiny_dir, training={"max_steps": 1}, eval=evals)
    res = cli("run", recipe, "--output", tmp_path / "run")
    assert res.exit_code == 4, res.output
    line = error_line(res)
    assert "evaluator 'calibration' from plugin 'sentiment' returned no value for its primary metric 'ece'" in line
