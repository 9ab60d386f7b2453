"""The plugin host: entry points (a real pip-installed package), failures, duplicates, allow/deny lists."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sftkit import hookimpl
from sftkit.errors import PluginError
from sftkit.plugins import make_host

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def site_dir(tmp_path_factory):
    """sftkit-hello and sftkit-broken pip-installed into a directory put on PYTHONPATH."""
    target = tmp_path_factory.mktemp("site")
    for pkg in ("sftkit-hello", "sftkit-broken"):
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                        "--target", str(target), str(FIXTURES / pkg)], check=True, capture_output=True)
    return target


def sftkit(site_dir, *args, env=None, cwd=None):
    full_env = {**os.environ, "PYTHONPATH": str(site_dir), **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "sftkit.cli", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


def test_entry_point_plugin_is_listed_with_components_and_version(site_dir):
    code, out, err = sftkit(site_dir, "plugins", "--format", "json")
    assert code == 1, err  # sftkit-broken failed to load: one rule, any loading problem exits 1
    doc = json.loads(out)
    assert doc["errors"] == [next(p for p in doc["plugins"] if p["name"] == "broken")["error"].join(
        ["plugin 'broken' failed to load: ", ""])]
    by_name = {p["name"]: p for p in doc["plugins"]}
    hello = by_name["hello"]
    assert hello["dist"] == "sftkit-hello" and hello["version"] == "0.3.0"
    assert hello["components"] == {"sources": ["hello_rows"], "evaluators": ["hello_eval"]}
    assert "sftkit_register_commands" in hello["hooks"] and hello["commands"] == ["hello"]
    assert not any(p["builtin"] for p in doc["plugins"])


def test_failed_plugin_is_named_and_other_commands_still_work(site_dir):
    code, out, err = sftkit(site_dir, "plugins")
    assert code == 1 and "error: plugin 'broken' failed to load: ModuleNotFoundError" in err
    assert "broken" in out and "FAILED: ModuleNotFoundError" in out and "sftkit_dependency_that_is_not_installed" in out
    code, out, _ = sftkit(site_dir, "hello")
    assert code == 0 and "hello from sftkit-hello" in out


def test_plugin_component_options_are_validated(site_dir, tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('[recipe]\nname = "x"\n[model]\nname = "org/m"\n[[data]]\nsource = "hello_rows"\ngreting = "hi"\n'
                      '[strategy]\nname = "instruction"\n', encoding="utf-8")
    code, out, _ = sftkit(site_dir, "validate", str(recipe))
    assert code == 1
    assert "data[0].greting: unknown key 'greting'; did you mean \"greeting\"?" in out
    assert "data[0]: missing required key 'greeting'" in out


def test_recipe_needing_failed_plugin_gets_its_error(site_dir, tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('[recipe]\nname = "x"\nrequires = ["sftkit-broken"]\n[model]\nname = "org/m"\n[[data]]\n'
                      'source = "broken_source"\n[strategy]\nname = "instruction"\n', encoding="utf-8")
    code, out, _ = sftkit(site_dir, "validate", str(recipe))
    assert code == 1
    assert "requires 'sftkit-broken', but plugin 'broken' failed to load: ModuleNotFoundError" in out
    assert "unknown source 'broken_source'" in out and "plugin 'broken' failed to load" in out


def test_disable_and_load_plugins(site_dir):
    code, out, _ = sftkit(site_dir, "plugins", env={"SFTKIT_DISABLE_PLUGINS": "hello,sftkit-broken"})
    assert "hello" not in out and "broken" not in out
    code, out, _ = sftkit(site_dir, "plugins", env={"SFTKIT_LOAD_PLUGINS": "hello"})
    assert "hello" in out and "broken" not in out


class Misspelled:
    @hookimpl
    def sftkit_register_source(self, register):  # missing "s"
        pass


class DupA:
    @hookimpl
    def sftkit_register_sources(self, register):
        register("same", "json:loads")


class DupB:
    @hookimpl
    def sftkit_register_sources(self, register):
        register("same", "json:loads")


class Raises:
    @hookimpl
    def sftkit_register_evaluators(self, register):
        raise RuntimeError("boom")


class LazyBroken:
    @hookimpl
    def sftkit_register_sources(self, register):
        register("lazy", "no_such_module_xyz:factory")

    @hookimpl
    def sftkit_register_evaluators(self, register):
        def factory(options):
            raise ValueError("bad options")

        register("explodes", factory)


class LazyImportFails(LazyBroken):
    @hookimpl
    def sftkit_register_sources(self, register):
        register("lazy", "json.decoder:JSONDecoder.no_such_attribute")  # found at load, fails on import


def test_misspelled_hook_is_caught_with_suggestion():
    host = make_host(builtins=False, entry_points=False, extra=(("typo", Misspelled()),))
    info = next(p for p in host.plugins if p.name == "typo")
    assert "unknown hook 'sftkit_register_source'" in info.error
    assert 'did you mean "sftkit_register_sources"' in info.error


def test_duplicate_names_disable_the_name_for_both_and_name_both():
    host = make_host(builtins=False, entry_points=False, extra=(("first", DupA()), ("second", DupB())))
    assert host.registry.find("sources", "same") is None
    with pytest.raises(PluginError) as info:
        host.registry.get("sources", "same")
    assert str(info.value) == ("source 'same' is registered by plugins 'first' and 'second', so the bare name is "
                               "disabled; write 'first:same' or 'second:same' to pick one, or disable one plugin "
                               "with SFTKIT_DISABLE_PLUGINS")
    assert host.registry.get("sources", "first:same").origin == "first"
    assert host.registry.get("sources", "second:same").origin == "second"
    assert not host.failures  # both plugins load; only the clashing name is off


def test_plugin_raising_in_hook_is_named():
    host = make_host(builtins=False, entry_points=False, extra=(("raiser", Raises()),))
    assert host.problems() == ["plugin 'raiser' failed to load: raised in sftkit_register_evaluators: RuntimeError: boom"]


def test_lazy_factory_and_factory_errors_name_the_plugin():
    host = make_host(builtins=False, entry_points=False, extra=(("lazyplug", LazyBroken()),))
    # a lazy path naming no module fails its plugin when it loads, not after training
    assert host.problems() == ["plugin 'lazyplug' failed to load: in sftkit_register_sources: source 'lazy': factory "
                               "'no_such_module_xyz:factory' names module 'no_such_module_xyz', which is not "
                               "installed (a typo?)"]
    host = make_host(builtins=False, entry_points=False, extra=(("lazyplug", LazyImportFails()),))
    with pytest.raises(PluginError, match="source 'lazy' from plugin 'lazyplug' could not be imported"):
        host.registry.get("sources", "lazy").load()
    with pytest.raises(PluginError, match="evaluator 'explodes' from plugin 'lazyplug' failed: ValueError: bad options"):
        host.registry.get("evaluators", "explodes").create({})
    with pytest.raises(PluginError, match="unknown source 'lazzy'; did you mean \"lazy\""):
        host.registry.get("sources", "lazzy")
