"""``sftkit run`` end to end on a tiny random model: the run directory, every strategy, overrides,
the clobber rules, lifecycle hooks and one-line errors for bad input."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest
import tomli_w
import tomllib

CHATML = "chatml"


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from sftkit.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def qa_rows(n=32, seed=0):
    rng = random.Random(seed)
    return [{"prompt": f"What is {i} plus {i}?" + " please" * rng.randint(0, 8),
             "completion": f"It is {2 * i}." + " Thank you." * rng.randint(0, 5)} for i in range(n)]


def make_recipe(tmp_path: Path, tiny_dir, *, rows=None, strategy=None, data=None, training=None, **sections) -> Path:
    if data is None:
        write_jsonl(tmp_path / "train.jsonl", rows if rows is not None else qa_rows())
        data = [{"source": "jsonl", "path": "train.jsonl"}]
    recipe = {
        "recipe": {"name": "t", "seed": 3},
        "model": {"name": str(tiny_dir)},
        "data": data,
        "dataset": {"eval_fraction": 0.1},
        "template": {"formatter": CHATML},
        "strategy": strategy or {"name": "instruction"},
        "training": {"max_steps": 4, "per_device_train_batch_size": 4, "learning_rate": 1e-3,
                     "logging_steps": 1, "max_length": 128, **(training or {})},
        **sections,
    }
    path = tmp_path / "recipe.toml"
    path.write_text(tomli_w.dumps(recipe))
    return path


def run(recipe, *overrides, output, **kw):
    from sftkit.run import run as run_pipeline

    return run_pipeline(recipe, list(overrides), output=output, **kw)


def cli(command, *args):
    """Invoke the ``sftkit run`` click command in process."""
    from click.testing import CliRunner

    from sftkit.commands.run import run as run_command

    assert command == "run"
    return CliRunner().invoke(run_command, [str(a) for a in args])


def error_line(result) -> str:
    out = result.stderr if hasattr(result, "stderr") else result.output
    lines = [x for x in out.splitlines() if x.startswith("error:")]
    assert len(lines) == 1, out
    return lines[0]


# --------------------------------------------------------------------------- instruction

def test_instruction_run_writes_a_complete_run_dir(tmp_path, tiny_dir):
    recipe = make_recipe(tmp_path, tiny_dir)
    out = run(recipe, output=tmp_path / "run")
    d = out.run_dir
    for name in ("model", "recipe.toml", "metrics.json", "train_log.jsonl", "sftkit.lock.json",
                 "data_stats.json", "COMPLETE"):
        assert (d / name).exists(), name
    assert not (d / "checkpoints").exists()  # optimizer state is not kept after a finished run
    m = json.loads((d / "metrics.json").read_text())
    assert m["recipe"] == "t" and m["strategy"] == "instruction"
    assert set(m) >= {"train", "data", "eval", "gates"} and m["gates"]["passed"] is True
    t = m["train"]
    assert t["steps"] == 4 and t["trained_tokens"] > 0 and t["trained_tokens_per_second"] > 0
    assert t["padding_fraction"] < 0.10  # length-grouped batches by default
    assert t["final_loss"] > 0
    log = [json.loads(x) for x in (d / "train_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log if "loss" in e] == [1, 2, 3, 4]
    # the chat template travels with the model
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(d / "model")
    assert "<|im_start|>" in tok.chat_template
    assert (d / "model" / "model.safetensors").exists()
    lock = json.loads((d / "sftkit.lock.json").read_text())
    digest = hashlib.sha256((tmp_path / "train.jsonl").read_bytes()).hexdigest()
    assert digest in [f["sha256"] for f in lock["data_files"].values()]
    assert lock["packages"]["trl"] and lock["recipe_hash"]
    resolved = tomllib.loads((d / "recipe.toml").read_text())
    assert resolved["training"]["max_steps"] == 4 and resolved["strategy"]["name"] == "instruction"


def test_set_overrides_and_packing(tmp_path, tiny_dir):
    recipe = make_recipe(tmp_path, tiny_dir)
    out = run(recipe, "training.max_steps=2", "strategy.packing=true", output=tmp_path / "run")
    t = out.metrics["train"]
    assert t["steps"] == 2 and t["packing"] is True and t["padding_tokens"] == 0


def test_lora_merge_and_adapter_saving(tmp_path, tiny_dir):
    recipe = make_recipe(tmp_path, tiny_dir, adapter={"kind": "lora", "r": 4, "merge": True})
    out = run(recipe, "training.max_steps=2", output=tmp_path / "merged")
    assert out.metrics["train"]["saved"] == "merged"
    assert (out.run_dir / "model" / "model.safetensors").exists()
    out = run(recipe, "training.max_steps=2", "adapter.merge=false", output=tmp_path / "adapter")
    assert out.metrics["train"]["saved"] == "adapter"
    assert (out.run_dir / "model" / "adapter_config.json").exists()
    p = out.metrics["train"]["parameters"]
    assert 0 < p["trainable"] < p["total"]
    from sftkit.models import load_trained

    model, tok = load_trained(out.run_dir / "model")
    assert tok.chat_template


# --------------------------------------------------------------------------- clobber rules and errors

def test_finished_run_needs_overwrite_and_foreign_dir_is_refused(tmp_path, tiny_dir):
    recipe = make_recipe(tmp_path, tiny_dir, training={"max_steps": 1})
    out_dir = tmp_path / "run"
    assert cli("run", recipe, "--output", out_dir).exit_code == 0
    first = (out_dir / "COMPLETE").read_text()
    res = cli("run", recipe, "--output", out_dir)
    assert res.exit_code == 1 and "--overwrite" in error_line(res)
    assert (out_dir / "COMPLETE").read_text() == first
    res = cli("run", recipe, "--output", out_dir, "--overwrite")
    assert res.exit_code == 0, res.output
    assert "trained tokens/s" in res.stdout and "saved:" in res.stdout

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    res = cli("run", recipe, "--output", foreign, "--overwrite")
    assert res.exit_code == 1 and "not an sftkit run" in error_line(res)
    assert (foreign / "notes.txt").read_text() == "mine"


def test_max_length_shorter_than_prompts_says_which_key_to_raise(tmp_path, tiny_dir):
    rows = [{"prompt": "word " * 60, "completion": "ok"} for _ in range(12)]
    recipe = make_recipe(tmp_path, tiny_dir, rows=rows, training={"max_length": 16})
    res = cli("run", recipe, "--output", tmp_path / "run")
    assert res.exit_code == 1
    assert "max_length" in error_line(res)
    assert not (tmp_path / "run").exists()  # bad input leaves no half-made run directory behind
    res = cli("run", recipe, "--output", tmp_path / "run", "--set", "training.max_length=512")
    assert res.exit_code == 0, res.output


def test_strategy_that_does_not_fit_the_data(tmp_path, tiny_dir):
    write_jsonl(tmp_path / "docs.jsonl", [{"text": f"document {i}"} for i in range(10)])
    data = [{"source": "jsonl", "path": "docs.jsonl", "format": "text"}]
    recipe = make_recipe(tmp_path, tiny_dir, data=data, strategy={"name": "tone"})
    res = cli("run", recipe, "--output", tmp_path / "tone")
    assert res.exit_code == 1 and "tone" in error_line(res)
    recipe = make_recipe(tmp_path, tiny_dir, strategy={"name": "classification"})
    res = cli("run", recipe, "--output", tmp_path / "cls")
    assert res.exit_code == 1 and "classification" in error_line(res)


def test_model_not_found_is_one_line(tmp_path, tiny_dir):
    recipe = make_recipe(tmp_path, tiny_dir)
    res = cli("run", recipe, "--output", tmp_path / "run", "--set", f"model.name={tmp_path / 'nope'}")
    assert res.exit_code == 1
    assert "nope" in error_line(res)
    assert not (tmp_path / "run").exists()


def test_overwrite_and_resume_exclude_each_other(tmp_path, tiny_dir):
    recipe = make_recipe(tmp_path, tiny_dir)
    res = cli("run", recipe, "--overwrite", "--resume")
    assert res.exit_code == 2 and "exclude" in error_line(res)


# --------------------------------------------------------------------------- hooks

def test_lifecycle_hooks_are_called(tmp_path, tiny_dir):
    from sftkit import hookimpl
    from sftkit.plugins import make_host

    seen = []

    class Spy:
        @hookimpl
        def sftkit_run_start(self, run):
            seen.append(("start", run.data.kind, run.run_dir.name))

        @hookimpl
        def sftkit_run_end(self, run, metrics):
            seen.append(("end", metrics["strategy"], (run.run_dir / "metrics.json").exists()))

    host = make_host(entry_points=False, extra=(("spy", Spy()),))
    recipe = make_recipe(tmp_path, tiny_dir, training={"max_steps": 1})
    run(recipe, output=tmp_path / "run", host=host)
    assert seen == [("start", "messages", "run"), ("end", "instruction", True)]


def test_failing_lifecycle_hooks_are_named_and_the_run_completes(tmp_path, tiny_dir):
    from sftkit import hookimpl
    from sftkit.plugins import make_host

    class Flaky:
        @hookimpl
        def sftkit_run_start(self, run):
            raise RuntimeError("tracker offline")

        @hookimpl
        def sftkit_run_end(self, run, metrics):
            raise SystemExit(3)

    lines = []
    host = make_host(entry_points=False, extra=(("flaky", Flaky()),))
    recipe = make_recipe(tmp_path, tiny_dir, training={"max_steps": 1})
    out = run(recipe, output=tmp_path / "run", host=host, console=lines.append)
    expected = ["plugin 'flaky' failed in sftkit_run_start: RuntimeError: tracker offline",
                "plugin 'flaky' failed in sftkit_run_end: SystemExit: 3"]
    # other warnings (a busy machine's thread advice) depend on the machine; the plugin ones must be exact
    assert [f"warning: {e}" for e in expected] == [line for line in lines if line.startswith("warning: plugin")]
    assert (out.run_dir / "COMPLETE").exists()  # a finished training is never lost to a plugin
    assert json.loads((out.run_dir / "metrics.json").read_text())["plugin_errors"] == expected


# --------------------------------------------------------------------------- other strategies

def _prefs(n=16):
    rows = []
    for i in range(n):
        rows.append({"prompt": f"Where is order {i}?", "chosen": f"Thanks for asking! Order {i} ships today.",
                     "rejected": f"Order {i}. Look it up yourself." if i % 5 else f"Thanks for asking! Order {i} ships today."})
    return rows


def test_tone_dpo_drops_identical_pairs_and_reports_length_bias(tmp_path, tiny_dir):
    write_jsonl(tmp_path / "pairs.jsonl", _prefs())
    data = [{"source": "jsonl", "path": "pairs.jsonl", "format": "preference"}]
    recipe = make_recipe(tmp_path, tiny_dir, data=data, strategy={"name": "tone", "beta": 0.2},
                         training={"max_steps": 2})
    out = run(recipe, output=tmp_path / "run")
    t = out.metrics["train"]
    assert t["method"] == "dpo" and t["beta"] == 0.2 and t["steps"] == 2
    assert t["trained_tokens"] > 0 and t["trained_tokens_per_second"] > 0  # completion tokens of both answers
    tone = out.metrics["data"]["tone"]
    assert tone["identical_pairs"] >= 3
    assert set(tone["length_bias"]) >= {"chosen_chars", "rejected_chars", "chosen_tokens", "relative_difference"}
    stats = json.loads((out.run_dir / "data_stats.json").read_text())
    assert stats["tone"]["method"] == "dpo"
    assert (out.run_dir / "model" / "model.safetensors").exists()


def test_tone_kto_on_labelled_answers(tmp_path, tiny_dir):
    rows = [{"prompt": f"Question {i}?", "completion": f"Answer {i}.", "label": bool(i % 2)} for i in range(16)]
    write_jsonl(tmp_path / "labeled.jsonl", rows)
    data = [{"source": "jsonl", "path": "labeled.jsonl", "format": "labeled"}]
    recipe = make_recipe(tmp_path, tiny_dir, data=data, strategy={"name": "tone", "undesirable_weight": 1.5},
                         training={"max_steps": 2})
    out = run(recipe, output=tmp_path / "run")
    assert out.metrics["train"]["method"] == "kto"
    assert out.metrics["train"]["kto_weights"] == {"desirable": 1.0, "undesirable": 1.5}
    assert out.metrics["data"]["tone"]["good"] + out.metrics["data"]["tone"]["bad"] == out.metrics["data"]["train_rows"]


def test_domain_packs_and_replays(tmp_path, tiny_dir):
    write_jsonl(tmp_path / "docs.jsonl",
                [{"text": "The patient presented with fever and cough; diagnosis: pneumonia. " * (1 + i % 4)} for i in range(20)])
    (tmp_path / "general.txt").write_text("\n\n".join(f"The quick brown fox number {i} jumps." for i in range(40)))
    data = [{"source": "jsonl", "path": "docs.jsonl", "format": "text"}]
    recipe = make_recipe(tmp_path, tiny_dir, data=data,
                         strategy={"name": "domain", "replay": {"path": "general.txt", "fraction": 0.25}},
                         training={"max_steps": 2, "max_length": 64})
    out = run(recipe, output=tmp_path / "run")
    t = out.metrics["train"]
    assert t["packing"] is True and t["padding_fraction"] < 0.1
    replay = out.metrics["data"]["replay"]
    assert 0.15 < replay["share"] < 0.4 and replay["documents"] > 0
    assert t["eval_perplexity"] > 1
    lock = json.loads((out.run_dir / "sftkit.lock.json").read_text())
    assert "strategy.replay.path" in lock["data_files"]


def test_classification_on_a_decoder_backbone(tmp_path, tiny_dir):
    rows = [{"text": f"I {'love' if i % 3 else 'hate'} item {i}", "label": "pos" if i % 3 else "neg"} for i in range(30)]
    write_jsonl(tmp_path / "cls.jsonl", rows)
    data = [{"source": "jsonl", "path": "cls.jsonl", "format": "classification"}]
    recipe = make_recipe(tmp_path, tiny_dir, data=data, strategy={"name": "classification"},
                         dataset={"eval_fraction": 0.2})
    out = run(recipe, output=tmp_path / "run")
    t = out.metrics["train"]
    assert t["labels"] == ["neg", "pos"] and 0 <= t["eval_accuracy"] <= 1
    assert out.metrics["data"]["classes"]["counts"]["pos"] > out.metrics["data"]["classes"]["counts"]["neg"]
    cfg = json.loads((out.run_dir / "model" / "config.json").read_text())
    assert cfg["id2label"] == {"0": "neg", "1": "pos"} and cfg["label2id"] == {"neg": 0, "pos": 1}


# --------------------------------------------------------------------------- gates

def test_failed_gate_exits_3_after_writing_the_run_but_not_in_smoke(tmp_path, tiny_dir):
    evals = [{"name": "json_valid", "items": ["Say hi", "Say bye"], "max_new_tokens": 4, "min": 0.9}]
    recipe = make_recipe(tmp_path, tiny_dir, training={"max_steps": 1}, eval=evals)
    res = cli("run", recipe, "--output", tmp_path / "run")
    assert res.exit_code == 3, res.output
    assert "gate" in error_line(res)
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["gates"]["passed"] is False and m["gates"]["failures"]
    assert m["eval"][0]["tuned"] is not None and m["eval"][0]["base"] is not None
    assert (tmp_path / "run" / "COMPLETE").exists()  # the run finished; its quality did not
    res = cli("run", recipe, "--output", tmp_path / "smoke", "--smoke")
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "smoke" / "metrics.json").read_text())
    assert m["gates"]["passed"] is False and m["gates"]["enforced"] is False


def test_tone_on_good_answers_only_is_sft(tmp_path, tiny_dir):
    rows = [{"prompt": f"Question {i}?", "completion": f"Gladly! Answer {i}.", "label": True} for i in range(12)]
    write_jsonl(tmp_path / "good.jsonl", rows)
    data = [{"source": "jsonl", "path": "good.jsonl", "format": "labeled"}]
    recipe = make_recipe(tmp_path, tiny_dir, data=data, strategy={"name": "tone"}, training={"max_steps": 2})
    out = run(recipe, output=tmp_path / "run")
    assert out.metrics["train"]["method"] == "sft" and out.metrics["train"]["trained_tokens"] > 0


def test_recipe_by_shipped_name_and_missing_file():
    from sftkit.commands.run import resolve_recipe

    assert resolve_recipe("instruction").name == "instruction.toml"
    res = cli("run", "instructoin")
    assert res.exit_code == 2 and 'did you mean "instruction"' in error_line(res)


def test_freeze_trains_only_the_unfrozen_part(tmp_path, tiny_dir):
    import torch
    from safetensors.torch import load_file

    recipe = make_recipe(tmp_path, tiny_dir, freeze={"train_last_layers": 1}, training={"max_steps": 2})
    out = run(recipe, output=tmp_path / "run")
    p = out.metrics["train"]["parameters"]
    assert 0 < p["trainable"] < p["total"]
    before = load_file(str(Path(tiny_dir) / "model.safetensors"))
    after = load_file(str(out.run_dir / "model" / "model.safetensors"))
    assert torch.equal(before["model.layers.0.mlp.up_proj.weight"], after["model.layers.0.mlp.up_proj.weight"])
    assert not torch.equal(before["model.layers.1.mlp.up_proj.weight"], after["model.layers.1.mlp.up_proj.weight"])


def test_a_smoke_lora_run_saves_merged_weights_not_an_adapter_on_the_real_model(tmp_path, tiny_dir):
    """--smoke trains LoRA on a tiny stand-in that exists nowhere on disk: an adapter would name the
    recipe's model as its base (weights it was not trained on), so the smoke run saves merged weights."""
    recipe = make_recipe(tmp_path, tiny_dir, training={"max_steps": 1}, adapter={"kind": "lora", "r": 4, "merge": False})
    out = run(recipe, output=tmp_path / "run", smoke=True)
    assert out.metrics["train"]["saved"] == "merged"
    saved = out.run_dir / "model"
    assert not (saved / "adapter_config.json").exists() and (saved / "config.json").exists()
    # (without --smoke the same table saves an adapter: test_lora_merge_and_adapter_saving)
