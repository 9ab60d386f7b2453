"""`sftkit run` with [[eval]] tables, `sftkit eval RECIPE --model DIR [--base]` and `sftkit report RUN_DIR`."""

import json

import pytest

ROWS = [{"prompt": f"Question {i}: what is {i} plus one?", "completion": f"The answer is {i + 1}."} for i in range(30)]
EVALS = [{"name": "loss", "by_cluster": False},
         {"name": "samples", "items": ["What is 2 plus one?"], "max_new_tokens": 6},
         {"name": "forgetting"}]


@pytest.fixture
def trained(sftkit_recipe, sftkit_run, tmp_path):
    """A finished 2-step run on the tiny model with evaluators (gates pass)."""
    sftkit_recipe.write_jsonl("train.jsonl", ROWS)
    recipe = sftkit_recipe(recipe={"name": "evalcmd"}, dataset={"eval_fraction": 0.2}, eval=EVALS,
                           output={"report": True})
    outcome = sftkit_run(recipe, smoke=False, output=tmp_path / "run")
    return recipe, outcome


def test_run_writes_eval_rows_and_report(trained):
    _recipe, outcome = trained
    run_dir = outcome.run_dir
    metrics = json.loads((run_dir / "metrics.json").read_text())
    rows = {r["label"]: r for r in metrics["eval"]}
    assert set(rows) == {"loss", "samples", "forgetting"}
    loss = rows["loss"]
    assert loss["base"] > 0 and loss["tuned"] > 0 and loss["delta"] == pytest.approx(loss["tuned"] - loss["base"])
    assert loss["higher_is_better"] is False
    # the loss evaluator's tuned eval loss matches the trainer's own final eval loss (same rows, same masks)
    log = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    trainer_eval = [e["eval_loss"] for e in log if "eval_loss" in e]
    if trainer_eval:
        assert loss["tuned"] == pytest.approx(trainer_eval[-1], rel=1e-3)
    assert rows["samples"]["samples"][0].keys() >= {"prompt", "base", "tuned"}
    assert metrics["gates"]["passed"] is True and metrics["gates"]["failures"] == []
    html = (run_dir / "report.html").read_text()
    assert "data:image/png;base64," in html and "forgetting" in html


def test_eval_command_with_base_and_failing_gate(trained, sftkit_recipe, sftkit_cli, tmp_path):
    _recipe, outcome = trained
    gated = sftkit_recipe(recipe={"name": "evalcmd-gated"}, dataset={"eval_fraction": 0.2},
                          eval=EVALS + [{"name": "json_valid", "items": [f"give json {i}" for i in range(6)],
                                         "max_new_tokens": 4, "min": 0.9}])
    out = tmp_path / "evaluation"
    result = sftkit_cli("eval", gated, "--model", outcome.run_dir / "model", "--base", "--output", out)
    assert result.exit_code == 3, result.output
    assert "gate failed: json_valid.valid_rate = 0 < min 0.9" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["gates"]["passed"] is False
    rows = {r["label"]: r for r in metrics["eval"]}
    assert rows["loss"]["base"] is not None and rows["loss"]["tuned"] is not None
    assert (out / "report.html").exists() and (out / "report.md").exists()
    # the evaluated model is named by its reference, never "tuned": nothing was tuned by this command
    ref = str(outcome.run_dir / "model")
    assert metrics["labels"] == {"base": "base", "tuned": ref}
    assert f"→ {ref} " in result.output and "→ tuned" not in result.output
    report = (out / "report.md").read_text()
    assert f"| {ref} |" in report and "| tuned |" not in report
    assert (out / "train_log.jsonl").exists()  # copied from the model's run directory: loss curves too
    assert "loss.png" in {p.name for p in out.iterdir()}


def test_eval_command_without_base_and_refusing_a_run_dir(trained, sftkit_cli, tmp_path):
    recipe, outcome = trained
    out = tmp_path / "evaluation2"
    result = sftkit_cli("eval", recipe, "--model", outcome.run_dir / "model", "--output", out)
    assert result.exit_code == 0, result.output
    rows = json.loads((out / "metrics.json").read_text())["eval"]
    assert all(r["base"] is None and r["delta"] is None for r in rows)
    assert any(r["tuned"] is not None for r in rows)
    clobber = sftkit_cli("eval", recipe, "--model", outcome.run_dir / "model", "--output", outcome.run_dir)
    assert clobber.exit_code == 1 and "holds a trained model" in clobber.output


def test_report_command(trained, sftkit_cli, tmp_path):
    _recipe, outcome = trained
    (outcome.run_dir / "report.html").unlink()
    result = sftkit_cli("report", outcome.run_dir)
    assert result.exit_code == 0, result.output
    assert (outcome.run_dir / "report.html").exists() and "report:" in result.output
    missing = sftkit_cli("report", tmp_path / "nope")
    assert missing.exit_code == 1 and "no such run directory" in missing.output


def test_eval_command_exits_4_when_an_evaluator_errors(trained, sftkit_recipe, sftkit_cli, tmp_path):
    _recipe, outcome = trained
    broken = sftkit_recipe(recipe={"name": "evalcmd-broken"}, dataset={"eval_fraction": 0.2},
                           eval=[{"name": "exact_match", "items": [{"prompt": "no expected answer"}], "max_new_tokens": 2}])
    out = tmp_path / "evaluation"
    result = sftkit_cli("eval", broken, "--model", outcome.run_dir / "model", "--output", out)
    assert result.exit_code == 4, result.output
    assert "evaluator exact_match failed on the tuned model" in result.output
    assert json.loads((out / "metrics.json").read_text())["eval"][0]["verdict"] == "error"
    assert (out / "report.md").exists()
