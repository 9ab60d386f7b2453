"""Every shipped per-strategy recipe passes ``sftkit run --smoke`` (tiny random model of the same
architecture with the real tokenizer; two optimizer steps)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tomllib

RECIPES = Path(__file__).resolve().parent.parent / "sftkit" / "recipes"


@pytest.mark.real_model
@pytest.mark.parametrize("name", ["instruction", "tone", "classification", "domain", "reasoning"])
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

    paths = [str(RECIPES / f"{n}.toml") for n in ("instruction", "tone", "classification", "domain", "reasoning")]
    res = CliRunner().invoke(cli, ["validate", *paths])
    assert res.exit_code == 0, res.output
    assert "warning" not in res.output, res.output  # every eval split holds enough rows for a verdict


def _comparable(metrics: dict) -> dict:
    """metrics.json without what differs between two identical runs (timings, memory peaks, paths)."""
    train = {k: v for k, v in metrics["train"].items()
             if not any(t in k for t in ("runtime", "per_second", "model_dir", "flos", "peak_memory"))}
    return {"train": train, "data": metrics["data"],
            "eval": [{k: r[k] for k in ("base", "tuned", "metrics", "verdict", "stats", "details")} for r in metrics["eval"]]}


@pytest.mark.real_model
def test_classification_recipe_on_the_real_minilm(tmp_path, monkeypatch):
    """The real encoder (not --smoke): labels mapped into the saved config, accuracy reported; the
    same recipe run twice gives the same metrics.json (the new head is seeded)."""
    from click.testing import CliRunner

    from sftkit.commands.run import run

    monkeypatch.setenv("SFTKIT_NO_PROGRESS", "1")
    args = ["--set", "training.max_steps=2", "--set", "training.per_device_train_batch_size=4"]
    runs = []
    for name in ("run", "again"):
        res = CliRunner().invoke(run, [str(RECIPES / "classification.toml"), "--output", str(tmp_path / name), *args])
        assert res.exit_code == 0, res.output[-3000:]
        runs.append(json.loads((tmp_path / name / "metrics.json").read_text()))
    assert _comparable(runs[0]) == _comparable(runs[1])
    assert runs[0]["eval"][0]["base"] is not None
    metrics = runs[0]
    assert metrics["train"]["labels"] == ["negative", "neutral", "positive"]
    assert 0 <= metrics["train"]["eval_accuracy"] <= 1
    assert sum(metrics["data"]["classes"]["counts"].values()) == metrics["data"]["train_rows"]
    cfg = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert cfg["label2id"] == {"negative": 0, "neutral": 1, "positive": 2}
