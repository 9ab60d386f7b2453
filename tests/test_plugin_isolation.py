"""Plugin isolation: every way a plugin can fail or collide, and the message the user sees.

Installed plugins are simulated with a temporary site directory (a ``*.dist-info`` with entry points
beside the plugin's module) on PYTHONPATH, and ``sftkit`` runs in a subprocess as a user runs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sftkit import hookimpl
from sftkit.errors import PluginError
from sftkit.plugins import call_hook, make_host

REPO = Path(__file__).resolve().parents[1]


def make_site(root: Path, plugins: dict[str, str]) -> Path:
    """One installed distribution ``sftkit-<name>`` per plugin, entry point ``name`` = module ``plug_<name>``."""
    root.mkdir(parents=True, exist_ok=True)
    for name, source in plugins.items():
        info = root / f"sftkit_{name}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: sftkit-{name}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[sftkit]\n{name} = plug_{name}\n")
        (root / f"plug_{name}.py").write_text("import click\nimport sftkit\n" + textwrap.dedent(source))
    return root


def sftkit(site: Path, *args, cwd=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SFTKIT_")}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(REPO)])
    env["SFTKIT_DISABLE_PLUGINS"] = "medical,code"  # only the plugins under test
    proc = subprocess.run([sys.executable, "-m", "sftkit.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=180)
    return proc.returncode, proc.stdout, proc.stderr


INLINE = 'source = "inline"\nrows = [{prompt = "Hi", completion = "Hello!"}]'


def write_recipe(directory: Path, source_lines: str = INLINE, name="r.toml") -> Path:
    (directory / "train.jsonl").write_text('{"prompt": "Hi", "completion": "Hello!"}\n')
    path = directory / name
    path.write_text(f'[recipe]\nname = "r"\n[model]\nname = "org/model"\n[[data]]\n{source_lines}\n'
                    '[strategy]\nname = "instruction"\n')
    return path


SHADOW_VALIDATE = '''
@sftkit.hookimpl
def sftkit_register_commands(cli):
    @cli.command("validate")
    @click.argument("paths", nargs=-1)
    def validate(paths):
        click.echo("everything is valid")

    @cli.command("shadow-extra")
    def extra():
        click.echo("extra")
'''

REMOVE_VALIDATE = '''
@sftkit.hookimpl
def sftkit_register_commands(cli):
    del cli.commands["validate"]
'''

EXIT_AT_IMPORT = '''
import sys
sys.exit(3)
'''

INTERRUPT_AT_IMPORT = '''
raise KeyboardInterrupt
'''

BAD_SCHEMA = '''
@sftkit.hookimpl
def sftkit_register_sources(register):
    register("typo_rows", "json:loads", schema={"type": "object", "properties": {"n": {"type": "integr"}}})
'''

JSONL_TOO = '''
@sftkit.hookimpl
def sftkit_register_sources(register):
    register("jsonl", "plug_jsonltoo:rows", doc="Another jsonl.",
             schema={"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"],
                     "additionalProperties": False})

def rows(options, ctx):
    return [{"prompt": "from jsonltoo", "completion": "yes"}]
'''

HELLO = '''
@sftkit.hookimpl
def sftkit_register_commands(cli):
    @cli.command("hello")
    def hello():
        click.echo("hello from {name}")
'''

IMPOSTOR = '''
@sftkit.hookimpl
def sftkit_register_commands(cli):
    @cli.command("helloa:hello")
    def hello():
        click.echo("hello from the impostor")
'''

SLOW = '''
import time
time.sleep(0.3)

@sftkit.hookimpl
def sftkit_register_sources(register):
    register("slow_rows", "json:loads", doc="x")
'''


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("site")
    return make_site(root, {
        "shadow": SHADOW_VALIDATE, "remover": REMOVE_VALIDATE, "exiter": EXIT_AT_IMPORT,
        "interrupter": INTERRUPT_AT_IMPORT, "badschema": BAD_SCHEMA, "jsonltoo": JSONL_TOO,
        "helloa": HELLO.format(name="a"), "hellob": HELLO.format(name="b"), "slow": SLOW, "impostor": IMPOSTOR,
    })


def test_a_plugin_command_cannot_change_validates_verdict(site, tmp_path):
    bad = write_recipe(tmp_path, 'source = "csv"\npath = "missing.csv"')
    code, out, err = sftkit(site, "validate", bad)
    assert code == 1 and "file not found: 'missing.csv'" in out and "everything is valid" not in out
    code, out, err = sftkit(site, "plugins")
    assert code == 1
    assert ("error: plugin 'shadow' failed to load: adds command(s) 'validate', which sftkit itself provides: refused "
            "(rename the plugin's command)") in err
    # the plugin is removed entirely: its other command is gone too
    code, _, err = sftkit(site, "shadow-extra")
    assert code == 2 and "No such command 'shadow-extra'" in err


def test_a_plugin_cannot_remove_a_core_command(site, tmp_path):
    good = write_recipe(tmp_path)
    code, out, err = sftkit(site, "validate", good)
    assert code == 0, out + err
    code, out, err = sftkit(site, "plugins")
    assert "error: plugin 'remover' failed to load: raised in sftkit_register_commands: KeyError: 'validate'" in err


def test_exit_and_interrupt_at_import_are_contained(site, tmp_path):
    code, out, err = sftkit(site, "validate", write_recipe(tmp_path))
    assert code == 0, out + err  # not 3 (the gate-failed code), not an interrupted run
    code, out, err = sftkit(site, "plugins")
    assert code == 1
    assert "error: plugin 'exiter' failed to load: SystemExit(3) at import" in err
    assert "error: plugin 'interrupter' failed to load: KeyboardInterrupt at import" in err


def test_an_invalid_option_schema_fails_its_plugin_not_validate(site, tmp_path):
    recipe = write_recipe(tmp_path, 'source = "typo_rows"\nn = 3')
    code, out, err = sftkit(site, "validate", recipe)
    assert code == 1 and "Traceback" not in err
    assert ("data[0].source: unknown source 'typo_rows'" in out
            and "plugin 'badschema' failed to load: in sftkit_register_sources: the option schema of source "
                "'typo_rows' is not valid: 'integr' is not valid under any of the given schemas (at properties.n.type)"
            in out)


def test_a_plugin_never_takes_a_builtins_bare_name(site, tmp_path):
    code, out, _ = sftkit(site, "validate", write_recipe(tmp_path, 'source = "csv"\npath = "train.jsonl"'))
    assert code == 0, out  # a recipe not using "jsonl" is untouched
    code, out, err = sftkit(site, "validate", write_recipe(tmp_path, 'source = "jsonl"\npath = "train.jsonl"'))
    assert code == 0, out + err  # nor is one using the built-in's name: installing a plugin changes no recipe
    for address in ("sftkit:jsonl", "jsonltoo:jsonl"):
        code, out, err = sftkit(site, "validate", write_recipe(tmp_path, f'source = "{address}"\npath = "train.jsonl"'))
        assert code == 0, out + err
    _, _, err = sftkit(site, "plugins")
    assert ("note: plugin 'jsonltoo' registers source 'jsonl', a built-in name: recipes' bare 'jsonl' keeps meaning "
            "sftkit's; write 'jsonltoo:jsonl' to use the plugin's (renaming it avoids the prefix)\n") in err


def test_a_qualified_address_picks_the_component_when_loading_data(site, tmp_path, monkeypatch):
    from sftkit.data import load_data

    monkeypatch.syspath_prepend(str(site))
    import plug_jsonltoo

    host = make_host(entry_points=False, extra=(("jsonltoo", plug_jsonltoo),))
    write_recipe(tmp_path)
    for address, expected in (("jsonltoo:jsonl", "from jsonltoo"), ("sftkit:jsonl", "Hi")):
        bundle = load_data({"data": [{"source": address, "path": "train.jsonl"}]}, tmp_path, host=host)
        assert bundle.train[0]["messages"][0]["content"] == expected


def test_a_command_two_plugins_add_is_disabled_and_names_both(site):
    code, out, err = sftkit(site, "hello")
    assert code == 1 and err.strip() == ("error: command 'hello' is added by plugins 'helloa' and 'hellob', so it "
                                         "is disabled; run 'helloa:hello' or 'hellob:hello', or disable one "
                                         "plugin with SFTKIT_DISABLE_PLUGINS")
    for plugin in ("a", "b"):  # each stays reachable by its qualified name
        code, out, err = sftkit(site, f"hello{plugin}:hello")
        assert code == 0 and out == f"hello from {plugin}\n", err


def test_a_command_name_with_a_colon_is_refused(site):
    code, out, err = sftkit(site, "plugins")
    assert ("error: plugin 'impostor' failed to load: adds command(s) 'helloa:hello': a command name may not "
            "contain ':' (sftkit adds 'plugin:name' itself)") in err
    assert "  commands: hello (helloa:hello; the bare name clashes)" in out


def test_plugins_lists_commands_and_load_times(site):
    code, out, err = sftkit(site, "plugins", "--timings", "--format", "json")
    assert code == 1  # some of this site's plugins fail: one exit-code rule
    doc = json.loads(out)
    rows = {p["name"]: p for p in doc["plugins"]}
    assert rows["helloa"]["commands"] == ["hello"] and rows["shadow"]["commands"] == []
    assert rows["helloa"]["qualified_commands"] == ["helloa:hello"]
    assert rows["slow"]["load_s"] >= 0.3 and rows["slow"]["error"] is None
    code, out, _ = sftkit(site, "plugins", "--timings")
    assert "slow (sftkit-slow 1.0)  loaded in 0.3" in out and "all plugins loaded in" in out


# --------------------------------------------------------------------------- in process

class RegistersThenRaises:
    @hookimpl
    def sftkit_register_sources(self, register):
        register("half", "json:loads")

    @hookimpl
    def sftkit_register_commands(self, cli):
        @cli.command("half-command")
        def half():
            pass

    @hookimpl
    def sftkit_register_strategies(self, register):
        raise RuntimeError("strategy table corrupted")

    @hookimpl
    def sftkit_run_start(self, run):
        raise AssertionError("never called: the plugin did not load")


def test_a_plugin_failing_at_registration_is_removed_entirely():
    host = make_host(entry_points=False, extra=(("half", RegistersThenRaises()),))
    (info,) = [p for p in host.plugins if p.name == "half"]
    assert info.error == "raised in sftkit_register_strategies: RuntimeError: strategy table corrupted"
    assert host.registry.by_origin("half") == [] and host.registry.find("sources", "half:half") is None
    assert "half-command" not in host.commands and not host.pm.has_plugin("half")
    assert call_hook(host, "sftkit_run_start", run=None) == []


class Lifecycle:
    def __init__(self, seen):
        self.seen = seen

    @hookimpl
    def sftkit_run_start(self, run):
        raise SystemExit(2)

    @hookimpl
    def sftkit_run_end(self, run, metrics):
        raise ValueError("dashboard unreachable")


class Spy:
    def __init__(self, seen):
        self.seen = seen

    @hookimpl
    def sftkit_run_end(self, metrics):  # a subset of the spec's arguments is allowed
        self.seen.append(metrics)


def test_call_hook_names_the_failing_plugin_and_runs_the_others():
    seen, warned = [], []
    host = make_host(builtins=False, entry_points=False, extra=(("spy", Spy(seen)), ("flaky", Lifecycle(seen))))
    assert call_hook(host, "sftkit_run_start", warned.append, run=None) == [
        "plugin 'flaky' failed in sftkit_run_start: SystemExit: 2"]
    assert call_hook(host, "sftkit_run_end", warned.append, run=None, metrics={"m": 1}) == [
        "plugin 'flaky' failed in sftkit_run_end: ValueError: dashboard unreachable"]
    assert seen == [{"m": 1}] and warned[0].startswith("warning: plugin 'flaky'")


class Wraps:
    """A new-style wrapper around the other plugins' run_start, and an old-style one around run_end."""

    def __init__(self, seen):
        self.seen = seen

    @hookimpl
    def sftkit_register_sources(self, register):
        register("wrapped_rows", "json:loads")

    @hookimpl(wrapper=True)
    def sftkit_run_start(self, run):
        self.seen.append("wrapper ran")
        return (yield)

    @hookimpl(hookwrapper=True)
    def sftkit_run_end(self, run, metrics):
        yield


def test_a_hook_wrapper_is_refused_when_its_plugin_loads():
    """pluggy runs a wrapper around every other plugin's implementation of the hook, seeing and able
    to replace their results and errors; sftkit calls each implementation on its own, isolated, so a
    wrapper would either break isolation or silently never run: the plugin is refused, named."""
    seen: list = []
    host = make_host(builtins=False, entry_points=False, extra=(("wraps", Wraps(seen)), ("spy", Spy(seen))))
    assert host.problems() == [
        "plugin 'wraps' failed to load: implements 'sftkit_run_end', 'sftkit_run_start' as a hook wrapper: "
        "refused (sftkit calls each plugin's hook on its own, so one plugin cannot see or change another's "
        "results or errors; drop wrapper=True / hookwrapper=True)"]
    assert not host.pm.has_plugin("wraps") and host.registry.find("sources", "wrapped_rows") is None
    assert call_hook(host, "sftkit_run_end", run=None, metrics={"m": 1}) == [] and seen == [{"m": 1}]


def test_a_registration_error_names_the_plugin_and_the_stage():
    class Nameless:
        @hookimpl
        def sftkit_register_evaluators(self, register):
            register("has:colon", "json:loads")

    host = make_host(builtins=False, entry_points=False, extra=(("nameless", Nameless()),))
    assert host.problems() == ["plugin 'nameless' failed to load: in sftkit_register_evaluators: invalid "
                               "evaluator name 'has:colon': use a non-empty string without ':'"]
    with pytest.raises(PluginError, match="unknown evaluator 'has:colon'"):
        host.registry.get("evaluators", "has:colon")


def test_a_name_registered_twice_fails_only_its_plugin(tmp_path):
    from sftkit.validate import validate_file

    class Twice:
        @hookimpl
        def sftkit_register_sources(self, register):
            register("rows", "json:loads")
            register("rows", "json:dumps")

    host = make_host(entry_points=False, extra=(("twice", Twice()),))
    assert host.problems() == ["plugin 'twice' failed to load: in sftkit_register_sources: registered source "
                               "'rows' twice"]
    assert validate_file(write_recipe(tmp_path), host) == []  # recipes not using it are unaffected
    problems = validate_file(write_recipe(tmp_path, 'source = "rows"', name="uses.toml"), host)
    (problem,) = problems
    assert problem.message.startswith("unknown source 'rows' (available: ")
    assert problem.message.endswith(" — note: plugin 'twice' failed to load: in sftkit_register_sources: "
                                    "registered source 'rows' twice")


def test_a_failing_health_finding_hook_is_a_finding_naming_the_plugin():
    from sftkit.reporting import plugin_findings

    class Health:
        @hookimpl
        def sftkit_health_findings(self, run, metrics):
            return [{"level": "loud", "code": "x", "title": "t", "detail": "d", "fix": "f"}]

    class Good:
        @hookimpl
        def sftkit_health_findings(self, metrics):
            return [{"level": "info", "code": "ok", "title": "fine", "detail": "", "fix": ""}]

    host = make_host(builtins=False, entry_points=False, extra=(("loud", Health()), ("good", Good())))
    found = {f["title"]: f for f in plugin_findings(None, {}, host)}
    assert set(found) == {"fine", "Plugin loud: health check failed"}  # the other plugin's still shown
    failed = found["Plugin loud: health check failed"]
    assert failed["level"] == "warning"
    assert failed["detail"].startswith("its sftkit_health_findings raised ValueError: {'level': 'loud'")
