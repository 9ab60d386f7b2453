"""QLoRA (``[adapter] kind = "qlora"``): validation without torch, the backend check, the memory model,
and, where bitsandbytes has a 4-bit backend for the CPU (0.50 has one), training end to end: the loss
falls, the adapter reloads onto the same 4-bit base with the same answers, a merged save de-quantizes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import tomli_w

from sftkit.modeling import qlora


def _backend_here() -> str | None:
    try:
        return qlora.backend_problem("cpu")
    except Exception as exc:  # pragma: no cover - a broken install
        return str(exc)


needs_backend = pytest.mark.skipif(_backend_here() is not None, reason=f"no 4-bit CPU backend: {_backend_here()}")


@pytest.fixture(scope="module")
def tiny64(tmp_path_factory):
    """A tiny Llama whose layers are one NF4 block (64) wide, with a ChatML template."""
    from sftkit.tiny import CHATML_TEMPLATE, tiny_causal_lm, tiny_tokenizer

    path = tmp_path_factory.mktemp("tiny64") / "model"
    tok = tiny_tokenizer(chat_template=CHATML_TEMPLATE)
    tiny_causal_lm(tok, hidden_size=64).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def recipe(tmp_path, model, *, adapter=None, extra=None, strategy="instruction", rows=40):
    data = [{"prompt": f"What is {i} plus {i}?", "completion": f"It is {2 * i}."} for i in range(rows)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in data))
    body = {"recipe": {"name": "q", "seed": 1}, "model": {"name": str(model)},
            "data": [{"source": "jsonl", "path": "train.jsonl"}], "dataset": {"eval_fraction": 0.2},
            "template": {"formatter": "chatml"}, "strategy": {"name": strategy},
            "training": {"max_steps": 30, "per_device_train_batch_size": 4, "max_length": 64, "learning_rate": 5e-3,
                         "logging_steps": 1},
            "adapter": {"kind": "qlora", "r": 8, **(adapter or {})}, "eval": [{"name": "loss"}], **(extra or {})}
    path = tmp_path / "recipe.toml"
    path.write_text(tomli_w.dumps(body))
    return path


# -- validation (light) ----------------------------------------------------------------------------------

def _validate(path) -> tuple[list[str], bool]:
    """``sftkit validate`` in a fresh interpreter: its error lines, and whether torch got imported."""
    code = ("import sys; from sftkit.cli import cli\n"
            f"try: cli(['validate', {str(path)!r}])\n"
            "except SystemExit as e: print('exit', e.code)\n"
            "print('torch' in sys.modules or 'bitsandbytes' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    stdout = out.stdout.strip().splitlines()
    return stdout[:-1] + out.stderr.strip().splitlines(), stdout[-1] == "True"


def test_qlora_refusals_are_one_line_each_without_torch(tmp_path):
    path = recipe(tmp_path, "org/model", extra={"freeze": {"layers": "0-1"},
                                                "distributed": {"strategy": "fsdp"}})
    lines, heavy = _validate(path)
    assert not heavy
    errors = [x for x in lines if "recipe.toml:" in x]
    assert len(errors) == 2, lines
    freeze = next(x for x in errors if ": freeze:" in x)
    assert "4-bit (QLoRA) weights cannot" in freeze and 'kind = "lora"' in freeze
    fsdp = next(x for x in errors if "distributed" in x)
    assert "FSDP2 does not shard 4-bit" in fsdp and "version = 1" in fsdp


def test_a_plain_qlora_recipe_validates(tmp_path):
    lines, heavy = _validate(recipe(tmp_path, "org/model", adapter={"double_quant": False}))
    assert not heavy and "exit 0" in lines, lines


def test_fsdp_refused_where_installed_versions_cannot_shard_4bit():
    from sftkit.config import Adapter, Distributed

    fsdp1 = Distributed.of({"strategy": "fsdp", "fsdp": {"version": 1}})
    here = qlora.recipe_problems(Adapter(kind="qlora"), freeze=False, distributed=fsdp1, trains_classifier=False)
    assert all("needs >=" in m for _p, m, _h in here)  # FSDP1 passes where what is installed is recent
    old = {"accelerate": "0.27.2", "bitsandbytes": None, "transformers": "4.50.0", "peft": "0.12.0"}
    (path, message, hint), = qlora.recipe_problems(Adapter(kind="qlora"), freeze=False, distributed=fsdp1,
                                                   trains_classifier=False, version=old.get)
    assert path == ("distributed", "strategy") and "accelerate 0.27.2 (needs >= 0.28.0)" in message
    assert "bitsandbytes missing" in message and "transformers" not in message and "sftkit[qlora]" in hint
    assert qlora.recipe_problems(Adapter(kind="lora"), freeze=True, distributed=fsdp1, trains_classifier=True) == []


def test_classification_head_cannot_also_carry_an_adapter():
    from sftkit.config import Adapter

    adapter = Adapter(kind="qlora", target_modules=["q_proj", "score"])
    (path, message, _hint), = qlora.recipe_problems(adapter, freeze=False, distributed=None, trains_classifier=True)
    assert path == ("adapter", "target_modules") and "score" in message and "trains whole" in message
    assert qlora.recipe_problems(adapter, freeze=False, distributed=None, trains_classifier=False) == []


def test_no_backend_is_one_line_naming_what_is_missing(monkeypatch):
    from sftkit.errors import SftkitError

    monkeypatch.setattr(qlora, "installed_version", lambda dist: None)
    with pytest.raises(SftkitError) as err:
        qlora.require_backend("cuda")
    assert "needs bitsandbytes, which is not installed" in str(err.value) and "sftkit[qlora]" in err.value.hint


@pytest.mark.skipif(qlora.installed_version("bitsandbytes") is None, reason="bitsandbytes is not installed")
def test_a_device_without_a_backend_is_named(monkeypatch):
    why = qlora.backend_problem("no-such-device")
    assert "has no 4-bit backend for 'no-such-device'" in why and "cpu" in why
    import bitsandbytes.functional

    def broken(*args, **kwargs):
        raise RuntimeError("no native kernel for this CPU\nmore detail")

    monkeypatch.setattr(bitsandbytes.functional, "quantize_4bit", broken)
    why = qlora.backend_problem("cpu")  # listed as supported, but the round trip fails: said, in one line
    assert why.endswith("cannot quantize to 4-bit on 'cpu' here: RuntimeError: no native kernel for this CPU")


def test_memory_model_counts_4bit_weights_and_float32_adapters():
    from sftkit.plan.memory import training_memory

    kw = dict(parameters=1_000_000, trainable=10_000, weight_bytes=4, tokens_per_step=64, layers=2, hidden=64,
              vocab=512, autocast=True)
    full = training_memory(**kw)
    q = training_memory(**kw, quantized=900_000)
    assert q["weights"] == 100_000 * 4 + round(900_000 * qlora.NF4_BYTES[True])
    assert q["gradients"] == full["gradients"] == 40_000 and q["optimizer"] == 80_000
    assert training_memory(**kw, quantized=900_000, double_quant=False)["weights"] > q["weights"]
    assert qlora.NF4_BYTES[True] == pytest.approx(4.127 / 8, abs=1e-3)  # 4.127 bits a weight (QLoRA paper)


# -- training where a backend exists ---------------------------------------------------------------------

def _greedy(model, tok, prompts, n=6):
    import torch

    out = []
    for p in prompts:
        ids = tok(p, return_tensors="pt").input_ids
        with torch.no_grad():
            gen = model.generate(ids, max_new_tokens=n, do_sample=False, pad_token_id=tok.pad_token_id)
        out.append(gen[0, ids.shape[1]:].tolist())
    return out


@needs_backend
def test_qlora_trains_reloads_and_answers_the_same(tmp_path, tiny64):
    import torch

    from sftkit.config import Adapter
    from sftkit.modeling.adapters import merged
    from sftkit.models import apply_adapter, load_causal_lm, load_trained, merge_and_save

    adapter = Adapter(kind="qlora", r=8)
    args = qlora.load_arguments(adapter, precision="fp32", device="cpu")
    model, tok = load_causal_lm({"name": str(tiny64)}, None, quantization=args)
    assert len(qlora.quantized_layers(model)) == 2 * 7  # every linear layer of both blocks
    prompts = ["What is 3 plus 3?", "The capital of France"]
    model.eval()
    _greedy(model, tok, prompts)  # an evaluation first, as a run does: training after it must get true gradients
    model = apply_adapter(model, adapter)
    lora = [p for n, p in model.named_parameters() if p.requires_grad]
    assert lora and all("lora_" in n for n, p in model.named_parameters() if p.requires_grad)
    assert all(p.dtype == torch.float32 for p in lora)  # peft keeps adapters in float32 (the memory model says so)
    torch.manual_seed(0)
    ids = tok([f"What is {i} plus {i}? It is {2 * i}." for i in range(8)], return_tensors="pt", padding=True)
    labels = ids.input_ids.masked_fill(ids.attention_mask == 0, -100)
    opt = torch.optim.AdamW(lora, lr=1e-2)
    model.train()
    losses = []
    for _ in range(25):
        loss = model(**ids, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.3, losses
    model.eval()
    before = _greedy(model, tok, prompts)
    with torch.no_grad():
        logits = model(**ids).logits

    saved = merge_and_save(model, tok, tmp_path / "adapter", model_section={"name": str(tiny64)}, base_dir=None)
    record = json.loads((saved / "sftkit_base.json").read_text())
    assert record["quantization"]["bnb_4bit_quant_type"] == "nf4" and record["quantization"]["bnb_4bit_use_double_quant"]
    assert not (saved / "model.safetensors").exists()  # an adapter, not a model
    again, tok2 = load_trained(saved)
    assert qlora.quantized_layers(again), "the adapter must be put back on the 4-bit base it trained on"
    assert _greedy(again, tok2, prompts) == before
    with torch.no_grad():
        assert torch.equal(again(**ids).logits, logits)

    said = []
    plain = merged(model, say=said.append)
    assert said and "de-quantized to float32" in said[0]
    assert not qlora.quantized_layers(plain) and all(p.dtype == torch.float32 for p in plain.parameters())
    assert not hasattr(plain.config, "quantization_config") or plain.config.quantization_config is None
    with torch.no_grad():  # the same function: the 4-bit weights de-quantized exactly, the update added in float32
        assert torch.allclose(plain(**ids).logits, logits, atol=1e-4)
    merge_and_save(plain, tok, tmp_path / "merged")
    reloaded, _ = load_trained(tmp_path / "merged")
    assert _greedy(reloaded, tok, prompts) == before


@needs_backend
def test_gradients_after_an_evaluation_are_those_without_one(tiny64):
    """bitsandbytes 0.50 repacks a 4-bit weight on an avx512_bf16 CPU the first time it runs without
    gradients, and backward through the repacked weight is wrong (half the gradient's norm off, measured).
    A QLoRA base never repacks: an evaluation before training changes no gradient."""
    import torch

    from sftkit.config import Adapter
    from sftkit.models import apply_adapter, load_causal_lm

    adapter = Adapter(kind="qlora", dropout=0.0)

    def grads(evaluate_first: bool) -> dict:
        model, tok = load_causal_lm({"name": str(tiny64)}, None,
                                    quantization=qlora.load_arguments(adapter, precision="fp32", device="cpu"))
        ids = tok(["What is 3 plus 3? It is 6.", "The capital of France is Paris."], return_tensors="pt", padding=True)
        if evaluate_first:
            model.eval()
            with torch.no_grad():
                model(**ids)
        torch.manual_seed(0)
        model = apply_adapter(model, adapter)
        for name, p in model.named_parameters():
            if "lora_B" in name:  # non-zero, so gradients reach lora_A and the layers below
                torch.nn.init.normal_(p, std=0.1)
        model.train()
        model(**ids, labels=ids.input_ids).loss.backward()
        return {n: p.grad for n, p in model.named_parameters() if p.grad is not None}

    plain, after_eval = grads(False), grads(True)
    assert plain.keys() == after_eval.keys() and len(plain) > 4
    for name in plain:
        assert torch.allclose(plain[name], after_eval[name], rtol=1e-5, atol=1e-7), name


@needs_backend
def test_a_qlora_run_end_to_end(tmp_path, tiny64):
    from sftkit.models import load_trained
    from sftkit.run import run

    path = recipe(tmp_path, tiny64)
    lora = run(path, ["adapter.kind=lora", "training.max_steps=1"], output=tmp_path / "lora")
    assert lora.metrics["base_eval"]["source"] != "cache"
    out = run(path, [], output=tmp_path / "run")
    m = out.metrics
    # the same model file, but the base evaluated under QLoRA is the 4-bit one: never the cached float one
    assert m["base_eval"]["source"] != "cache"
    assert m["eval"][0]["base"] != lora.metrics["eval"][0]["base"]
    log = [json.loads(x) for x in (out.run_dir / "train_log.jsonl").read_text().splitlines()]
    losses = [x["loss"] for x in log if "loss" in x]
    assert losses[-1] < losses[0] - 0.3, losses
    assert m["train"]["saved"] == "adapter" and m["train"]["parameters"]["quantized"] > 0
    assert m["train"]["parameters"]["total"] > m["train"]["parameters"]["quantized"]
    model, _tok = load_trained(out.run_dir / "model")
    assert qlora.quantized_layers(model)


@needs_backend
def test_a_merged_qlora_run_says_it_dequantized(tmp_path, tiny64):
    from sftkit.run import run

    said = []
    out = run(recipe(tmp_path, tiny64, adapter={"merge": True}, extra={"training": {"max_steps": 2, "max_length": 64}}),
              [], output=tmp_path / "run", console=said.append)
    assert out.metrics["train"]["saved"] == "merged"
    assert out.metrics["train"]["dequantized_to"] in ("bfloat16", "float32")
    assert any("4-bit base is de-quantized" in s for s in said)
    config = json.loads((out.run_dir / "model" / "config.json").read_text())
    assert "quantization_config" not in config


@needs_backend
def test_a_classifier_head_stays_out_of_4bit_and_an_unknown_head_is_refused(tmp_path):
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from sftkit.config import Adapter
    from sftkit.errors import SftkitError

    cfg = AutoConfig.for_model("distilbert", vocab_size=512, dim=64, hidden_dim=128, n_layers=1, n_heads=2, num_labels=3)
    AutoModelForSequenceClassification.from_config(cfg).save_pretrained(tmp_path / "enc")
    adapter = Adapter(kind="qlora")
    kept = AutoModelForSequenceClassification.from_pretrained(
        tmp_path / "enc", **qlora.load_arguments(adapter, precision="fp32", device="cpu", classifier=True))
    assert type(kept.classifier).__name__ == "Linear" and type(kept.pre_classifier).__name__ == "Linear"
    qlora.check_head(kept)
    plain = AutoModelForSequenceClassification.from_pretrained(
        tmp_path / "enc", **qlora.load_arguments(adapter, precision="fp32", device="cpu"))
    with pytest.raises(SftkitError) as err:
        qlora.check_head(plain)  # transformers' own default would quantize this encoder's head
    assert "cannot train under QLoRA: it is 4-bit" in str(err.value) and "\n" not in str(err.value)


@needs_backend
def test_plan_of_a_qlora_recipe_models_4bit_weights(tmp_path, tiny64):
    from sftkit.run import plan as make_plan

    plan = make_plan(recipe(tmp_path, tiny64), steps=2)
    m, p = plan["memory"], plan["parameters"]
    assert m["kind"] == "qlora" and 0 < m["quantized_parameters"] < p["total"]
    unquantized = p["total"] - m["quantized_parameters"]
    assert m["bytes"]["weights"] == unquantized * 4 + round(m["quantized_parameters"] * qlora.NF4_BYTES[True])
    assert m["bytes"]["optimizer"] == 8 * p["trainable"]
    assert plan["disk"]["model_bytes"] == 4 * p["trainable"]


def test_bitsandbytes_is_an_extra_never_core():
    from pathlib import Path

    from packaging.requirements import Requirement

    from sftkit.reading import tomllib

    project = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())["project"]
    names = lambda items: {Requirement(r).name.lower() for r in items}  # noqa: E731
    extras = project["optional-dependencies"]
    assert "bitsandbytes" not in names(project["dependencies"]) | names(extras["train"])
    assert "bitsandbytes" in names(extras["qlora"]) and "sftkit[train]" in extras["qlora"]
    assert qlora.EXTRA == "pip install 'sftkit[qlora]'"
