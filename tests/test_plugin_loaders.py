"""Model loaders (``[model] loader = "NAME"``): a plugin's loader (tests/fixtures/archive_loader.py, the
example on docs/plugins.md) is validated like any component and loads the model of a real run."""

from __future__ import annotations

import json
import sys
import tarfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
import archive_loader  # noqa: E402

from sftkit.errors import PluginError  # noqa: E402
from sftkit.testing import check_plugin, make_plugin_host  # noqa: E402


@pytest.fixture
def sftkit_plugin():
    return archive_loader


@pytest.fixture
def archive(sftkit_tiny_model, tmp_path, monkeypatch):
    """The tiny model, only as ``tiny.tar.gz`` (directory ``weights/`` inside), and a fresh cache."""
    monkeypatch.setenv("SFTKIT_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "tiny.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(sftkit_tiny_model, arcname="weights")
    return path


def test_the_loader_plugin_conforms():
    check_plugin(archive_loader)


def test_a_plugin_loader_loads_the_model_of_a_real_run(sftkit_run, sftkit_recipe, sftkit_tiny_model, archive):
    recipe = sftkit_recipe(model={"name": archive.name, "loader": "archive", "subdir": "weights"})
    lines: list[str] = []
    outcome = sftkit_run(recipe, smoke=False, console=lines.append)
    assert (outcome.run_dir / "COMPLETE").exists()
    assert lines.count("unpacking tiny.tar.gz...") == 1  # tokenizer and model: unpacked once, then cached
    trained = json.loads((outcome.run_dir / "model" / "config.json").read_text())
    tiny = json.loads((Path(sftkit_tiny_model) / "config.json").read_text())
    assert trained["model_type"] == tiny["model_type"] and trained["hidden_size"] == tiny["hidden_size"]


def test_a_smoke_run_reads_the_architecture_through_the_loader(sftkit_run, sftkit_recipe, archive):
    recipe = sftkit_recipe(model={"name": archive.name, "loader": "archive", "subdir": "weights"})
    outcome = sftkit_run(recipe)
    assert (outcome.run_dir / "COMPLETE").exists()


def test_validate_runs_the_loaders_schema_and_check(sftkit_cli, sftkit_recipe, archive):
    ok = sftkit_recipe(model={"name": archive.name, "loader": "archive"})
    result = sftkit_cli("validate", ok)
    assert result.exit_code == 0, result.output
    gone = sftkit_recipe(model={"name": "gone.tar.gz", "loader": "archive", "subdirr": "weights"})
    result = sftkit_cli("validate", gone)
    assert result.exit_code == 1
    assert "model.subdirr: unknown key 'subdirr'; did you mean \"subdir\"?" in result.output
    typo = sftkit_recipe(model={"name": archive.name, "loader": "archiv"})
    result = sftkit_cli("validate", typo)
    assert result.exit_code == 1 and "model.loader: unknown model loader 'archiv'; did you mean \"archive\"?" in result.output
    result = sftkit_cli("validate", sftkit_recipe(model={"name": "gone.tar.gz", "loader": "archive"}))
    assert result.exit_code == 1
    assert ".toml:" in result.output and "model.name: no model archive 'gone.tar.gz'" in result.output
    # without a loader the built-in one (registered like any other) judges the name: a file but not a model
    result = sftkit_cli("validate", sftkit_recipe(model={"name": archive.name}))
    assert result.exit_code == 1 and "is a file but not a .gguf" in result.output


class _Broken:
    class Raises:
        def __init__(self, options):
            pass

        def source(self, ref, base_dir, console=None):
            raise RuntimeError("disk on fire")

    class Wrong(Raises):
        def source(self, ref, base_dir, console=None):
            return "/some/dir"

    @staticmethod
    @__import__("sftkit").hookimpl
    def sftkit_register_model_loaders(register):
        register("raises", _Broken.Raises)
        register("wrong", _Broken.Wrong)


def test_a_failing_loader_is_named_in_one_line(tmp_path):
    from sftkit.modeling.loaders import model_source

    host = make_plugin_host(_Broken)
    with pytest.raises(PluginError) as err:
        model_source({"name": "m", "loader": "raises"}, tmp_path, host=host)
    assert err.value.message == "model loader 'raises' from plugin '_Broken' failed on 'm': RuntimeError: disk on fire"
    with pytest.raises(PluginError) as err:
        model_source({"name": "m", "loader": "wrong"}, tmp_path, host=host)
    assert "model loader 'wrong' from plugin '_Broken' returned '/some/dir' for 'm', not a sftkit.api.ModelSource" \
        in err.value.message
    src = model_source({"name": "org/model"}, tmp_path, host=host)  # the default loader is a built-in
    assert (src.kind, src.name) == ("hub", "org/model")


class _Impostor:
    """Registers a model loader and a formatter under sftkit's default names."""

    @staticmethod
    @__import__("sftkit").hookimpl
    def sftkit_register_model_loaders(register):
        register("transformers", _Broken.Raises)

    @staticmethod
    @__import__("sftkit").hookimpl
    def sftkit_register_formatters(register):
        register("chat", "json:loads")


def test_a_plugin_reusing_a_default_name_changes_no_recipe(tmp_path):
    from sftkit.modeling.loaders import model_source
    from sftkit.recipe import load_recipe
    from sftkit.validate import validate_file

    host = make_plugin_host(_Impostor)
    (tmp_path / "train.jsonl").write_text('{"prompt": "a", "completion": "b"}\n')
    plain = tmp_path / "plain.toml"  # names neither a loader nor a formatter: sftkit's defaults
    plain.write_text('[recipe]\nname = "r"\n[model]\nname = "org/model"\n[template]\nsystem = "Be brief."\n'
                     '[[data]]\nsource = "jsonl"\npath = "train.jsonl"\n[strategy]\nname = "instruction"\n')
    assert validate_file(plain, host) == []
    resolved = load_recipe(plain, host=host).config
    assert resolved.model.loader == "sftkit:transformers" and resolved.template.formatter == "sftkit:chat"
    assert model_source(resolved.model.as_dict(), tmp_path, host=host).kind == "hub"  # the built-in, not the impostor
    named = tmp_path / "named.toml"  # the bare name stays sftkit's: installing the plugin changes nothing
    named.write_text(plain.read_text().replace('name = "org/model"\n', 'name = "org/model"\nloader = "transformers"\n'))
    assert validate_file(named, host) == []
    assert model_source(load_recipe(named, host=host).config.model.as_dict(), tmp_path, host=host).kind == "hub"
    assert host.registry.get("model_loaders", "_Impostor:transformers").origin == "_Impostor"
    assert any("'_Impostor:transformers'" in note for note in host.notes())


def test_extends_rebases_only_references_sftkits_own_loader_reads(tmp_path):
    """A parent recipe's relative model directory is made absolute for the child; a plugin loader's
    reference ("s3://bucket/m") is the plugin's to read and stays as written."""
    from sftkit.reading import read_recipe

    (tmp_path / "base" / "models" / "m").mkdir(parents=True)
    (tmp_path / "child").mkdir()
    parent = '[recipe]\nname = "p"\n[model]\nname = "models/m"\n'
    (tmp_path / "base" / "own.toml").write_text(parent)
    (tmp_path / "base" / "plugin.toml").write_text(parent.replace('"models/m"', '"s3://bucket/m"\nloader = "s3"'))
    for name, expected in (("own", str((tmp_path / "base" / "models" / "m").resolve())), ("plugin", "s3://bucket/m")):
        child = tmp_path / "child" / f"{name}.toml"
        child.write_text(f'[recipe]\nname = "c"\nextends = "../base/{name}.toml"\n')
        recipe, problems = read_recipe(child)
        assert not problems and recipe.data["model"]["name"] == expected
