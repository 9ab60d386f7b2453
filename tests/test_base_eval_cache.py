"""The base model's evaluation reused across runs, keyed by content (run/base_cache.py): reused for
the same base model (wherever it lies), evaluators and eval items; evaluated again when anything
that changes the results differs."""

from __future__ import annotations

import shutil

import pytest

import sftkit.evaluation

ROWS = [{"prompt": f"What is {i} plus one?", "completion": f"It is {i + 1}."} for i in range(24)]
EVALS = [{"name": "loss", "by_cluster": False}, {"name": "samples", "items": ["What is 2 plus one?"], "max_new_tokens": 4}]


@pytest.fixture
def counted(monkeypatch):
    """How many times each model label was evaluated."""
    calls: list = []
    real = sftkit.evaluation.evaluate_all

    def counting(run, target):
        calls.append(target.label)
        return real(run, target)

    monkeypatch.setattr(sftkit.evaluation, "evaluate_all", counting)
    return calls


@pytest.fixture
def make(sftkit_recipe, sftkit_tiny_model, tmp_path):
    sftkit_recipe.write_jsonl("train.jsonl", ROWS)

    def recipe(name, model=None, evals=EVALS, **sections):
        sections.setdefault("dataset", {"eval_fraction": 0.25})
        return sftkit_recipe(recipe={"name": name}, model={"name": str(model or sftkit_tiny_model)}, eval=evals,
                             **sections)

    return recipe


def _base(outcome) -> dict:
    return {r["label"]: r["base"] for r in outcome.metrics["eval"]}


def test_a_second_run_of_the_same_base_model_reuses_its_evaluation(make, sftkit_run, sftkit_tiny_model, counted,
                                                                   tmp_path):
    first = sftkit_run(make("one"), smoke=False)
    assert counted == ["base", "tuned"] and first.metrics["base_eval"]["source"] == "evaluated"
    # another run: other training settings, the same base model copied elsewhere (content, not path)
    copy = shutil.copytree(sftkit_tiny_model, tmp_path / "elsewhere")
    counted.clear()
    second = sftkit_run(make("two", model=copy, training={"learning_rate": 5e-3}, output={"report": True}), smoke=False)
    assert counted == ["tuned"], "the base model was evaluated again"
    assert second.metrics["base_eval"] == {"source": "cache", "key": first.metrics["base_eval"]["key"]}
    assert _base(second) == _base(first)
    assert "reused from the cache" in (second.run_dir / "report.md").read_text()


def test_anything_that_changes_the_results_evaluates_again(make, sftkit_run, sftkit_tiny_model, counted, tmp_path):
    first = sftkit_run(make("one"), smoke=False)
    keys = {first.metrics["base_eval"]["key"]}

    def again(recipe) -> None:
        counted.clear()
        outcome = sftkit_run(recipe, smoke=False)
        assert counted == ["base", "tuned"] and outcome.metrics["base_eval"]["source"] == "evaluated"
        keys.add(outcome.metrics["base_eval"]["key"])

    again(make("options", evals=[EVALS[0], {**EVALS[1], "max_new_tokens": 5}]))  # an evaluator option
    again(make("items", evals=[EVALS[0], {**EVALS[1], "items": ["What is 3 plus one?"]}]))  # the eval items
    again(make("split", dataset={"eval_fraction": 0.5}))  # the eval split's rows
    again(make("length", training={"max_length": 48}))  # how the loss encodes rows
    changed = shutil.copytree(sftkit_tiny_model, tmp_path / "changed")  # the base model's weights
    from safetensors.torch import load_file, save_file

    weights = load_file(str(changed / "model.safetensors"))
    name = next(iter(weights))
    weights[name] = weights[name] + 0.01
    save_file(weights, str(changed / "model.safetensors"), metadata={"format": "pt"})
    again(make("weights", model=changed))
    assert len(keys) == 6


def test_nothing_is_cached_for_a_smoke_run(make, sftkit_run, counted):
    for name in ("a", "b"):
        outcome = sftkit_run(make(name), smoke=True)
        assert outcome.metrics["base_eval"] == {"source": "evaluated"}
    assert counted == ["base", "tuned", "base", "tuned"]

