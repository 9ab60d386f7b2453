"""Best-checkpoint selection (``[training] best_metric``, run/checkpoints.py): the saved model is the
weights of the step where the metric was best, not the last step's."""

from __future__ import annotations

import json

import pytest

ROWS = [{"prompt": f"Question {i}: what is {i} plus one?", "completion": f"The answer is {i + 1}."} for i in range(30)]


def _weights(directory):
    from safetensors.torch import load_file

    return load_file(str(directory / "model.safetensors"))


def _same(a: dict, b: dict) -> bool:
    import torch

    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_best_metric_keeps_the_best_steps_weights(sftkit_recipe, sftkit_run, tmp_path):
    sftkit_recipe.write_jsonl("train.jsonl", ROWS)
    # the eval loss of the first steps falls; asking for the *highest* one makes the best step an early
    # one for sure, so a run that saved the last step's weights fails below
    recipe = sftkit_recipe(recipe={"name": "best"}, dataset={"eval_fraction": 0.2},
                           training={"max_steps": 5, "eval_steps": 1, "learning_rate": 0.01,
                                     "best_metric": "eval_loss", "greater_is_better": True,
                                     "save_total_limit": 10},
                           output={"keep_checkpoints": True})
    outcome = sftkit_run(recipe, smoke=False, output=tmp_path / "run")
    run_dir = outcome.run_dir
    log = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    evals = {int(e["step"]): e["eval_loss"] for e in log if "eval_loss" in e and e.get("step") is not None}
    best_step = max(evals, key=evals.get)
    last_step = max(evals)
    assert best_step != last_step, f"the eval loss did not fall: {evals}"
    chosen = outcome.metrics["train"]["best_checkpoint"]
    assert chosen["step"] == best_step and chosen["metric"] == "eval_loss"
    assert chosen["value"] == pytest.approx(evals[best_step])
    saved = _weights(run_dir / "model")
    assert _same(saved, _weights(run_dir / "checkpoints" / f"checkpoint-{best_step}"))
    assert not _same(saved, _weights(run_dir / "checkpoints" / f"checkpoint-{last_step}"))


def test_a_loss_is_better_lower_and_other_metrics_higher_unless_the_recipe_says():
    from sftkit.config import Training
    from sftkit.run.checkpoints import save_every, trainer_kwargs

    loss = Training(best_metric="eval_loss", eval_steps=2)
    assert trainer_kwargs(loss, evaluates=True) == {"load_best_model_at_end": True,
                                                    "metric_for_best_model": "eval_loss", "greater_is_better": False}
    assert trainer_kwargs(Training(best_metric="eval_accuracy", eval_steps=2), evaluates=True)["greater_is_better"]
    assert trainer_kwargs(loss, evaluates=False) == {} and trainer_kwargs(Training(), evaluates=True) == {}
    assert save_every(loss, 100) == 2 and save_every(Training(), 100) == 20  # a checkpoint at every evaluation


def test_without_best_metric_the_last_step_is_saved_and_checkpoints_are_removed(sftkit_recipe, sftkit_run, tmp_path):
    sftkit_recipe.write_jsonl("train.jsonl", ROWS)
    recipe = sftkit_recipe(recipe={"name": "last"}, dataset={"eval_fraction": 0.2},
                           training={"max_steps": 3, "eval_steps": 1, "save_steps": 1})
    outcome = sftkit_run(recipe, smoke=False, output=tmp_path / "run")
    assert "best_checkpoint" not in outcome.metrics["train"]
    assert not (outcome.run_dir / "checkpoints").exists()  # [output] keep_checkpoints = false: cleaned


def test_best_metric_without_evaluations_is_refused_by_validate(sftkit_recipe, sftkit_cli):
    recipe = sftkit_recipe(recipe={"name": "noeval"}, training={"best_metric": "eval_loss"})
    result = sftkit_cli("validate", recipe)
    assert result.exit_code == 1 and "best_metric needs evaluations during training" in result.output
