"""More than one process: ranks from the environment, the ``[distributed]`` table (validated without
torch, mapped onto TrainingArguments), sharded length-grouped batches and evaluation, the global
batch in ``resolve``, and a real 2-process DDP run on CPU (gloo) that trains exactly like one process
with the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomli_w
from click.testing import CliRunner

from sftkit.config import FSDP, DeepSpeed, Distributed, resolve
from sftkit.run.distributed import (
    ShardedTarget,
    World,
    deepspeed_config,
    fsdp_config,
    global_batch,
    shard_indices,
    training_kwargs,
    world_from_env,
)

SFTKIT = [sys.executable, "-m", "sftkit"]


def _env(**extra):
    env = dict(os.environ, SFTKIT_NO_PROGRESS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               OMP_NUM_THREADS="1")
    env.update(extra)
    return env


# --------------------------------------------------------------------------- ranks and options

def test_world_from_env():
    assert world_from_env({}) == World(0, 1, 0, 1)
    w = world_from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"})
    assert (w.rank, w.size, w.local_rank, w.local_size) == (3, 4, 1, 2)
    assert w.distributed and not w.is_main and not w.single_node
    assert world_from_env({"RANK": "0", "WORLD_SIZE": "2"}).single_node


def test_training_kwargs_per_strategy(tmp_path):
    two = World(rank=0, size=2, local_size=2)
    assert training_kwargs(Distributed.of({"strategy": "fsdp"}), World()) == {}  # one process: the table does not apply
    ddp = training_kwargs(None, two)
    assert ddp == {"ddp_timeout": 1800, "ddp_find_unused_parameters": False}
    fsdp = training_kwargs(Distributed.of({"strategy": "fsdp", "fsdp": {"sharding": "shard_grad_op", "cpu_offload": True,
                                                          "wrap_layers": ["LlamaDecoderLayer"]}}), two)
    assert fsdp["fsdp"] is True
    assert fsdp["fsdp_config"]["version"] == 2 and fsdp["fsdp_config"]["reshard_after_forward"] is False
    assert fsdp["fsdp_config"]["cpu_offload"] and fsdp["fsdp_config"]["transformer_layer_cls_to_wrap"] == ["LlamaDecoderLayer"]
    assert fsdp_config(FSDP.of({"version": 1, "sharding": "hybrid_shard"}))["reshard_after_forward"] == "hybrid_shard"
    ds = training_kwargs(Distributed.of({"strategy": "deepspeed", "deepspeed": {"stage": 3, "offload_optimizer": True,
                                                                 "offload_params": True}}), two)["deepspeed"]
    zero = ds["zero_optimization"]
    assert zero["stage"] == 3 and zero["offload_optimizer"]["device"] == "cpu" and zero["offload_param"]["device"] == "cpu"
    assert zero["stage3_gather_16bit_weights_on_model_save"] is True
    assert ds["train_micro_batch_size_per_gpu"] == "auto" and ds["gradient_accumulation_steps"] == "auto"
    assert "offload_param" not in deepspeed_config(DeepSpeed.of({"stage": 2}))["zero_optimization"]
    (tmp_path / "ds.json").write_text("{}")
    path = training_kwargs(Distributed.of({"strategy": "deepspeed", "deepspeed": {"config": "ds.json"}}), two, base_dir=tmp_path)
    assert path["deepspeed"] == str(tmp_path / "ds.json")


def test_transformers_accepts_the_generated_fsdp_config(tmp_path):
    """The fsdp_config keys are ones this transformers version knows (it would warn or fail otherwise)."""
    from transformers import TrainingArguments

    kwargs = training_kwargs(Distributed.of({"strategy": "fsdp", "fsdp": {"activation_checkpointing": True}}),
                             World(rank=0, size=2, local_size=2))
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[], **kwargs)
    assert args.fsdp_config["version"] == 2 and args.fsdp_config["activation_checkpointing"] is True
    assert args.fsdp_config["reshard_after_forward"] is True


def test_deepspeed_accepts_the_generated_config(tmp_path, monkeypatch):
    """Where DeepSpeed is installed: the generated config, filled by transformers from the training
    arguments ("auto" values), passes DeepSpeed's own parser with the stage and offloads asked for.
    (A DeepSpeed run itself needs GPUs: accelerate does not run DeepSpeed on a CPU-only machine.)"""
    import importlib.util

    if importlib.util.find_spec("deepspeed") is None:
        pytest.skip("the deepspeed package is not installed (pip install deepspeed; on CPU set DS_ACCELERATOR=cpu)")
    import torch

    monkeypatch.setenv("DS_ACCELERATOR", os.environ.get("DS_ACCELERATOR") or ("cuda" if torch.cuda.is_available() else "cpu"))
    from deepspeed.runtime.config import DeepSpeedConfig
    from transformers import TrainingArguments

    for ds, offloaded in (({"stage": 1}, (False, False)), ({"stage": 2, "offload_optimizer": True}, (True, False)),
                          ({"stage": 3, "offload_optimizer": True, "offload_params": True}, (True, True))):
        kwargs = training_kwargs(Distributed.of({"strategy": "deepspeed", "deepspeed": ds}), World(rank=0, size=2, local_size=2))
        args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[], per_device_train_batch_size=4,
                                 gradient_accumulation_steps=2, max_grad_norm=0.5, **kwargs)
        filled = args.hf_deepspeed_config.config
        assert filled["train_micro_batch_size_per_gpu"] == 4 and filled["gradient_clipping"] == 0.5
        parsed = DeepSpeedConfig(filled)
        assert parsed.zero_optimization_stage == ds["stage"] and parsed.train_batch_size == 8
        zero = parsed.zero_config
        assert (zero.offload_optimizer is not None, zero.offload_param is not None) == offloaded


def test_global_batch():
    from sftkit.config import Training

    assert global_batch(Training(per_device_train_batch_size=4, gradient_accumulation_steps=2), 3)["global"] == 24
    assert global_batch(Training(), 1) == {"per_device": 8, "accumulation": 1, "world_size": 1, "global": 8}


# --------------------------------------------------------------------------- validate

def _recipe(tmp_path: Path, **sections) -> Path:
    (tmp_path / "train.jsonl").write_text(json.dumps({"prompt": "a", "completion": "b"}) + "\n")
    data = {"recipe": {"name": "d"}, "model": {"name": "some/model"}, "data": [{"source": "jsonl", "path": "train.jsonl"}],
            "strategy": {"name": "instruction"}, **sections}
    path = tmp_path / "recipe.toml"
    path.write_text(tomli_w.dumps(data))
    return path


def _problems(path: Path) -> list:
    from sftkit.plugins import get_host
    from sftkit.validate import validate_file

    return validate_file(path, get_host())


def test_validate_distributed_mismatches(tmp_path, monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "deepspeed" else real_find_spec(name, *a))
    path = _recipe(tmp_path, distributed={"strategy": "deepspeed", "fsdp": {"sharding": "full_shard"},
                                          "deepspeed": {"stage": 2, "offload_params": True}})
    found = {p.path: p for p in _problems(path)}
    assert "needs the deepspeed package" in found["distributed.strategy"].message
    assert found["distributed.strategy"].line == path.read_text().splitlines().index('strategy = "deepspeed"') + 1
    assert "[distributed.fsdp] options given" in found["distributed.fsdp"].message
    assert "stage 3" in found["distributed.deepspeed.offload_params"].message

    path = _recipe(tmp_path, distributed={"strategy": "fsdp", "fsdp": {"sharding": "hybrid_shard"}})
    assert [p.path for p in _problems(path)] == ["distributed.fsdp.sharding"]
    path = _recipe(tmp_path, distributed={"strategy": "fsdp", "fsdp": {"version": 1, "sharding": "hybrid_shard"}})
    assert _problems(path) == []
    path = _recipe(tmp_path, distributed={"strategy": "ddp", "fsdpp": {}})
    assert [p.path for p in _problems(path)] == ["distributed.fsdpp"]  # unknown keys are errors


def test_validate_fsdp_with_quantized_base(tmp_path):
    model = tmp_path / "q"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "llama", "quantization_config": {"quant_method": "bitsandbytes"}}))
    path = _recipe(tmp_path, model={"name": "q"}, distributed={"strategy": "fsdp"})
    problems = [p for p in _problems(path) if p.path.startswith("distributed")]
    assert len(problems) == 1 and "quantized" in problems[0].message
    path = _recipe(tmp_path, model={"name": "q"}, distributed={"strategy": "ddp"})
    assert not [p for p in _problems(path) if p.path.startswith("distributed")]


def test_validate_deepspeed_config_file(tmp_path, monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object())  # "installed"
    path = _recipe(tmp_path, distributed={"strategy": "deepspeed", "deepspeed": {"config": "ds.json"}})
    problems = _problems(path)
    assert [p.path for p in problems] == ["distributed.deepspeed.config"] and "not found" in problems[0].message
    (tmp_path / "ds.json").write_text("{}")
    assert _problems(path) == []


def test_deepspeed_config_of_an_extended_recipe_stays_relative_to_the_parent(tmp_path, monkeypatch):
    """A path in a parent recipe is relative to the parent's folder, as for every other file option."""
    import importlib.util

    from sftkit.plugins import get_host
    from sftkit.recipe import load_recipe

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object())  # "installed"
    (tmp_path / "base").mkdir()
    _recipe(tmp_path / "base", distributed={"strategy": "deepspeed", "deepspeed": {"config": "ds.json"}})
    (tmp_path / "base" / "ds.json").write_text("{}")
    child = tmp_path / "team" / "child.toml"
    child.parent.mkdir()
    child.write_text(tomli_w.dumps({"recipe": {"name": "child", "extends": "../base/recipe.toml"}}))
    loaded = load_recipe(child, host=get_host())
    assert loaded.config.distributed.deepspeed.config == str((tmp_path / "base" / "ds.json").resolve())
    assert _problems(child) == []
    kwargs = training_kwargs(loaded.config.distributed, World(rank=0, size=2), base_dir=loaded.base_dir)
    assert kwargs["deepspeed"] == str((tmp_path / "base" / "ds.json").resolve())


def test_validate_with_distributed_table_imports_no_heavy_library(tmp_path):
    path = _recipe(tmp_path, distributed={"strategy": "fsdp", "fsdp": {"cpu_offload": True}})
    code = ("import sys\nfrom sftkit.cli import main\ntry:\n"
            f"    main(['validate', {str(path)!r}])\nexcept SystemExit:\n    pass\n"
            "print('HEAVY=' + ','.join(m for m in ('torch', 'transformers', 'accelerate') if m in sys.modules), file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "HEAVY=\n" in proc.stderr + "\n", proc.stderr


def test_resolve_prints_the_global_batch(tmp_path):
    from sftkit.cli import cli

    path = _recipe(tmp_path, training={"per_device_train_batch_size": 4, "gradient_accumulation_steps": 2})
    out = CliRunner().invoke(cli, ["resolve", str(path), "--nproc", "2", "--nnodes", "2"]).output
    assert "# global batch: 4 per device × 2 accumulation × 4 process(es) = 32 rows per optimizer step" in out
    out = CliRunner().invoke(cli, ["resolve", str(path)]).output
    assert "× 1 process(es) = 8 rows" in out


def test_launch_option_errors(tmp_path):
    from sftkit.commands.run import run as run_command

    path = _recipe(tmp_path)
    res = CliRunner().invoke(run_command, [str(path), "--nnodes", "2", "--node-rank", "0"])
    assert res.exit_code == 2 and "--master-addr" in res.output
    res = CliRunner().invoke(run_command, [str(path), "--nnodes", "2", "--node-rank", "2", "--master-addr", "x"])
    assert res.exit_code == 2 and "--node-rank 2" in res.output


def test_sharding_strategies_on_cpu_fail_before_any_process_starts(tmp_path, monkeypatch):
    """accelerate shards (FSDP, DeepSpeed) on accelerators only: on CPU it would silently run DDP."""
    import torch

    from sftkit.commands.run import run as run_command

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    path = _recipe(tmp_path, distributed={"strategy": "fsdp"})
    res = CliRunner().invoke(run_command, [str(path), "--nproc", "2"])
    assert res.exit_code == 1 and "strategy 'fsdp' needs GPUs" in res.output, res.output
    assert "silently trains with DDP" in res.output and len(res.output.strip().splitlines()) == 1
    assert 'use strategy = "ddp" on CPU' in res.output
    res = CliRunner().invoke(run_command, [str(path), "--nproc", "2", "--set", "training.max_steps=0"])
    assert res.exit_code == 1 and "max_steps" in res.output  # the recipe is checked before launching too


def test_each_rank_evaluates_on_its_own_gpu_under_ddp(monkeypatch):
    """The base (and trained) model of a multi-process run is placed like one process's: DDP ranks on
    their own GPU (cuda:LOCAL_RANK); FSDP / DeepSpeed keep the full weights where they were loaded."""
    from types import SimpleNamespace

    from sftkit.run import devices, stages

    placed = []
    monkeypatch.setattr(devices, "place", lambda model, device: placed.append(device) or model)

    def state(world, strategy="ddp", device="cuda"):
        return SimpleNamespace(ctx=SimpleNamespace(world=world, device=device),
                               config=resolve({"distributed": {"strategy": strategy}}))

    model = object()
    assert stages._placed(state(World(rank=3, size=4, local_rank=1, local_size=2)), model) is model
    stages._placed(state(World()), model)
    stages._placed(state(None, device="cpu"), model)
    stages._placed(state(World(rank=1, size=2, local_rank=1, local_size=2), device="cpu"), model)
    assert placed == ["cuda:1", "cuda", "cpu", "cpu"]
    for sharded in ("fsdp", "deepspeed"):
        stages._placed(state(World(rank=1, size=2, local_rank=1, local_size=2), sharded), model)
    stages._placed(state(World(), "fsdp"), model)  # one process: the table does not apply
    assert placed == ["cuda:1", "cuda", "cpu", "cpu", "cuda"]


def test_merge_under_sharded_strategy_is_a_located_problem(tmp_path):
    path = _recipe(tmp_path, adapter={"merge": True}, distributed={"strategy": "fsdp"})
    assert [p.path for p in _problems(path)] == ["adapter.merge"]


# --------------------------------------------------------------------------- sharding

def test_grouped_sampler_shards_like_one_process():
    """accelerate gives rank r every size-th per-device batch of the sampler's order: each optimizer
    step then trains on exactly the rows of one process with the same global batch, and every rank
    gets equally sized, length-grouped batches, the same order on every replay of an epoch."""
    from accelerate.data_loader import BatchSamplerShard
    from torch.utils.data import BatchSampler

    from sftkit.strategies.trainer import GroupedSampler

    lengths = [(i * 37) % 50 + 1 for i in range(40)]
    single = list(BatchSampler(GroupedSampler(lengths, 8, seed=3), 8, drop_last=False))
    ranks = [list(BatchSamplerShard(BatchSampler(GroupedSampler(lengths, 8, seed=3), 4, drop_last=False),
                                    num_processes=2, process_index=r)) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == len(single)
    for step, rows in enumerate(single):
        assert sorted(ranks[0][step] + ranks[1][step]) == sorted(rows)
        assert set(ranks[0][step]).isdisjoint(ranks[1][step]) and len(ranks[0][step]) == len(ranks[1][step]) == 4
    # length-grouped: a rank's batch spans a narrow band of lengths compared with random batches
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in ranks[0]) / len(ranks[0])
    assert spread < 10
    again = list(BatchSamplerShard(BatchSampler(GroupedSampler(lengths, 8, seed=3), 4, drop_last=False),
                                   num_processes=2, process_index=0))
    assert again == ranks[0]
    sampler = GroupedSampler(lengths, 8, seed=3)
    sampler.set_epoch(1)
    assert list(sampler) != [i for b in single for i in b]


def test_sharded_target_splits_and_gathers_in_order():
    calls = []

    class Fake:
        label = "tuned"

        def generate(self, prompts, max_new_tokens=8):
            calls.append(list(prompts))
            return [p.upper() for p in prompts]

    world = World(rank=1, size=3)
    assert shard_indices(7, world) == [1, 4]
    target = ShardedTarget(Fake(), World())
    assert target.generate(["a", "b", "c"], max_new_tokens=2) == ["A", "B", "C"] and target.label == "tuned"
    target.label = "base"
    assert target._target.label == "base"

    import sftkit.run.distributed as dist

    def gather(world, local):  # what all_gather_object would return for three ranks
        parts = [[(i, ["a", "b", "c", "d", "e"][i].upper()) for i in shard_indices(5, World(rank=r, size=3))]
                 for r in range(3)]
        assert local == parts[world.rank]
        return [x for p in parts for x in p]

    calls.clear()
    original = dist.gather_lists
    dist.gather_lists = gather
    try:
        out = ShardedTarget(Fake(), world).generate(["a", "b", "c", "d", "e"])
    finally:
        dist.gather_lists = original
    assert calls == [["b", "e"]] and out == ["A", "B", "C", "D", "E"]


# --------------------------------------------------------------------------- real runs (CPU, gloo)

@pytest.fixture
def ddp_recipe(tmp_path):
    from sftkit.tiny import save_tiny_model

    model = save_tiny_model(tmp_path / "tiny")
    rows = [{"prompt": f"What is {i} plus {i}?" + " please" * (i % 7), "completion": f"It is {2 * i}." + " Thanks." * (i % 4)}
            for i in range(32)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    # 24 training rows: 3 full global batches of 8 per epoch (an epoch's last, partial batch is
    # filled up with repeated rows on some ranks, so there one process and two differ by design)
    data = {
        "recipe": {"name": "ddp", "seed": 5},
        "model": {"name": model},
        "data": [{"source": "jsonl", "path": "train.jsonl"}],
        "dataset": {"eval_fraction": 0.25},
        "template": {"formatter": "chatml"},
        "strategy": {"name": "instruction"},
        "training": {"max_steps": 4, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 2,
                     "learning_rate": 1e-3, "logging_steps": 1, "max_length": 96,
                     # fp32: under bf16 autocast, results depend on the batch shape (2 rows vs 4)
                     "precision": "fp32"},
        "eval": [{"name": "loss"}],
        "output": {"report": False},
    }
    path = tmp_path / "recipe.toml"
    path.write_text(tomli_w.dumps(data))
    return path


def _losses(run_dir: Path) -> list:
    return [e["loss"] for e in map(json.loads, (run_dir / "train_log.jsonl").read_text().splitlines()) if "loss" in e]


def test_two_process_ddp_matches_one_process(ddp_recipe, tmp_path):
    import torch
    from safetensors.torch import load_file

    two = tmp_path / "two"
    res = subprocess.run([*SFTKIT, "run", str(ddp_recipe), "--nproc", "2", "--output", str(two)], cwd=tmp_path,
                         env=_env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    assert (two / "COMPLETE").exists()
    assert res.stdout.count("finished ddp") == 1  # one summary, from the main process
    metrics = json.loads((two / "metrics.json").read_text())
    assert metrics["distributed"] == {"per_device": 2, "accumulation": 2, "world_size": 2, "global": 8,
                                      "strategy": "ddp"}

    from sftkit.run import run

    one = run(ddp_recipe, ["training.per_device_train_batch_size=4"], output=tmp_path / "one").run_dir
    single = json.loads((one / "metrics.json").read_text())
    assert single["distributed"]["world_size"] == 1 and single["distributed"]["global"] == 8

    a, b = _losses(two), _losses(one)
    assert len(a) == len(b) == 4
    assert all(abs(x - y) < 1e-3 for x, y in zip(a, b)), (a, b)
    wa, wb = load_file(str(two / "model" / "model.safetensors")), load_file(str(one / "model" / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for name in wa:
        assert torch.allclose(wa[name], wb[name], atol=1e-5), name
    assert len(metrics["train"]["peak_memory_gb_per_rank"]) == 2 and min(metrics["train"]["peak_memory_gb_per_rank"]) > 0
    assert metrics["train"]["peak_memory_gb"] == max(metrics["train"]["peak_memory_gb_per_rank"])  # one process's need
    # every token of the global batch was counted, on both ranks together
    assert metrics["train"]["trained_tokens"] == single["train"]["trained_tokens"]
    # evaluation split across the ranks and gathered gives the one-process numbers
    assert metrics["eval"][0]["tuned"] is not None
    assert abs(metrics["eval"][0]["tuned"] - single["eval"][0]["tuned"]) < 1e-4, (metrics["eval"], single["eval"])


FSDP_ON_CPU = Path(__file__).parent / "fixtures" / "fsdp_on_cpu"


def test_fsdp_trains_and_saves_like_one_process(ddp_recipe, tmp_path):
    """FSDP2 (fully_shard) with 2 processes on CPU/gloo, through sftkit's own path: loss and final
    weights of one process with the same global batch, and the same plain transformers directory
    (tied weights saved once, no training_args pickle). accelerate enables FSDP on GPUs only (and
    sftkit refuses it on CPU); fixtures/fsdp_on_cpu lifts that guard in the launched processes."""
    import torch
    from safetensors.torch import load_file

    from sftkit.run import run

    fsdp = tmp_path / "fsdp"
    env = _env(PYTHONPATH=os.pathsep.join(p for p in (str(FSDP_ON_CPU), os.environ.get("PYTHONPATH")) if p))
    res = subprocess.run([*SFTKIT, "run", str(ddp_recipe), "--nproc", "2", "--output", str(fsdp),
                          "--set", "distributed.strategy=fsdp"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    metrics = json.loads((fsdp / "metrics.json").read_text())
    assert metrics["train"]["sharded_by"] == "fsdp"  # sharded for real, not DDP under another name
    assert metrics["distributed"]["strategy"] == "fsdp" and metrics["distributed"]["world_size"] == 2

    one = run(ddp_recipe, ["training.per_device_train_batch_size=4"], output=tmp_path / "one").run_dir
    a, b = _losses(fsdp), _losses(one)
    assert len(a) == len(b) == 4 and all(abs(x - y) < 1e-3 for x, y in zip(a, b)), (a, b)
    assert sorted(p.name for p in (fsdp / "model").iterdir()) == sorted(p.name for p in (one / "model").iterdir())
    wa, wb = load_file(str(fsdp / "model" / "model.safetensors")), load_file(str(one / "model" / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for name in wa:
        assert torch.allclose(wa[name], wb[name], atol=1e-5), name
    # every rank reloaded the saved directory and evaluated it: the one-process numbers
    single = json.loads((one / "metrics.json").read_text())
    assert abs(metrics["eval"][0]["tuned"] - single["eval"][0]["tuned"]) < 1e-4, (metrics["eval"], single["eval"])


def test_fsdp_smoke_run_evaluates_the_adapter_it_trained(ddp_recipe, tmp_path):
    """--smoke trains on a tiny stand-in of the recipe's model; under FSDP the trained adapter is
    reloaded from disk for evaluation, onto that stand-in (not the model the adapter names)."""
    from sftkit.run import run
    from sftkit.tiny import tiny_causal_lm, tiny_tokenizer

    tiny_causal_lm(tiny_tokenizer(), seed=1).save_pretrained(tmp_path / "tiny")  # weights unlike the stand-in's
    fsdp = tmp_path / "fsdp"
    env = _env(PYTHONPATH=os.pathsep.join(p for p in (str(FSDP_ON_CPU), os.environ.get("PYTHONPATH")) if p))
    lora = ["adapter.r=4", "adapter.dropout=0.0"]
    res = subprocess.run([*SFTKIT, "run", str(ddp_recipe), "--smoke", "--nproc", "2", "--output", str(fsdp),
                          "--set", "distributed.strategy=fsdp", *(x for o in lora for x in ("--set", o))],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    metrics = json.loads((fsdp / "metrics.json").read_text())
    assert metrics["train"]["sharded_by"] == "fsdp" and metrics["train"]["saved"] == "adapter"
    one = run(ddp_recipe, [*lora, "training.per_device_train_batch_size=4"], smoke=True, output=tmp_path / "one")
    single = json.loads((one.run_dir / "metrics.json").read_text())
    assert abs(metrics["eval"][0]["tuned"] - single["eval"][0]["tuned"]) < 1e-4, (metrics["eval"], single["eval"])


def test_a_failing_rank_ends_the_run_with_one_message(ddp_recipe, tmp_path):
    out = tmp_path / "bad"
    res = subprocess.run([*SFTKIT, "run", str(ddp_recipe), "--nproc", "2", "--output", str(out),
                          "--set", "training.max_length=2"], cwd=tmp_path, env=_env(), capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 1
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: rank ") and "max_length" in errors[0], res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    assert not (out / "COMPLETE").exists()


def _rank_pid(launcher: int, rank: int) -> int | None:
    """The pid of the process of ``rank`` started (through torchrun) by the launcher ``launcher``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            env = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == launcher and f"RANK={rank}".encode() in env:
            return int(entry.name)
    return None


def test_killed_rank_stops_the_run_and_resume_finishes_it(ddp_recipe, tmp_path):
    import signal
    import time

    import torch
    from safetensors.torch import load_file

    out = tmp_path / "killed"
    sets = ["--set", "training.max_steps=6", "--set", "training.save_steps=2"]
    proc = subprocess.Popen([*SFTKIT, "run", str(ddp_recipe), "--nproc", "2", "--output", str(out), *sets],
                            cwd=tmp_path, env=_env(SFTKIT_STEP_SLEEP="0.5"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    marker = out / "checkpoints" / "checkpoint-2" / "trainer_state.json"
    deadline = time.time() + 300
    while not marker.exists():
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    pid = _rank_pid(proc.pid, 1)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode != 0
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert errors == [errors[0]] and "rank 1 was killed by SIGKILL" in errors[0], err[-3000:]
    assert "Traceback" not in err
    assert not (out / "COMPLETE").exists() and not (out / "model").exists()

    res = subprocess.run([*SFTKIT, "run", str(ddp_recipe), "--nproc", "2", "--output", str(out), "--resume", *sets],
                         cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "resuming from" in res.stderr and (out / "COMPLETE").exists()
    steps = [e["step"] for e in map(json.loads, (out / "train_log.jsonl").read_text().splitlines()) if "loss" in e]
    assert steps == list(range(1, 7))

    from sftkit.run import run

    # one process with the same global batch trains to the same weights (see the test above)
    one = run(ddp_recipe, ["training.per_device_train_batch_size=4", "training.max_steps=6", "training.save_steps=2"],
              output=tmp_path / "one").run_dir
    wa, wb = load_file(str(out / "model" / "model.safetensors")), load_file(str(one / "model" / "model.safetensors"))
    for name in wa:
        assert torch.allclose(wa[name], wb[name], atol=1e-5), name


def test_two_nodes_on_one_machine(ddp_recipe, tmp_path):
    """Two launchers (one per "machine", one process each) meet at 127.0.0.1 and finish one run."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "nodes"
    procs = [subprocess.Popen([*SFTKIT, "run", str(ddp_recipe), "--output", str(out), "--set", "training.max_steps=2",
                               "--nnodes", "2", "--node-rank", str(rank), "--master-addr", "127.0.0.1",
                               "--master-port", str(port)], cwd=tmp_path, env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for rank in (0, 1)]
    results = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, results):
        assert p.returncode == 0, err[-3000:]
    assert (out / "COMPLETE").exists()
    assert json.loads((out / "metrics.json").read_text())["distributed"]["world_size"] == 2
    assert "finished ddp" in results[0][0] and "finished" not in results[1][0]  # node 0 reports
