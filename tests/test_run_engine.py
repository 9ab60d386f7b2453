"""The run's stages and contracts: a plugin strategy written from the documented Strategy contract
is evaluated before and after training, a run whose [[eval]] tables cannot run is an error, a smoke
run has its own directory, and ``sftkit eval --model REF`` takes a model reference without a run."""

from __future__ import annotations

import json
import shutil
import types

import pytest

import sftkit
from sftkit.api import Strategy, TrainResult
from sftkit.errors import SftkitError

ROWS = [{"prompt": f"What is {i} plus one?", "completion": f"It is {i + 1}."} for i in range(24)]
EVALS = [{"name": "loss", "by_cluster": False}, {"name": "samples", "items": ["What is 2 plus one?"], "max_new_tokens": 4}]


# [docs:strategy]
class PlainLoop(Strategy):
    """A plain torch loop over the formatted rows."""

    name = "plain_loop"
    accepts = ("messages",)

    def train(self, run):
        import torch

        model, tokenizer = self.load(run)  # the base model the run evaluated before training
        optimizer = torch.optim.SGD(model.parameters(), lr=float(self.options.get("lr", 0.5)))
        model.train()
        for row in run.data.train.select(range(8)):
            encoded = run.formatter.encode_messages(row["messages"], max_length=64)
            loss = model(input_ids=torch.tensor([encoded["input_ids"]]), labels=torch.tensor([encoded["labels"]])).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        model.eval()
        model.save_pretrained(run.model_dir)
        tokenizer.save_pretrained(run.model_dir)
        return TrainResult(run.model_dir, {"final_loss": loss.item()}, model=model, tokenizer=tokenizer)
# [/docs:strategy]


class HandBack(PlainLoop):
    """PlainLoop handing the model back differently: in the result, only saved, or not at all."""

    def train(self, run):
        result = super().train(run)
        how = self.options.get("hand_back", "returned")
        if how == "none":
            shutil.rmtree(run.model_dir)
        if how != "returned":
            result.model = result.tokenizer = None
        return result


def _plugin() -> types.ModuleType:
    plugin = types.ModuleType("plain_loop_plugin")

    @sftkit.hookimpl
    def sftkit_register_strategies(register):
        register("plain_loop", HandBack, accepts=["messages"], doc="A plain torch loop.",
                 schema={"type": "object", "additionalProperties": False,
                         "properties": {"lr": {"type": "number"}, "hand_back": {"enum": ["returned", "saved", "none"]}}})

    @sftkit.hookimpl
    def sftkit_training_callbacks(run):
        from transformers import TrainerCallback

        class Collect(TrainerCallback):
            def on_log(self, args, state, control, logs=None, **kw):
                SEEN.append({"step": state.global_step, **(logs or {})})

        return [Collect()]

    plugin.sftkit_register_strategies = sftkit_register_strategies
    plugin.sftkit_training_callbacks = sftkit_training_callbacks
    return plugin


SEEN: list = []


@pytest.fixture
def sftkit_plugin():
    return _plugin()


@pytest.fixture
def recipe_for(sftkit_recipe):
    sftkit_recipe.write_jsonl("train.jsonl", ROWS)

    def make(hand_back="returned", **sections):
        return sftkit_recipe(**{"strategy": {"name": "plain_loop", "hand_back": hand_back},
                                "dataset": {"eval_fraction": 0.25}, "template": {"formatter": "chatml"},
                                "eval": EVALS, **sections})

    return make


@pytest.mark.parametrize("hand_back", ["returned", "saved"])
def test_plugin_strategy_gets_base_and_tuned_evaluation(recipe_for, sftkit_run, hand_back):
    outcome = sftkit_run(recipe_for(hand_back), smoke=False)
    rows = {r["label"]: r for r in outcome.metrics["eval"]}
    loss = rows["loss"]
    assert loss["base"] is not None and loss["tuned"] is not None and loss["tuned"] != loss["base"]
    assert rows["samples"]["samples"][0].keys() >= {"base", "tuned"}
    assert outcome.metrics["train"]["final_loss"] > 0
    assert (outcome.run_dir / "COMPLETE").exists()


def test_no_evaluation_possible_is_an_error_not_a_pass(recipe_for, sftkit_run, sftkit_cli, tmp_path):
    recipe = recipe_for("none", eval=EVALS + [{"name": "json_valid", "items": ["x"], "min": 0.5}])
    with pytest.raises(SftkitError, match="no \\[\\[eval\\]\\] table could run"):
        sftkit_run(recipe, smoke=False)
    result = sftkit_cli("run", recipe, "--output", tmp_path / "cli")
    assert result.exit_code == 1
    assert not (tmp_path / "cli" / "COMPLETE").exists()


def test_smoke_run_writes_beside_the_real_run(sftkit_recipe, sftkit_host, tmp_path):
    from sftkit.run import run

    recipe = sftkit_recipe(recipe={"name": "twin"}, output={"dir": str(tmp_path / "runs" / "{recipe.name}")})
    outcome = run(recipe, smoke=True, host=sftkit_host)
    assert outcome.run_dir == tmp_path / "runs" / "twin-smoke" and (outcome.run_dir / "COMPLETE").exists()
    assert not (tmp_path / "runs" / "twin").exists()  # the real run that follows is not refused


def test_eval_takes_a_model_reference_and_needs_no_training_rows(sftkit_recipe, sftkit_cli, sftkit_tiny_model, tmp_path):
    sftkit_recipe.write_jsonl("held.jsonl", ROWS[:3])
    recipe = sftkit_recipe(recipe={"name": "refs"}, data=[{"source": "jsonl", "path": "held.jsonl", "split": "eval"}],
                           template={"formatter": "chatml"}, eval=[{"name": "samples", "max_new_tokens": 3}])
    out = tmp_path / "ev"
    result = sftkit_cli("eval", recipe, "--model", sftkit_tiny_model, "--output", out)  # a saved model, not a run
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model_dir"] == sftkit_tiny_model
    assert metrics["data"]["train_rows"] == 0 and metrics["data"]["eval_rows"] == 3
    assert len(metrics["eval"][0]["samples"]) == 3 and metrics["eval"][0]["samples"][0]["tuned"] is not None
    # a hub id is a model reference too (offline here: a one-line error, not a usage error)
    missing = sftkit_cli("eval", recipe, "--model", "nobody/no-such-model", "--output", tmp_path / "ev2")
    assert missing.exit_code == 1 and "nobody/no-such-model" in missing.output
    assert "Traceback" not in missing.output


def test_trackers_callbacks_and_trainer_eval_off(sftkit_recipe, sftkit_run):
    SEEN.clear()
    sftkit_recipe.write_jsonl("train.jsonl", ROWS)
    recipe = sftkit_recipe(recipe={"name": "seams"}, dataset={"eval_fraction": 0.25}, template={"formatter": "chatml"},
                           training={"report_to": ["tensorboard"], "eval_strategy": "no"})
    outcome = sftkit_run(recipe, "output.keep_checkpoints=true", smoke=False)
    assert (outcome.run_dir / "checkpoints").is_dir()  # kept on request (removed by default)
    events = list((outcome.run_dir / "logs" / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    assert [e["step"] for e in SEEN if "loss" in e] == [1, 2]  # per-step metrics reach the plugin's callback
    assert outcome.metrics["data"]["eval_rows"] > 0 and "eval_loss" not in outcome.metrics["train"]


def test_evaluators_share_generations(tiny_target_parts):
    from sftkit.evaluation import Target

    model, tokenizer = tiny_target_parts
    calls = []
    original = model.generate

    def counting(*args, **kwargs):
        calls.append(kwargs["input_ids"].shape[0])
        return original(*args, **kwargs)

    model.generate = counting
    target = Target(model, tokenizer, None, "base", batch_size=8)
    prompts = [f"Question {i}" for i in range(5)]
    first = target.generate_text(prompts, max_new_tokens=3)
    again = target.generate_text(prompts[::-1], max_new_tokens=3)  # a second evaluator, same prompts
    assert again == first[::-1] and sum(calls) == 5
    target.generate_text(prompts[:2], max_new_tokens=5)  # other settings: generated anew
    assert sum(calls) == 7


@pytest.fixture
def tiny_target_parts():
    from sftkit.tiny import tiny_causal_lm, tiny_tokenizer

    tokenizer = tiny_tokenizer()
    return tiny_causal_lm(tokenizer), tokenizer


def test_resume_reuses_the_base_evaluation(recipe_for, sftkit_host, tmp_path):
    from sftkit.run import run

    recipe = recipe_for("returned")
    said: list = []
    first = run(recipe, output=tmp_path / "run", host=sftkit_host, console=said.append)
    assert "evaluating the base model" in said and (first.run_dir / "base_eval.json").exists()
    (first.run_dir / "COMPLETE").unlink()  # as if interrupted after training
    said.clear()
    again = run(recipe, output=tmp_path / "run", host=sftkit_host, console=said.append, resume=True)
    assert "evaluating the base model" not in said and any("reusing the base model" in m for m in said)
    before = {r["label"]: r["base"] for r in first.metrics["eval"]}
    assert {r["label"]: r["base"] for r in again.metrics["eval"]} == before


def test_device_choice_and_busy_machine_warning():
    import torch

    from sftkit.config import Training
    from sftkit.run import devices

    assert devices.choose(Training()) == devices.available()[0] and devices.choose(Training(device="cpu")) == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(SftkitError, match="device 'cuda' is not available"):
            devices.choose(Training(device="cuda"))
    assert "threads = 1" in devices.busy(load=5.0, cores=2, threads=2)
    assert devices.busy(load=1.0, cores=2, threads=2) is None and devices.busy(load=9.0, cores=2, threads=1) is None


def test_threads_setting_reaches_torch(recipe_for, sftkit_run):
    import torch

    from sftkit.run import devices

    before = torch.get_num_threads()
    try:
        outcome = sftkit_run(recipe_for(training={"threads": before + 1, "max_steps": 1}), smoke=False)
        assert torch.get_num_threads() == before + 1 and outcome.metrics["precision"]["device"] == devices.available()[0]
    finally:
        torch.set_num_threads(before)


def test_stdout_holds_the_summary_alone(sftkit_recipe, sftkit_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("SFTKIT_NO_PROGRESS", "")  # restored after the test: --quiet sets it in the process
    recipe = sftkit_recipe(recipe={"name": "quietly"}, template={"formatter": "chatml"})
    loud = sftkit_cli("run", recipe, "--output", tmp_path / "loud")
    assert loud.exit_code == 0, loud.output
    assert "'loss'" not in loud.stdout and "step 1" not in loud.stdout and loud.stdout.startswith("finished quietly")
    assert "step 1: loss" in loud.stderr and "run directory:" in loud.stderr  # progress on stderr
    quiet = sftkit_cli("run", recipe, "--output", tmp_path / "quiet", "--quiet")
    assert quiet.exit_code == 0 and quiet.stdout.startswith("finished quietly")
    assert "step 1" not in quiet.stderr and "run directory:" not in quiet.stderr


def test_tone_sft_on_preference_pairs_validates_and_trains(sftkit_recipe, sftkit_cli, sftkit_run):
    pairs = [{"prompt": f"Reply to message {i}", "chosen": f"Thank you for message {i}.", "rejected": "No."}
             for i in range(12)]
    sftkit_recipe.write_jsonl("pairs.jsonl", pairs)
    recipe = sftkit_recipe(recipe={"name": "pairs-sft"}, data=[{"source": "jsonl", "path": "pairs.jsonl"}],
                           strategy={"name": "tone", "method": "sft"}, template={"formatter": "chatml"})
    checked = sftkit_cli("validate", recipe)
    assert checked.exit_code == 0, checked.output
    assert sftkit_run(recipe).metrics["train"]["method"] == "sft"


def test_components_take_the_processes_from_the_run_never_from_the_environment(tmp_path, monkeypatch):
    """The prepare stage reads the launcher's environment once (``run.world``); a component handed a
    run without one trains as one process even where RANK / WORLD_SIZE are set."""
    from sftkit.api import RunContext
    from sftkit.config import resolve
    from sftkit.run.distributed import World, world_of
    from sftkit.strategies.collate import TokenCounter
    from sftkit.strategies.trainer import _all_ranks, _per_rank

    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    run = RunContext(config=resolve({"training": {"max_steps": 1}, "distributed": {"strategy": "ddp"}}),
                     recipe_path=None, base_dir=tmp_path, run_dir=tmp_path / "run")
    assert world_of(run) == World() and _per_rank(run, 5) == [5]  # no process group is asked for
    assert _all_ranks(TokenCounter(3, 4, 1, 2), run).trained == 3
    two = World(rank=0, size=2, local_size=2)
    run.world = two
    assert world_of(run) is two
