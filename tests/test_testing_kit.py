"""sftkit.testing: the pytest plugin for plugin authors and the conformance check."""

import json
import os
import subprocess
import sys
import textwrap
import types
from importlib.metadata import entry_points
from pathlib import Path

import pytest

import sftkit
from sftkit.testing import check_plugin, plugin_problems

REPO = Path(__file__).resolve().parents[1]


def make_plugin(name="good_plugin", **hooks):
    module = types.ModuleType(name)
    for hook_name, fn in hooks.items():
        setattr(module, hook_name, fn)
    return module


def sources_hook(*registrations):
    @sftkit.hookimpl
    def sftkit_register_sources(register):
        for args, kwargs in registrations:
            register(*args, **kwargs)

    return sftkit_register_sources


GOOD_SCHEMA = {"type": "object", "additionalProperties": False,
               "properties": {"n": {"type": "integer", "minimum": 1, "default": 3}}}


def test_pytest_plugin_is_registered_and_imports_nothing_heavy():
    assert any(ep.value == "sftkit.testing" for ep in entry_points(group="pytest11"))
    code = ("import json, sys, sftkit.testing\n"
            "print(json.dumps([m for m in ('torch', 'transformers', 'trl', 'datasets', 'peft', 'numpy', "
            "'pyarrow', 'matplotlib', 'jsonschema') if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_check_plugin_accepts_a_conforming_plugin():
    plugin = make_plugin(sftkit_register_sources=sources_hook(
        (("good_source", "sftkit.testing:make_plugin_host"), {"schema": GOOD_SCHEMA, "doc": "A source."})))
    host = check_plugin(plugin, check_imports=False)
    assert host.registry.get("sources", "good_source").origin == "good_plugin"


@pytest.mark.parametrize("registration, expected", [
    ((("bad_schema", "sftkit.testing:make_plugin_host"),
      {"schema": {"type": "object", "properties": {"n": {"type": "nope"}}}, "doc": "x"}),
     "does not load: in sftkit_register_sources: the option schema of source 'bad_schema' is not valid: "
     "'nope' is not valid under any of the given schemas (at properties.n.type)"),
    ((("bad_default", "sftkit.testing:make_plugin_host"),
      {"schema": {"type": "object", "properties": {"n": {"type": "integer", "default": "3"}}}, "doc": "x"}),
     "does not load: in sftkit_register_sources: the option schema of source 'bad_default' is not valid: the "
     "default of option 'n' ('3') violates its own schema: '3' is not of type 'integer'"),
    ((("bad_bounds", "sftkit.testing:make_plugin_host"),
      {"schema": {"type": "object", "properties": {"bins": {"type": "integer", "default": 1, "minimum": 2}}},
       "doc": "x"}),
     "the default of option 'bins' (1) violates its own schema: 1 is less than the minimum of 2"),
    ((("no_wrapper", "sftkit.testing:make_plugin_host"),
      {"schema": {"type": "object", "bins": {"type": "integer"}}, "doc": "x"}),
     "the option schema of source 'no_wrapper' is not valid: unknown keyword(s) 'bins' at its top level: options "
     "go under \"properties\""),
    ((("jsonl", "sftkit.testing:make_plugin_host"), {"doc": "x"}),
     "plugin 'good_plugin' registers source 'jsonl', a built-in name: recipes' bare 'jsonl' keeps meaning "
     "sftkit's; write 'good_plugin:jsonl' to use the plugin's"),
    ((("lazy", "no_such_module_xyz:factory"), {"doc": "x"}),
     "factory 'no_such_module_xyz:factory' names module 'no_such_module_xyz', which is not installed (a typo?)"),
    ((("typo", "sftkit.testing:make_plugin_hots"), {"doc": "x"}),
     "factory 'sftkit.testing:make_plugin_hots' names no 'make_plugin_hots' in module 'sftkit.testing'; did you "
     "mean \"make_plugin_host\"?"),
    ((("not_lazy", "sftkit.testing.make_plugin_host"), {"doc": "x"}), "is not a \"module:attr\" string"),
    ((("checked", "sftkit.testing:make_plugin_host"), {"doc": "x", "check": "sftkit.testing:nothing_here"}),
     "check 'sftkit.testing:nothing_here' names no 'nothing_here' in module 'sftkit.testing'"),
    ((("undocumented", "sftkit.testing:make_plugin_host"), {}), "has no doc"),
])
def test_check_plugin_names_each_problem(registration, expected):
    plugin = make_plugin(sftkit_register_sources=sources_hook(registration))
    with pytest.raises(AssertionError) as info:
        check_plugin(plugin, check_imports=False)
    assert expected in str(info.value) and "plugin 'good_plugin' does not conform" in str(info.value)


def test_check_plugin_rejects_hooks_that_match_no_spec():
    @sftkit.hookimpl
    def sftkit_register_source(register):  # misspelled
        pass

    def sftkit_register_evaluators(register):  # not decorated
        pass

    problems = plugin_problems(make_plugin(sftkit_register_source=sftkit_register_source), check_imports=False)
    assert problems == ["plugin 'good_plugin' does not load: implements unknown hook 'sftkit_register_source' "
                        "(did you mean \"sftkit_register_sources\"?)"]

    @sftkit.hookimpl
    def sftkit_register_formatters(registr):  # wrong argument name
        pass

    problems = plugin_problems(make_plugin(sftkit_register_formatters=sftkit_register_formatters), check_imports=False)
    assert len(problems) == 1 and "does not load" in problems[0] and "registr" in problems[0]
    problems = plugin_problems(make_plugin(sftkit_register_evaluators=sftkit_register_evaluators), check_imports=False)
    assert problems[0] == "sftkit_register_evaluators is not decorated with @sftkit.hookimpl, so sftkit never calls it"
    assert "implements no sftkit hook" in problems[1]


def test_check_plugin_reports_a_raising_hook_and_bad_recipes(tmp_path):
    @sftkit.hookimpl
    def sftkit_register_sources(register):
        raise RuntimeError("boom")

    problems = plugin_problems(make_plugin(sftkit_register_sources=sftkit_register_sources), check_imports=False)
    assert problems == ["plugin 'good_plugin' does not load: raised in sftkit_register_sources: RuntimeError: boom"]

    @sftkit.hookimpl
    def sftkit_register_recipes(register):
        (tmp_path / "nameless.toml").write_text("[model]\nname = 'x'\n")
        register("missing", str(tmp_path / "nope.toml"), doc="x")
        register("nameless", str(tmp_path / "nameless.toml"), doc="x")

    problems = plugin_problems(make_plugin(sftkit_register_recipes=sftkit_register_recipes), check_imports=False)
    assert any("recipe 'missing'" in p and "does not exist" in p for p in problems)
    assert any("recipe 'nameless'" in p and "has no [recipe] name" in p for p in problems)


def test_check_plugin_catches_heavy_imports(tmp_path, monkeypatch):
    (tmp_path / "heavy_plugin_mod.py").write_text(textwrap.dedent('''
        import numpy  # a plugin module imported by `sftkit plugins` must stay light
        import sftkit

        @sftkit.hookimpl
        def sftkit_register_sources(register):
            register("heavy", "heavy_plugin_mod:factory", doc="x")

        def factory(options, ctx):
            return []
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    problems = plugin_problems("heavy_plugin_mod")
    assert problems == ["importing heavy_plugin_mod imports numpy: import heavy libraries inside factories, "
                        "so `sftkit validate` and `sftkit plugins` stay light"]


def test_check_plugin_enforces_an_import_time_budget(tmp_path, monkeypatch):
    (tmp_path / "slow_plugin_mod.py").write_text(textwrap.dedent('''
        import time
        import sftkit

        time.sleep(0.5)  # e.g. reading a large file at import

        @sftkit.hookimpl
        def sftkit_register_sources(register):
            register("slow", "slow_plugin_mod:factory", doc="x")

        def factory(options, ctx):
            return []
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    (problem,) = plugin_problems("slow_plugin_mod", import_budget_s=0.25)
    assert problem.startswith("importing slow_plugin_mod took ") and problem.endswith(
        "s, over the budget of 0.25s: every sftkit command pays it (`sftkit plugins --timings`); move slow work "
        "into factories")


def test_check_plugin_validates_shipped_recipes_fully(tmp_path):
    (tmp_path / "shipped.toml").write_text(
        '[recipe]\nname = "shipped"\nrequires = ["not-installed-here"]\n[model]\nname = "package://nope/m.gguf"\n'
        '[[data]]\nsource = "jsonll"\npath = "d.jsonl"\n[strategy]\nname = "instructio"\n[training]\nmax_step = 3\n')

    @sftkit.hookimpl
    def sftkit_register_recipes(register):
        register("shipped", str(tmp_path / "shipped.toml"), doc="x")

    problems = plugin_problems(make_plugin(sftkit_register_recipes=sftkit_register_recipes), check_imports=False)
    where = f"recipe 'shipped': {tmp_path / 'shipped.toml'}"
    assert len(problems) == 3  # the model and requires depend on the machine the check runs on: not judged
    assert problems[0].startswith(f"{where}:7:1: data[0].source: unknown source 'jsonll'; did you mean \"jsonl\"?")
    assert problems[1].startswith(f"{where}:10:1: strategy.name: unknown strategy 'instructio'; "
                                  "did you mean \"instruction\"?")
    assert problems[2] == f"{where}:12:1: training.max_step: unknown key 'max_step'; did you mean \"max_steps\"?"


def test_host_is_isolated_from_installed_plugins(sftkit_host):
    from sftkit.plugins import get_host

    assert get_host() is sftkit_host  # the process-wide host during the test
    assert all(p.builtin for p in sftkit_host.plugins)  # no sftkit_plugin given: built-ins only
    assert sftkit_host.registry.find("sources", "jsonl") is not None


def test_recipe_factory_writes_valid_recipes(sftkit_recipe, sftkit_host):
    from sftkit.validate import validate_file

    path = sftkit_recipe()
    assert validate_file(path, sftkit_host, ()) == []
    other = sftkit_recipe(training={"max_steps": 3}, adapter={"r": 4}, output=None, recipe={"name": "custom"})
    from sftkit.recipe import load_recipe

    config = load_recipe(other, host=sftkit_host).config
    assert config.recipe.name == "custom" and other.name == "custom.toml"
    assert config.training.max_steps == 3 and config.training.max_length == 64  # merged
    assert config.adapter.r == 4 and config.output.dir == "runs/{recipe.name}"  # removed -> default
    sftkit_recipe.write_jsonl("more.jsonl", [{"text": "hello there"}])
    text_recipe = sftkit_recipe(data=[{"source": "jsonl", "path": "more.jsonl"}], strategy={"name": "domain"})
    assert validate_file(text_recipe, sftkit_host, ()) == []


def test_run_fixture_trains_two_steps(sftkit_recipe, sftkit_run):
    outcome = sftkit_run(sftkit_recipe())
    assert (outcome.run_dir / "COMPLETE").exists() and (outcome.run_dir / "model").is_dir()
    log = [json.loads(line) for line in (outcome.run_dir / "train_log.jsonl").read_text().splitlines()]
    assert max(entry.get("step", 0) for entry in log) == 2


def test_plugin_author_project_uses_the_fixtures(tmp_path):
    """A plugin author's own test suite, run by pytest in a subprocess: fixtures come from the
    pytest11 entry point alone (no conftest import of sftkit.testing)."""
    (tmp_path / "author_plugin.py").write_text(textwrap.dedent('''
        import sftkit

        @sftkit.hookimpl
        def sftkit_register_sources(register):
            register("greetings", "author_plugin:greetings", doc="Two greetings.",
                     schema={"type": "object", "additionalProperties": False,
                             "properties": {"n": {"type": "integer", "minimum": 1, "default": 2}}})

        def greetings(options, ctx):
            return [{"prompt": f"Say hi {i}", "completion": f"Hi {i}!"} for i in range(8)]
    '''))
    (tmp_path / "pytest.ini").write_text("[pytest]\nsftkit_plugin = author_plugin\n")
    (tmp_path / "test_author.py").write_text(textwrap.dedent('''
        from sftkit.testing import check_plugin

        def test_conforms(sftkit_plugin):
            check_plugin(sftkit_plugin)

        def test_isolated_host(sftkit_host):
            assert sftkit_host.registry.get("sources", "greetings").origin == "author_plugin"

        def test_cli(sftkit_cli, sftkit_recipe):
            path = sftkit_recipe(data=[{"source": "greetings"}])
            result = sftkit_cli("validate", path)
            assert result.exit_code == 0, result.output
            assert "greetings" in sftkit_cli("plugins", "--all").output
    '''))
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    env.pop("PYTEST_ADDOPTS", None)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                          cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "3 passed" in proc.stdout
