"""The quickstart recipe and its data: the data teaches exactly the format its evaluator checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tomllib

RECIPES = Path(__file__).resolve().parent.parent / "sftkit" / "recipes"
DATA = RECIPES / "data" / "quickstart"


def _rows(name):
    return [json.loads(line) for line in (DATA / name).read_text(encoding="utf-8").splitlines() if line.strip()]


def test_train_completions_satisfy_the_eval_schema():
    from jsonschema import Draft202012Validator

    schema = Draft202012Validator(json.loads((DATA / "answer.schema.json").read_text()))
    rows = _rows("train.jsonl")
    assert 150 <= len(rows) <= 300
    for row in rows:
        assert set(row) == {"prompt", "completion"}
        assert not list(schema.iter_errors(json.loads(row["completion"]))), row
    confidences = {json.loads(r["completion"])["confidence"] for r in rows}
    assert confidences == {"high", "low"}


def test_eval_prompts_are_held_out():
    train = {r["prompt"].strip().lower() for r in _rows("train.jsonl")}
    items = _rows("eval.jsonl")
    assert 20 <= len(items) <= 30
    assert all(it["prompt"] and it["expected"] for it in items)
    assert not [it["prompt"] for it in items if it["prompt"].strip().lower() in train]


def test_data_generator_is_reproducible():
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "make_quickstart_data.py"
    spec = importlib.util.spec_from_file_location("make_quickstart_data", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    train, ev = mod.build()
    assert [{"prompt": r["prompt"], "completion": r["completion"]} for r in train] == _rows("train.jsonl")
    assert ev == _rows("eval.jsonl")


def test_recipe_evaluates_what_the_data_teaches():
    recipe = tomllib.loads((RECIPES / "quickstart.toml").read_text())
    assert recipe["model"]["name"].endswith(".gguf")
    json_eval = next(e for e in recipe["eval"] if e["name"] == "json_valid")
    assert json_eval["extract"] is False and json_eval["min"] >= 0.8
    assert (RECIPES / json_eval["schema_file"]).exists() and (RECIPES / json_eval["prompts"]).exists()


@pytest.mark.real_model
def test_quickstart_smoke_run(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from sftkit.commands.run import run

    monkeypatch.setenv("SFTKIT_NO_PROGRESS", "1")
    res = CliRunner().invoke(run, [str(RECIPES / "quickstart.toml"), "--smoke", "--output", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [row["label"] for row in metrics["eval"]] == ["answers as JSON", "answer correct"]
    assert (tmp_path / "run" / "COMPLETE").exists()
