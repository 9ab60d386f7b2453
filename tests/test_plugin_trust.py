"""A plugin can never fake a pass, crash sftkit or change someone else's recipe (issue 24): an
evaluator that fails is exit 4 naming the plugin, a clashing name never takes a built-in's bare
name, option schemas and lazy factory paths are checked at load, and a slow plugin is named."""

from __future__ import annotations

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
    from sftkit.config import resolve

    return RunContext(config=resolve({"eval": evals, "training": {"max_length": 64}}), recipe_path=None,
                      base_dir=tmp_path, run_dir=tmp_path, data=None, host=host)


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


class _EvalAndHookPlugin(_EvalPlugin):
    @hookimpl
    def sftkit_run_start(self, run):
        raise RuntimeError("no calibration cache")


def _use_host(monkeypatch, plugin):
    from sftkit import plugins

    monkeypatch.setattr(plugins, "_HOST", make_host(entry_points=False, extra=(("sentiment", plugin),)))


def test_run_with_a_failing_plugin_evaluator_exits_4_and_the_report_names_failed_hooks(tmp_path, tiny_dir, monkeypatch):
    from test_run import cli, error_line, make_recipe

    _use_host(monkeypatch, _EvalAndHookPlugin())
    recipe = make_recipe(tmp_path, tiny_dir, training={"max_steps": 1},
                         eval=[{"name": "calibration", "metrics": {"n": 3}}])
    res = cli("run", recipe, "--output", tmp_path / "run")
    assert res.exit_code == 4, res.output
    assert ("evaluator calibration failed on the tuned model: evaluator 'calibration' from plugin 'sentiment' "
            "returned no value for its primary metric 'ece'") in error_line(res)
    report = (tmp_path / "run" / "report.md").read_text()
    assert "Plugin sentiment: hooks failed" in report and "RuntimeError: no calibration cache" in report


def test_a_gated_evaluator_failing_on_the_base_model_stops_before_training(tmp_path, tiny_dir, monkeypatch):
    from test_run import cli, error_line, make_recipe

    _use_host(monkeypatch, _EvalPlugin())
    recipe = make_recipe(tmp_path, tiny_dir, training={"max_steps": 1},
                         eval=[{"name": "calibration", "metrics": {"n": 3}, "max": 0.2}])
    res = cli("run", recipe, "--output", tmp_path / "run")
    assert res.exit_code == 4, res.output  # not 3 (a gate), never 0
    line = error_line(res)
    assert ("evaluator calibration failed on the base model: evaluator 'calibration' from plugin 'sentiment' "
            "returned no value for its primary metric 'ece'") in line and "training did not start" in line
    assert "training (" not in res.output and not (tmp_path / "run" / "COMPLETE").exists()


# --------------------------------------------------------------------------- sources

def _gen_raises(options, ctx):
    yield {"text": "fine", "label": "pos"}
    raise OSError("connection reset")


class _SourcePlugin:
    @hookimpl
    def sftkit_register_sources(self, register):
        register("reviews", lambda o, c: [{"review": "great", "stars": 5}], emits="classification")
        register("unlabeled", lambda o, c: [{"text": "great"}], emits="classification")
        register("chatty", lambda o, c: [{"prompt": "hi", "completion": "hello"}], emits="classification")
        register("good", lambda o, c: [{"text": "great", "label": "pos"}, {"text": "awful", "label": "neg"}],
                 emits="classification")
        register("raises", _gen_raises)
        register("mixed", lambda o, c: [{"text": "a", "label": "x"}, {"text": 3, "label": "y"}])
        register("none", lambda o, c: None)
        register("number", lambda o, c: 42)
        register("strings", lambda o, c: ["a", "b"])


@pytest.mark.parametrize("source, message", [
    ("reviews", "source 'reviews' from plugin 'sentiment' declares emits='classification' but gave rows of no known "
                "kind (fields: review, stars; a classification row needs text, label)"),
    ("unlabeled", "declares emits='classification' but gave text rows (fields: text; a classification row needs "
                  "text, label)"),
    ("chatty", "declares emits='classification' but gave messages rows (fields: prompt, completion;"),
    ("raises", "source 'raises' from plugin 'sentiment' failed while yielding rows: OSError: connection reset"),
    ("mixed", "source 'mixed' from plugin 'sentiment' returned rows a dataset cannot hold: Arrow"),
    ("none", "source 'none' from plugin 'sentiment' returned NoneType: a source returns rows"),
    ("number", "source 'number' from plugin 'sentiment' returned int: a source returns rows"),
    ("strings", "source 'strings' from plugin 'sentiment' returned rows that are not dicts (row 1 is str)"),
])
def test_a_source_that_breaks_its_promise_is_blamed_not_the_data(tmp_path, source, message):
    from sftkit.data import load_data
    from sftkit.errors import PluginError

    host = make_host(entry_points=False, extra=(("sentiment", _SourcePlugin()),))
    with pytest.raises(PluginError) as info:
        load_data({"data": [{"source": source}]}, tmp_path, host=host)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_source_keeping_its_promise_loads_and_a_users_mapping_is_the_users(tmp_path):
    from sftkit.data import load_data

    host = make_host(entry_points=False, extra=(("sentiment", _SourcePlugin()),))
    bundle = load_data({"data": [{"source": "good"}], "dataset": {"eval_fraction": 0}}, tmp_path, host=host)
    assert sorted(r["label"] for r in bundle.train) == ["neg", "pos"]
    # a user's columns mapping makes the shape the user's: no blame on the plugin
    mapped = load_data({"data": [{"source": "reviews", "columns": {"text": "review", "label": "stars"}},
                                 {"source": "good"}], "dataset": {"eval_fraction": 0}}, tmp_path, host=host)
    assert "great" in [r["text"] for r in mapped.train]


# --------------------------------------------------------------------------- names and load-time checks

class _Shadows:
    @hookimpl
    def sftkit_register_sources(self, register):
        register("csv", lambda o, c: [{"text": "plugin", "label": "x"}], doc="Not sftkit's csv.")


def test_a_plugin_named_like_a_builtin_leaves_the_bare_name_to_the_builtin():
    host = make_host(entry_points=False, extra=(("sentiment", _Shadows()),))
    assert host.registry.get("sources", "csv").origin == "sftkit.builtin.sources"
    assert host.registry.get("sources", "sentiment:csv").origin == "sentiment"
    assert host.problems() == [] and host.notes() == [
        "plugin 'sentiment' registers source 'csv', a built-in name: recipes' bare 'csv' keeps meaning sftkit's; "
        "write 'sentiment:csv' to use the plugin's (renaming it avoids the prefix)"]
    assert ("sentiment:csv", host.registry.get("sources", "sentiment:csv")) in host.registry.addresses("sources")


def _plugin_registering(**kwargs):
    class Plugin:
        @hookimpl
        def sftkit_register_evaluators(self, register):
            register("calibration", kwargs.pop("factory", "json:loads"), doc="x", **kwargs)

    return Plugin()


@pytest.mark.parametrize("kwargs, why", [
    ({"schema": {"type": "object", "properties": {"bins": {"type": "integer", "default": 1, "minimum": 2}}}},
     "the option schema of evaluator 'calibration' is not valid: the default of option 'bins' (1) violates its own "
     "schema: 1 is less than the minimum of 2"),
    ({"schema": {"type": "object", "bins": {"type": "integer"}}},
     "the option schema of evaluator 'calibration' is not valid: unknown keyword(s) 'bins' at its top level: "
     "options go under \"properties\""),
    ({"factory": "json:laods"},
     "evaluator 'calibration': factory 'json:laods' names no 'laods' in module 'json'; did you mean \"loads\"?"),
    ({"factory": "sftkit.evaluation.calibraton:Calibration"},
     "evaluator 'calibration': factory 'sftkit.evaluation.calibraton:Calibration' names module "
     "'sftkit.evaluation.calibraton', which is not installed (a typo?)"),
])
def test_mistakes_a_plugin_makes_in_registration_fail_it_at_load_naming_it(kwargs, why):
    host = make_host(builtins=False, entry_points=False, extra=(("sentiment", _plugin_registering(**kwargs)),))
    (problem,) = host.problems()
    assert problem.startswith("plugin 'sentiment' failed to load: in sftkit_register_evaluators: ") and why in problem


def test_a_lazy_path_is_checked_without_importing_the_module():
    import subprocess

    code = ("import sys\nfrom sftkit.registry import lazy_path_problem as p\n"
            "assert p('torch.nn:Linear') is None and p('sftkit.strategies.trainer:no_such') is not None\n"
            "print(sorted(m for m in ('torch', 'transformers', 'sftkit.strategies.trainer') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- a slow plugin

SLOW_IMPORT = '''
import time
time.sleep(1.2)  # what importing torch at import time costs

@sftkit.hookimpl
def sftkit_register_sources(register):
    register("slow_rows", "json:loads", doc="x")
'''


def test_a_slow_plugin_is_named_on_light_commands_and_fails_plugins_strict(tmp_path):
    from test_plugin_isolation import make_site, sftkit

    site = make_site(tmp_path / "site", {"heavy": SLOW_IMPORT})
    code, out, err = sftkit(site, "--help")
    assert code == 0 and "Usage" in out
    (line,) = [x for x in err.splitlines() if x.startswith("warning:")]
    assert "over the budget of 1s that every sftkit command pays: 'heavy' 1." in line
    code, out, err = sftkit(site, "plugins", "--timings")
    assert code == 0 and "warning: loading plugins took" in err
    code, out, err = sftkit(site, "plugins", "--timings", "--strict")
    assert code == 1 and "error: loading plugins took" in err and "'heavy' 1." in err


# --------------------------------------------------------------------------- every mistake in one package

SENTIMENT_PRO = {
    # the plugin that loads: its mistakes show when recipes use it
    "sentiment_pro": '''
import time
import click
import sftkit
from sftkit.api import EvalResult

time.sleep(1.1)  # as if it imported torch at import time


class Calibration:
    primary = "ece"
    higher_is_better = False

    def __init__(self, options):
        self.options = options

    def evaluate(self, target, run):
        return EvalResult(metrics={"n": 3.0}, primary="ece")  # forgot the primary metric


def reviews(options, ctx):
    return [{"review": "great", "stars": 5}, {"review": "awful", "stars": 1}]


def broken(options, ctx):
    yield {"text": "fine", "label": "pos"}
    raise OSError("connection reset")


@sftkit.hookimpl
def sftkit_register_sources(register):
    register("reviews", "sentiment_pro:reviews", doc="Reviews.", emits="classification")
    register("broken", "sentiment_pro:broken", doc="Raises.")
    register("csv", "sentiment_pro:reviews", doc="Shadows sftkit's csv.")


@sftkit.hookimpl
def sftkit_register_evaluators(register):
    register("calibration", "sentiment_pro:Calibration", doc="ECE.", schema={"type": "object", "properties": {}})


@sftkit.hookimpl
def sftkit_run_start(run):
    raise RuntimeError("no calibration cache")
''',
    # the plugins that fail at load, each named
    "sentiment_pro_bounds": '''
import sftkit

@sftkit.hookimpl
def sftkit_register_evaluators(register):
    register("binned", "json:loads", doc="x",
             schema={"type": "object", "properties": {"bins": {"type": "integer", "default": 1, "minimum": 2}}})
''',
    "sentiment_pro_wrapper": '''
import sftkit

@sftkit.hookimpl
def sftkit_register_evaluators(register):
    register("unwrapped", "json:loads", doc="x", schema={"type": "object", "bins": {"type": "integer"}})
''',
    "sentiment_pro_typo": '''
import sftkit

@sftkit.hookimpl
def sftkit_register_evaluators(register):
    register("typo", "sentiment_pro:Calibraton", doc="x")
''',
}


def _sentiment_site(root: Path) -> Path:
    """One installed distribution, sftkit-sentiment-pro, with one entry point per module."""
    info = root / "sftkit_sentiment_pro-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sftkit-sentiment-pro\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[sftkit]\n" + "".join(f"{m} = {m}\n" for m in SENTIMENT_PRO))
    for module, source in SENTIMENT_PRO.items():
        (root / f"{module}.py").write_text(source)
    return root


def _one_line_errors(err: str) -> list[str]:
    assert "Traceback" not in err, err
    return [x for x in err.splitlines() if x.startswith("error:")]


def test_a_plugin_with_every_mistake_gets_one_line_plugin_named_messages_and_never_exit_0(tmp_path, tiny_dir):
    import tomli_w
    from test_plugin_isolation import sftkit

    site = _sentiment_site(tmp_path / "site")
    (tmp_path / "train.csv").write_text("prompt,completion\n" + "".join(f"q{i},a{i}\n" for i in range(24)))
    (tmp_path / "train.jsonl").write_text("".join(f'{{"prompt": "q{i}", "completion": "a{i}"}}\n' for i in range(24)))

    def recipe(name, data, **more):
        path = tmp_path / f"{name}.toml"
        path.write_text(tomli_w.dumps({
            "recipe": {"name": name}, "model": {"name": str(tiny_dir)}, "data": data,
            "template": {"formatter": "chatml"}, "strategy": {"name": "instruction"},
            "training": {"max_steps": 1, "per_device_train_batch_size": 2, "max_length": 64}} | more))
        return path

    # loading: each failed plugin named in one line, the shadowed built-in name noted, the slow plugin named
    code, out, err = sftkit(site, "plugins", "--timings", "--strict")
    errors = _one_line_errors(err)
    assert code == 1 and len(errors) == 4, err
    assert any("'sentiment_pro_bounds' failed to load" in e and "default of option 'bins' (1)" in e for e in errors)
    assert any("'sentiment_pro_wrapper' failed to load" in e and "options go under \"properties\"" in e
               for e in errors)
    assert any("'sentiment_pro_typo' failed to load" in e and "names no 'Calibraton'" in e for e in errors)
    assert any("loading plugins took" in e and "'sentiment_pro' 1." in e for e in errors)
    assert "note: plugin 'sentiment_pro' registers source 'csv', a built-in name" in err

    # a recipe that does not use the plugin means what it meant before it was installed
    code, out, err = sftkit(site, "validate", recipe("plain", [{"source": "csv", "path": "train.csv"}]))
    assert code == 0 and not _one_line_errors(err), out + err
    assert "warning: loading plugins took" in err  # a light command names the slow plugin

    # sources that break their promise: the plugin is blamed, in one line
    for source, expected in (("sentiment_pro:reviews", "declares emits='classification' but gave rows of no known kind"),
                             ("sentiment_pro:broken", "failed while yielding rows: OSError: connection reset")):
        code, out, err = sftkit(site, "preview", recipe("src", [{"source": source}], strategy={"name": "classification"}))
        (line,) = _one_line_errors(err)
        assert code == 1 and f"source '{source.split(':')[1]}' from plugin 'sentiment_pro'" in line and expected in line

    # an evaluator without its primary metric: exit 4 (never 0, never the gate's 3), the plugin named
    path = recipe("evald", [{"source": "jsonl", "path": "train.jsonl"}], eval=[{"name": "calibration"}],
                  output={"dir": str(tmp_path / "runs" / "{recipe.name}")})
    code, out, err = sftkit(site, "run", path)
    (line,) = _one_line_errors(err)
    assert code == 4 and "evaluator 'calibration' from plugin 'sentiment_pro' returned no value for its primary " \
                         "metric 'ece'" in line, err
    assert "Plugin sentiment_pro: hooks failed" in (tmp_path / "runs" / "evald" / "report.md").read_text()
    path = recipe("evald", [{"source": "jsonl", "path": "train.jsonl"}], eval=[{"name": "calibration", "max": 0.2}],
                  output={"dir": str(tmp_path / "runs" / "{recipe.name}")})
    code, out, err = sftkit(site, "run", path, "--overwrite")
    (line,) = _one_line_errors(err)
    assert code == 4, err
    assert "training did not start" in line and "from plugin 'sentiment_pro'" in line


class _CsvReviews:
    @hookimpl
    def sftkit_register_sources(self, register):
        register("reviews_csv", "json:loads", doc="x", emits="classification",
                 schema={"type": "object", "properties": {"path": {"type": "string"}}})


def test_validate_says_what_a_source_gives_not_the_columns_it_reads(tmp_path):
    from sftkit.validate import validate_file

    host = make_host(entry_points=False, extra=(("sentiment", _CsvReviews()),))
    (tmp_path / "reviews.csv").write_text("review,stars\ngreat,5\n")
    path = tmp_path / "r.toml"
    path.write_text('[recipe]\nname = "r"\n[model]\nname = "org/model"\n[[data]]\nsource = "reviews_csv"\n'
                    'path = "reviews.csv"\n[strategy]\nname = "instruction"\n')
    (problem,) = validate_file(path, host)
    assert problem.message == ("strategy 'instruction' trains on messages data, but this entry is classification data"
                               "; source 'reviews_csv' from plugin 'sentiment' declares emits='classification', rows "
                               "of text, label")
