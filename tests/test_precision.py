"""[training] precision: auto follows the hardware (CPU flags, GPU support), explicit choices and the
TrainingArguments flags agree or are reported, and the decision reaches training, evaluation and
metrics.json."""

from __future__ import annotations

import json
import math

import pytest

from sftkit.config import Training, resolve
from sftkit.errors import SftkitError
from sftkit.modeling import precision as P

NATIVE = {"fpu", "avx512f", "avx512_bf16"}
PLAIN = {"fpu", "avx2", "avx512f"}


def test_auto_on_cpus_follows_the_bf16_flags():
    assert P.decide(Training.of({}), "cpu", flags=NATIVE).name == "bf16"
    assert "avx512_bf16" in P.decide(Training.of({}), "cpu", flags=NATIVE).reason
    assert P.decide(Training.of({"precision": "auto"}), "cpu", flags={"amx_bf16", "amx_tile"}).name == "bf16"
    plain = P.decide(Training.of({}), "cpu", flags=PLAIN)
    assert plain.name == "fp32" and "no native bfloat16" in plain.reason


def test_explicit_choices_and_trainingarguments_names():
    assert P.decide(Training.of({"precision": "fp32"}), "cpu", flags=NATIVE).name == "fp32"
    assert P.decide(Training.of({"bf16": False}), "cpu", flags=NATIVE).name == "fp32"
    assert P.decide(Training.of({"precision": "auto", "bf16": True}), "cpu", flags=PLAIN).name == "bf16"
    emulated = P.decide(Training.of({"precision": "bf16"}), "cpu", flags=PLAIN)
    assert emulated.name == "bf16" and "slower" in emulated.reason
    with pytest.raises(SftkitError, match="fp16 needs a CUDA GPU"):
        P.decide(Training.of({"precision": "fp16"}), "cpu", flags=NATIVE)
    with pytest.raises(SftkitError, match="contradicts"):
        P.decide(Training.of({"precision": "fp32", "bf16": True}), "cpu", flags=NATIVE)


@pytest.mark.parametrize("training, bad", [
    ({"bf16": True, "fp16": True}, "contradict each other"),
    ({"precision": "fp32", "fp16": True}, "contradicts fp16 = true"),
    ({"precision": "bf16", "bf16": False}, "contradicts bf16 = false"),
    ({"precision": "fp64"}, "must be one of"),
])
def test_contradictions_are_found_without_torch(training, bad):
    _want, problem = P.requested(Training.of(training))
    assert problem and bad in problem


def test_cpu_flags_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx512_bf16 amx_tile\n\nprocessor\t: 1\n")
    assert {"avx512_bf16", "amx_tile"} <= P.cpu_flags(info)
    assert P.cpu_flags(tmp_path / "missing") == set()


def test_validate_locates_a_contradiction(tmp_path):
    from click.testing import CliRunner

    from sftkit.cli import cli

    (tmp_path / "train.jsonl").write_text('{"prompt": "hi", "completion": "hello"}\n')
    (tmp_path / "r.toml").write_text(
        '[recipe]\nname = "p"\n[model]\nname = "org/m"\n[[data]]\nsource = "jsonl"\npath = "train.jsonl"\n'
        '[strategy]\nname = "instruction"\n[training]\nprecision = "fp32"\nbf16 = true\n')
    result = CliRunner().invoke(cli, ["validate", str(tmp_path / "r.toml")])
    assert result.exit_code == 1
    assert "r.toml:11:1: training.precision: precision = 'fp32' contradicts bf16 = true" in result.output


def test_training_arguments_carry_the_decision(tmp_path, monkeypatch):
    from sftkit.api import RunContext
    from sftkit.strategies.trainer import training_arguments

    def ctx(training):
        return RunContext(config=resolve({"recipe": {"name": "p"}, "training": training}), recipe_path=None,
                          base_dir=tmp_path, run_dir=tmp_path / "run")

    monkeypatch.setattr(P, "cpu_flags", lambda path=P.CPUINFO: NATIVE)
    run = ctx({"max_steps": 2})
    args = training_arguments(run, rows=8, has_eval=False)
    assert args.bf16 is True and args.fp16 is False and run.precision.name == "bf16"
    monkeypatch.setattr(P, "cpu_flags", lambda path=P.CPUINFO: PLAIN)
    args = training_arguments(ctx({"max_steps": 2}), rows=8, has_eval=False)
    assert args.bf16 is False


def test_evaluation_runs_under_the_run_precision(tmp_path):
    """Same model, same requests: bf16 autocast changes the log-likelihoods a little (so it is
    applied), and only a little (so it is the same model)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sftkit.evaluation import Target
    from sftkit.tiny import save_tiny_model

    d = save_tiny_model(tmp_path / "m")
    model, tok = AutoModelForCausalLM.from_pretrained(d), AutoTokenizer.from_pretrained(d)
    pairs = [("The capital of France is", " Paris"), ("def add(a, b):", "\n    return a + b")]
    exact = Target(model, tok, None, precision=P.decide(Training.of({"precision": "fp32"}), "cpu")).loglikelihood(pairs)
    mixed = Target(model, tok, None, precision=P.decide(Training.of({"precision": "bf16"}), "cpu")).loglikelihood(pairs)
    diffs = [abs(a - b) for a, b in zip(exact, mixed)]
    assert max(diffs) > 0
    assert all(d < 0.05 * abs(a) + 0.05 for d, a in zip(diffs, exact))


def _recipe(tmp_path, model_dir):
    import tomli_w

    rows = [{"prompt": f"What is {i} plus {i}?", "completion": f"It is {2 * i}."} for i in range(24)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = {"recipe": {"name": "p"}, "model": {"name": str(model_dir)},
              "data": [{"source": "jsonl", "path": "train.jsonl"}], "dataset": {"eval_fraction": 0.2},
              "template": {"formatter": "chatml"}, "strategy": {"name": "instruction"},
              "training": {"max_steps": 2, "per_device_train_batch_size": 4, "max_length": 64},
              "eval": [{"name": "loss"}]}
    path = tmp_path / "recipe.toml"
    path.write_text(tomli_w.dumps(recipe))
    return path


def test_a_run_records_and_uses_its_precision(tmp_path, monkeypatch):
    from sftkit.run import run
    from sftkit.strategies import trainer
    from sftkit.tiny import save_tiny_model

    monkeypatch.setattr(P, "cpu_flags", lambda path=P.CPUINFO: NATIVE)
    built = []
    real = trainer.training_arguments
    monkeypatch.setattr(trainer, "training_arguments", lambda *a, **k: built.append(real(*a, **k)) or built[-1])
    recipe = _recipe(tmp_path, save_tiny_model(tmp_path / "tiny"))
    said = []
    out = run(recipe, [], output=tmp_path / "run", console=said.append)
    m = json.loads((out.run_dir / "metrics.json").read_text())
    assert m["precision"]["name"] == "bf16" and m["precision"]["requested"] == "auto"
    assert "avx512_bf16" in m["precision"]["reason"]
    assert any(line.startswith("precision bf16 mixed on cpu") for line in said)
    assert [a.bf16 for a in built] == [True]
    assert math.isfinite(m["train"]["final_loss"])
    assert math.isfinite(m["eval"][0]["base"]) and math.isfinite(m["eval"][0]["tuned"])
