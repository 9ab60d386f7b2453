"""Unit tests of the training pieces: collators, grouped sampling, packing, run directory, lock file,
strategy helpers and registrations. Tiny models and hand-built token rows only."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest

from sftkit.errors import SftkitError

# --------------------------------------------------------------------------- collators

def test_pad_collator_pads_right_and_masks_labels():
    from sftkit.strategies.collate import PadCollator

    batch = PadCollator(pad_token_id=0)([
        {"input_ids": [5, 6, 7], "labels": [-100, 6, 7]},
        {"input_ids": [8], "labels": [8]},
    ])
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


def test_flatten_collator_restarts_positions_and_masks_row_starts():
    from sftkit.strategies.collate import FlattenCollator

    batch = FlattenCollator()([
        {"input_ids": [5, 6, 7], "labels": [-100, 6, 7]},
        {"input_ids": [8, 9], "labels": [8, 9]},
    ])
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1]]
    # the first token of a row is never predicted from the previous row
    assert batch["labels"].tolist() == [[-100, 6, 7, -100, 9]]
    assert "attention_mask" not in batch


def test_flattened_rows_do_not_attend_to_each_other(tiny_tokenizer):
    """Padding-free packing gives every row exactly the logits it gets alone."""
    import torch

    from sftkit.strategies.collate import FlattenCollator
    from sftkit.tiny import tiny_causal_lm

    model = tiny_causal_lm(tiny_tokenizer).eval()
    rows = [{"input_ids": [11, 12, 13, 14]}, {"input_ids": [21, 22, 23]}, {"input_ids": [31, 32, 33, 34, 35]}]
    batch = FlattenCollator()(rows)
    with torch.no_grad():
        # use_cache=False as in training (the Trainer sets config.use_cache = False)
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[0]
        start = 0
        for row in rows:
            n = len(row["input_ids"])
            alone = model(input_ids=torch.tensor([row["input_ids"]]), use_cache=False).logits[0]
            assert torch.allclose(packed[start:start + n], alone, atol=1e-5)
            start += n


def test_token_counter_counts_trained_real_and_padding():
    from sftkit.strategies.collate import PadCollator, TokenCounter

    batch = PadCollator(pad_token_id=0)([
        {"input_ids": [5, 6, 7, 8], "labels": [-100, -100, 7, 8]},
        {"input_ids": [9, 10], "labels": [-100, 10]},
    ])
    c = TokenCounter()
    c.add_batch(batch)
    assert (c.trained, c.real, c.padded) == (3, 6, 2)
    assert c.padding_fraction == pytest.approx(2 / 8)


# --------------------------------------------------------------------------- grouped sampling

def _padding(order, lengths, bs):
    pad = total = 0
    for i in range(0, len(order), bs):
        batch = [lengths[j] for j in order[i:i + bs]]
        total += max(batch) * len(batch)
        pad += max(batch) * len(batch) - sum(batch)
    return pad / total


def test_grouped_sampler_is_a_seeded_permutation_with_little_padding():
    from sftkit.strategies.trainer import GroupedSampler

    rng = random.Random(0)
    lengths = [rng.randint(8, 512) for _ in range(2000)]
    s = GroupedSampler(lengths, batch_size=8, seed=3)
    first = list(s)
    assert sorted(first) == list(range(2000))
    assert list(GroupedSampler(lengths, batch_size=8, seed=3)) == first  # same seed, same epoch: same order
    s.set_epoch(1)
    assert list(s) != first  # a new epoch reshuffles
    shuffled = list(range(2000))
    rng.shuffle(shuffled)
    assert _padding(shuffled, lengths, 8) > 0.25  # what padding to the longest in a random batch costs
    assert _padding(first, lengths, 8) < 0.05


# --------------------------------------------------------------------------- training arguments

def _ctx(tmp_path, training=None, **recipe):
    from sftkit.api import RunContext

    data = {"recipe": {"name": "t", "seed": 5}, "model": {"name": "x"}, "training": training or {}, **recipe}
    return RunContext(recipe=data, recipe_path=None, base_dir=tmp_path, run_dir=tmp_path / "run")


def test_training_arguments_defaults_and_mapping(tmp_path):
    from sftkit.strategies.trainer import training_arguments

    args = training_arguments(_ctx(tmp_path, {"max_steps": 100, "warmup_ratio": 0.1, "learning_rate": 1e-4,
                                              "per_device_train_batch_size": 2}), rows=50, has_eval=False)
    assert args.max_steps == 100 and args.learning_rate == 1e-4
    assert args.warmup_steps == pytest.approx(0.1)  # transformers 5: a ratio below 1
    assert args.save_steps == 20  # max(10, steps / 5)
    assert args.seed == 5 and args.data_seed == 5
    assert not getattr(args, "activation_checkpointing", getattr(args, "gradient_checkpointing", False))
    assert args.output_dir == str(tmp_path / "run" / "checkpoints")
    assert args.report_to in ([], ["none"], "none", None)


# --------------------------------------------------------------------------- run directory

def test_rundir_life_cycle(tmp_path):
    from sftkit.run import rundir

    d = tmp_path / "run"
    assert rundir.claim(d, recipe_name="r", recipe_hash="h1") == "new"
    assert rundir.state(d) == "unfinished"
    with pytest.raises(SftkitError, match="--resume"):
        rundir.claim(d, recipe_name="r", recipe_hash="h1")
    with pytest.raises(SftkitError, match="recipe changed"):
        rundir.claim(d, recipe_name="r", recipe_hash="h2", resume=True)
    assert rundir.claim(d, recipe_name="r", recipe_hash="h1", resume=True) == "resumed"
    (d / "model").mkdir()
    rundir.mark_complete(d)
    assert rundir.state(d) == "complete"
    with pytest.raises(SftkitError, match="--overwrite"):
        rundir.claim(d, recipe_name="r", recipe_hash="h1")
    with pytest.raises(SftkitError, match="nothing to resume"):
        rundir.claim(d, recipe_name="r", recipe_hash="h1", resume=True)
    assert rundir.claim(d, recipe_name="r", recipe_hash="h1", overwrite=True) == "overwritten"
    assert not (d / "model").exists() and not (d / "COMPLETE").exists()


def test_rundir_refuses_foreign_directory_even_with_overwrite(tmp_path):
    from sftkit.run import rundir

    d = tmp_path / "mine"
    d.mkdir()
    (d / "thesis.tex").write_text("precious")
    for kw in ({}, {"overwrite": True}, {"resume": True}):
        with pytest.raises(SftkitError, match="not an sftkit run"):
            rundir.claim(d, recipe_name="r", recipe_hash="h", **kw)
    assert (d / "thesis.tex").read_text() == "precious"
    with pytest.raises(SftkitError, match="nothing to resume"):
        rundir.claim(tmp_path / "absent", recipe_name="r", recipe_hash="h", resume=True)


def test_last_checkpoint_skips_incomplete_and_truncated_ones_with_a_warning(tmp_path):
    import torch
    from safetensors.torch import save_file

    from sftkit.strategies.trainer import finished_training, last_checkpoint

    ck = tmp_path / "checkpoints"
    for step in (5, 12, 15, 20):
        d = ck / f"checkpoint-{step}"
        d.mkdir(parents=True)
        save_file({"w": torch.ones(64)}, str(d / "model.safetensors"))
        (d / "trainer_state.json").write_text(json.dumps({"global_step": step, "max_steps": 20}))
    (ck / "checkpoint-25").mkdir()  # killed while saving: no trainer_state.json
    (ck / "checkpoint-20" / "trainer_state.json").write_text('{"global_step": 2')  # truncated
    weights = ck / "checkpoint-15" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])  # truncated tensor data
    warnings = []
    assert last_checkpoint(tmp_path, warn=warnings.append) == str(ck / "checkpoint-12")
    assert [w.split(":")[1].strip() for w in warnings] == ["skipping checkpoint-20", "skipping checkpoint-15"]
    assert "truncated" in warnings[0] and "model.safetensors is truncated" in warnings[1]
    assert not finished_training(str(ck / "checkpoint-12"))
    (ck / "checkpoint-12" / "trainer_state.json").write_text(json.dumps({"global_step": 20, "max_steps": 20}))
    assert finished_training(str(ck / "checkpoint-12"))


# --------------------------------------------------------------------------- lock file

def test_lock_records_versions_and_data_hashes(tmp_path):
    import hashlib

    from sftkit.run.lockfile import build_lock

    f = tmp_path / "train.jsonl"
    f.write_text('{"prompt": "a", "completion": "b"}\n')
    lock = build_lock({"data": [{"source": "jsonl", "path": "train.jsonl"}]}, tmp_path, recipe_hash="abc")
    assert lock["recipe_hash"] == "abc"
    for pkg in ("torch", "transformers", "trl", "datasets", "peft", "sftkit"):
        assert lock["packages"][pkg]
    entry = lock["data_files"]["data[0].path"]
    assert entry["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- tone helpers

def test_pairs_checked_and_length_bias_reported():
    import datasets

    from sftkit.strategies.tone import check_pairs, length_bias

    ds = datasets.Dataset.from_list([
        {"prompt": [{"role": "user", "content": "q"}], "chosen": "Thank you so much for asking, here it is.", "rejected": "No."},
        {"prompt": [{"role": "user", "content": "q2"}], "chosen": "same", "rejected": "same "},
    ])
    kept, dropped = check_pairs(ds)
    assert dropped == 1 and len(kept) == 1
    bias = length_bias(["a long and courteous answer"] * 3, ["short"] * 3, paired=True)
    assert bias["relative_difference"] > 1 and "longer" in bias["warning"]
    assert bias["chosen_longer_share"] == 1.0
    assert "warning" not in length_bias(["abcd"], ["abce"])
    # systematically a little longer in every pair is flagged too
    bias = length_bias(["answer number %02d!!" % i for i in range(12)], ["answer number %02d" % i for i in range(12)],
                       paired=True)
    assert bias["chosen_longer_share"] == 1.0 and "warning" in bias


def test_tone_method_follows_the_data():
    import datasets

    from sftkit.data.bundle import DataBundle
    from sftkit.errors import DataError
    from sftkit.strategies.tone import ToneStrategy

    p = [{"role": "user", "content": "q"}]
    labeled = lambda labels: DataBundle("labeled", datasets.Dataset.from_list(  # noqa: E731
        [{"prompt": p, "completion": "a", "label": x} for x in labels]), None)
    assert ToneStrategy({}).method_for(labeled([True, False])) == "kto"
    assert ToneStrategy({}).method_for(labeled([True, True])) == "sft"
    with pytest.raises(DataError, match="only bad"):
        ToneStrategy({}).method_for(labeled([False]))
    with pytest.raises(DataError, match="does not fit"):
        ToneStrategy({"method": "dpo"}).method_for(labeled([True, False]))


# --------------------------------------------------------------------------- classification helpers

def test_class_balance_and_freeze_backbone(tiny_tokenizer):
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from sftkit.strategies.classification import class_balance, freeze_backbone

    bal = class_balance(["a"] * 9 + ["b"] * 2 + ["c"] * 3)
    assert bal["counts"] == {"a": 9, "b": 2, "c": 3} and bal["imbalance_ratio"] == 4.5
    assert "'b'" in bal["warning"]
    assert "warning" not in class_balance(["a", "b"])
    cfg = AutoConfig.for_model("llama", vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                               num_attention_heads=2, num_key_value_heads=2, num_labels=3, pad_token_id=0)
    model = AutoModelForSequenceClassification.from_config(cfg)
    freeze_backbone(model)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"score.weight"}


# --------------------------------------------------------------------------- domain helpers

def test_pack_restarts_positions_per_document_and_pads_last_row():
    from sftkit.strategies.domain import pack

    rows, info = pack([[1, 2, 3], [4, 5, 6, 7, 8], [9]], max_length=4, pad_id=0)
    assert [r["input_ids"] for r in rows] == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 0, 0, 0]]
    assert [r["position_ids"] for r in rows] == [[0, 1, 2, 0], [0, 1, 2, 3], [0, 1, 2, 3]]
    assert rows[2]["labels"] == [9, -100, -100, -100]
    assert info["padding_tokens"] == 3 and info["rows"] == 3
    short, _ = pack([[1, 2]], max_length=8, pad_id=0)
    assert short == [{"input_ids": [1, 2], "labels": [1, 2], "position_ids": [0, 1]}]


def test_read_replay_formats(tmp_path):
    from sftkit.errors import DataError
    from sftkit.strategies.domain import read_replay

    (tmp_path / "g.txt").write_text("first doc\n\nsecond doc\n")
    (tmp_path / "g.jsonl").write_text(json.dumps({"body": "x"}) + "\n")
    assert read_replay(tmp_path / "g.txt") == ["first doc", "second doc"]
    assert read_replay(tmp_path / "g.jsonl", "body") == ["x"]
    with pytest.raises(DataError, match="not found"):
        read_replay(tmp_path / "missing.txt")


# --------------------------------------------------------------------------- registrations

def test_strategies_registered_with_strict_schemas_and_accepts():
    from sftkit.plugins import make_host

    reg = make_host(entry_points=False).registry
    want = {"instruction": ["messages"], "tone": ["preference", "labeled", "messages"],
            "classification": ["classification"], "domain": ["text", "messages"]}
    for name, accepts in want.items():
        comp = reg.get("strategies", name)
        assert comp.meta["accepts"] == accepts
        assert comp.schema["additionalProperties"] is False
        assert comp.doc
        strategy = comp.create({})
        assert strategy.name == name and hasattr(strategy, "train")


def test_builtin_strategies_and_checks_import_nothing_heavy():
    code = ("import sys, sftkit.builtin.strategies, sftkit.strategies.checks, sftkit.strategies;"
            "heavy=[m for m in ('torch','transformers','trl','datasets','peft','numpy') if m in sys.modules];"
            "print(heavy); sys.exit(1 if heavy else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_tone_check_flags_method_that_does_not_fit(tmp_path):
    from sftkit.strategies.checks import check_tone

    class Ctx:
        recipe = {"data": [{"source": "jsonl"}]}
        data_kinds = ["labeled"]

    assert check_tone({"method": "dpo"}, Ctx())[0].path == "method"  # validate prefixes "strategy."
    assert check_tone({"method": "auto"}, Ctx()) == []


def test_rundir_dry_run_writes_nothing_and_discard_cleans_up(tmp_path):
    from sftkit.run import rundir

    d = tmp_path / "run"
    assert rundir.claim(d, recipe_name="r", recipe_hash="h", dry_run=True) == "new"
    assert not d.exists()
    rundir.claim(d, recipe_name="r", recipe_hash="h")
    (d / "recipe.toml").write_text("x")
    rundir.discard(d, remove_dir=True)
    assert not d.exists()
    rundir.claim(d, recipe_name="r", recipe_hash="h")
    rundir.mark_complete(d)
    rundir.discard(d, remove_dir=True)  # never touches a finished run
    assert (d / "COMPLETE").exists()


def test_a_strategy_declares_the_kinds_it_accepts_once_and_every_reader_agrees(tmp_path):
    """Declared in the registration (where validate reads it without creating the strategy); the run,
    plan, preview, validate and init all read it through strategies.selection.accepted_kinds."""
    from types import SimpleNamespace

    from sftkit.plugins import make_host
    from sftkit.strategies.selection import accepted_kinds

    reg = make_host(entry_points=False).registry
    for name in ("instruction", "tone", "classification", "domain"):
        comp = reg.get("strategies", name)
        assert "accepts" not in type(comp.create({})).__dict__, name  # no second declaration on the class
        assert accepted_kinds(comp, comp.create({})) == tuple(comp.meta["accepts"])
    plugin_only_class = SimpleNamespace(meta={})
    assert accepted_kinds(plugin_only_class, SimpleNamespace(accepts=("text",))) == ("text",)
    assert accepted_kinds(None) == ()
