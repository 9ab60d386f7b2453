"""``sftkit plan``: data, schedule, calibrated time, memory and disk of a recipe before it runs;
[plan] limits stop plan and run (before training) with the numbers; warnings for too few examples
and mostly truncated ones."""

from __future__ import annotations

import json

import pytest
import tomli_w
from click.testing import CliRunner


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from sftkit.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def recipe(tmp_path, tiny_dir, *, rows=40, long=False, training=None, plan=None, adapter=None):
    pad = " and more words" * 12 if long else ""
    data = [{"prompt": f"What is {i} plus {i}?", "completion": f"It is {2 * i}.{pad}"} for i in range(rows)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in data))
    body = {"recipe": {"name": "p", "seed": 1}, "model": {"name": str(tiny_dir)},
            "data": [{"source": "jsonl", "path": "train.jsonl"}], "dataset": {"eval_fraction": 0.2},
            "template": {"formatter": "chatml"}, "strategy": {"name": "instruction"},
            "training": {"max_steps": 12, "per_device_train_batch_size": 4, "gradient_accumulation_steps": 2,
                         "max_length": 64, **(training or {})},
            "eval": [{"name": "loss"}]}
    if plan:
        body["plan"] = plan
    if adapter:
        body["adapter"] = adapter
    path = tmp_path / "recipe.toml"
    path.write_text(tomli_w.dumps(body))
    return path


def test_plan_reports_data_schedule_time_memory_and_disk(tmp_path, tiny_dir):
    from sftkit.run import plan as make_plan

    plan = make_plan(recipe(tmp_path, tiny_dir))
    d, s, t, m = plan["data"], plan["schedule"], plan["time"], plan["memory"]
    assert d["train_rows"] == 32 and d["eval_rows"] == 8
    assert d["train_tokens"] > d["trained_tokens"] > 0 and d["truncated"] == 0
    assert s["steps"] == 12 and s["global_batch"] == 8 and s["epochs"] == pytest.approx(12 * 8 / 32)
    assert s["trained_tokens"] == pytest.approx(d["trained_tokens"] / 32 * 8 * 12, rel=1e-6)
    # calibrated: three real optimizer steps of two micro-batches each were timed
    assert t["calibration"]["steps"] == 3 and len(t["calibration"]["step_tokens"]) == 3
    assert t["train_seconds"] > 0 and t["seconds_per_step"] > 0
    assert t["evaluators"][0]["label"] == "loss" and t["evaluators"][0]["seconds"] is not None
    assert t["eval_seconds"] == pytest.approx(2 * t["evaluators"][0]["seconds"], abs=0.1)
    params = plan["parameters"]
    assert params["total"] == params["trainable"] > 0 and m["kind"] == "full"
    assert m["weights_gb"] == pytest.approx(params["total"] * 4 / 1024 ** 3, abs=1e-3)
    assert m["optimizer_gb"] == pytest.approx(2 * m["weights_gb"], abs=2e-3)
    assert m["measured_peak_gb"] > 0 and m["estimate_gb"] == m["measured_peak_gb"]
    assert plan["disk"]["model_gb"] == pytest.approx(m["weights_gb"], abs=1e-3)
    assert any("only 32 training examples" in w for w in plan["warnings"])
    assert not (tmp_path / "runs").exists()  # the calibration ran in a scratch directory


def test_lora_plan_has_small_optimizer_state_and_adapter_disk(tmp_path, tiny_dir):
    from sftkit.run import plan as make_plan

    plan = make_plan(recipe(tmp_path, tiny_dir, adapter={"r": 4}), steps=2)
    p, m = plan["parameters"], plan["memory"]
    assert 0 < p["trainable"] < p["total"] / 4 and m["kind"] == "lora"
    b = m["bytes"]
    assert b["optimizer"] == 8 * p["trainable"] and b["gradients"] == 4 * p["trainable"]
    assert b["weights"] == 4 * p["total"] and b["optimizer"] < b["weights"] / 2
    assert plan["disk"]["model_bytes"] == 4 * p["trainable"]  # the adapter only, not merged


def test_limits_fail_plan_and_run_before_training_with_the_numbers(tmp_path, tiny_dir):
    from sftkit.cli import cli, load_plugin_commands
    from sftkit.errors import SftkitError
    from sftkit.run import run

    load_plugin_commands()
    path = recipe(tmp_path, tiny_dir, long=True, plan={"max_memory_gb": 0.001})
    result = CliRunner().invoke(cli, ["plan", str(path), "--format", "json", "--steps", "2"])
    assert result.exit_code == 1, result.output
    body = json.loads(result.stdout)
    assert body["limit_failures"] and "exceeds [plan] max_memory_gb = 0.001" in body["limit_failures"][0]
    assert any("are cut at training.max_length = 64" in w for w in body["warnings"])
    assert "error: [plan]: estimated peak memory" in result.stderr
    with pytest.raises(SftkitError, match=r"estimated peak memory [\d.]+ GB exceeds \[plan\] max_memory_gb"):
        run(path, [], output=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_plan_limits_validate_without_torch(tmp_path):
    from sftkit.cli import cli

    (tmp_path / "train.jsonl").write_text('{"prompt": "hi", "completion": "hello"}\n')
    (tmp_path / "r.toml").write_text(
        '[recipe]\nname = "p"\n[model]\nname = "org/m"\n[[data]]\nsource = "jsonl"\npath = "train.jsonl"\n'
        '[strategy]\nname = "instruction"\n[plan]\nmax_hours = 0\nmax_memroy_gb = 4\n')
    result = CliRunner().invoke(cli, ["validate", str(tmp_path / "r.toml")])
    assert result.exit_code == 1
    assert "plan.max_hours" in result.output and "max_memroy_gb" in result.output


def test_memory_per_process_follows_the_distributed_strategy():
    from sftkit.config import Distributed
    from sftkit.plan.memory import per_process, training_memory

    one = {"weights": 400, "gradients": 400, "optimizer": 800, "activations": 100, "total": 1700}
    ddp = per_process(one, processes=4, distributed=Distributed.of({"strategy": "ddp"}))
    assert ddp["weights"] == 400 and ddp["buckets"] == 400 and ddp["total"] == 2100  # a full copy + buckets
    full = per_process(one, processes=4, distributed=Distributed.of({"strategy": "fsdp"}))  # full_shard by default
    assert (full["weights"], full["gradients"], full["optimizer"], full["activations"]) == (100, 100, 200, 100)
    grad_op = per_process(one, processes=4, distributed=Distributed.of({"strategy": "fsdp", "fsdp": {"sharding": "shard_grad_op"}}))
    assert grad_op["weights"] == 400 and grad_op["optimizer"] == 200
    zero = {s: per_process(one, processes=4, distributed=Distributed.of({"strategy": "deepspeed", "deepspeed": {"stage": s}}))["total"]
            for s in (1, 2, 3)}
    assert zero[1] == 1700 - 600 and zero[2] == zero[1] - 300 and zero[3] == zero[2] - 300
    assert per_process(one, processes=1, distributed=Distributed.of({"strategy": "fsdp"}))["total"] == 1700
    # the chunked loss holds one chunk's logits, not the batch's
    shape = dict(parameters=135_000_000, trainable=135_000_000, weight_bytes=4, tokens_per_step=8 * 512,
                 layers=30, hidden=576, vocab=49152, autocast=True)
    plain, chunked = training_memory(**shape), training_memory(**shape, chunked=True)
    assert plain["activations"] - chunked["activations"] == 8 * 512 * 49152 * 12 - (1 << 24) * 12 - 49152 * 576 * 4


def test_plan_for_several_processes(tmp_path, tiny_dir):
    from sftkit.commands.plan import format_plan
    from sftkit.run import plan as make_plan

    plan = make_plan(recipe(tmp_path, tiny_dir), steps=2, processes=2)
    s, m = plan["schedule"], plan["memory"]
    assert s["global_batch"] == 16 and s["processes"] == 2 and s["epochs"] == pytest.approx(12 * 16 / 32)
    assert m["processes"] == 2 and m["strategy"] == "ddp" and m["chunked_loss"] is True
    assert m["per_process"]["buckets_gb"] == m["gradients_gb"]  # ddp: a full copy each, plus buckets
    assert m["estimate_gb"] > m["measured_peak_gb"]
    text = "\n".join(format_plan(plan))
    assert "x 2 processes" in text and "per process (ddp, 2 processes)" in text and "a device per process" in text
