"""Every shipped per-strategy recipe passes ``sftkit run --smoke`` (tiny random model of the same
architecture with the real tokenizer; two optimizer steps)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

RECIPES = Path(__file__).resolve().parent.parent / "sftkit" / "recipes"


@pytest.mark.real_model
@pytest.mark.parametrize("name", ["instruction", "tone", "classification", "domain"])
def test_shipped_recipe_smoke(name, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from sftkit.commands.run import run

    monkeypatch.setenv("SFTKIT_NO_PROGRESS", "1")
    recipe = RECIPES / f"{name}.toml"
    res = CliRunner().invoke(run, [str(recipe), "--smoke", "--output", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output[-3000:]
    d = tmp_path / "run"
    assert (d / "COMPLETE").exists() and (d / "model").is_dir()
    metrics = json.loads((d / "metrics.json").read_text())
    assert metrics["strategy"] == name and metrics["smoke"] is True
    assert metrics["train"]["steps"] == 2
    evals = tomllib.loads(recipe.read_text()).get("eval", [])
    assert len(metrics["eval"]) == len(evals)


def test_shipped_recipes_validate():
    from click.testing import CliRunner

    from sftkit.cli import cli

    paths = [str(RECIPES / f"{n}.toml") for n in ("instruction", "tone", "classification", "domain")]
    res = CliRunner().invoke(cli, ["validate", *paths])
    assert res.exit_code == 0, res.output
