"""The training stack's absence (the light core), decided in one place: commands say what to install
in one line (exit 2), and a model inside an uninstalled package is a validation note there."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from sftkit import stack
from sftkit.cli import SftkitGroup


def _group(exc: Exception) -> click.Group:
    @click.group(cls=SftkitGroup)
    def cli():
        pass

    @cli.command("train-something")
    def train_something():
        raise exc

    return cli


def test_a_command_hitting_the_missing_stack_says_what_to_install(monkeypatch):
    monkeypatch.setattr(stack, "_absent", lambda module: module == "torch")
    res = CliRunner().invoke(_group(ModuleNotFoundError("No module named 'torch'", name="torch")), ["train-something"])
    assert res.exit_code == 2
    assert res.output.strip() == ('error: sftkit train-something needs the training stack, which is not installed '
                                  '(no torch) — install it with: pip install "sftkit[train]"')


def test_other_import_errors_are_not_taken_for_the_stack(monkeypatch):
    monkeypatch.setattr(stack, "_absent", lambda module: True)
    res = CliRunner().invoke(_group(ModuleNotFoundError("No module named 'yaml'", name="yaml")), ["train-something"])
    assert res.exit_code == 1 and isinstance(res.exception, ModuleNotFoundError)
    monkeypatch.setattr(stack, "_absent", lambda module: False)  # torch is there: a broken install, not the core
    res = CliRunner().invoke(_group(ModuleNotFoundError("No module named 'torch._C'", name="torch._C")),
                             ["train-something"])
    assert isinstance(res.exception, ModuleNotFoundError)


@pytest.mark.parametrize("light", [True, False])
def test_a_model_in_an_uninstalled_package_is_a_note_only_without_the_stack(monkeypatch, tmp_path, light):
    from sftkit.builtin.loaders import check_transformers_reference

    monkeypatch.setattr(stack, "installed", lambda: not light)
    ctx = type("Ctx", (), {"base_dir": tmp_path})()
    problems = check_transformers_reference({"name": "package://no_such_pkg_xyz/model.gguf"}, ctx)
    assert len(problems) == 1 and "'no_such_pkg_xyz' is not installed" in problems[0].message
    assert problems[0].level == ("note" if light else "error")
    assert check_transformers_reference({"name": str(tmp_path / "nope")}, ctx)[0].level == "error"  # a path stays
