"""Chunked cross-entropy (sftkit.strategies.loss): the same loss and gradients as the model's own
loss, forward and backward, on padded and packed batches with masked labels; refused where it would
not be exact; used by instruction runs and recorded in metrics.json."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from sftkit.strategies.collate import FlattenCollator, PadCollator  # noqa: E402
from sftkit.strategies.loss import ChunkedLoss, LossModel  # noqa: E402


def _rows(vocab: int) -> list[dict]:
    g = torch.Generator().manual_seed(3)
    rows = []
    for n, prompt in ((23, 9), (7, 3), (15, 15 - 4), (31, 1)):
        ids = torch.randint(5, vocab, (n,), generator=g).tolist()
        labels = [-100] * prompt + ids[prompt:]
        rows.append({"input_ids": ids, "labels": labels})
    return rows


@pytest.fixture(scope="module")
def model(tiny_tokenizer):
    from sftkit.tiny import tiny_causal_lm

    m = tiny_causal_lm(tiny_tokenizer, hidden_size=32, layers=2)
    m.config.use_cache = False
    m.train()
    return m


def _plain(model, batch, items):
    model.zero_grad()
    out = model(**batch, **({"num_items_in_batch": items} if items is not None else {}))
    out.loss.backward()
    return out.loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def _chunked(model, batch, items, chunk_rows=3):
    model.zero_grad()
    loss = ChunkedLoss(chunk_elements=chunk_rows * model.config.vocab_size)
    assert loss.decide(model, batch), loss.reason
    value = LossModel(model, loss)(**batch, **({"num_items_in_batch": items} if items is not None else {}))["loss"]
    value.backward()
    loss.close()
    return value.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("collate", ["pad", "pack"])
@pytest.mark.parametrize("items", [None, 57])
def test_loss_and_gradients_equal_the_models_own(model, tiny_tokenizer, collate, items):
    rows = _rows(model.config.vocab_size)
    batch = (PadCollator(tiny_tokenizer.pad_token_id) if collate == "pad" else FlattenCollator())(rows)
    want, want_grads = _plain(model, batch, items)
    got, got_grads = _chunked(model, batch, items)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-6), (got, want)
    assert set(got_grads) == set(want_grads)
    for name, g in want_grads.items():
        assert torch.allclose(got_grads[name], g, rtol=1e-4, atol=1e-6), name


def test_equal_under_bf16_autocast_too(model, tiny_tokenizer):
    batch = PadCollator(tiny_tokenizer.pad_token_id)(_rows(model.config.vocab_size))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want, want_grads = _plain(model, batch, None)
    model.zero_grad()
    loss = ChunkedLoss(lambda: torch.autocast("cpu", dtype=torch.bfloat16), chunk_elements=5 * model.config.vocab_size)
    assert loss.decide(model, batch)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = LossModel(model, loss)(**batch)["loss"]
    got.backward()
    loss.close()
    assert abs(float(got.detach()) - float(want)) < 1e-3
    for name, p in model.named_parameters():
        rel = (p.grad - want_grads[name]).norm() / want_grads[name].norm()
        assert rel < 2e-2, (name, float(rel))


def test_refused_where_it_would_not_be_exact(model, tiny_tokenizer):
    batch = PadCollator(tiny_tokenizer.pad_token_id)(_rows(model.config.vocab_size))
    scaled = model.get_output_embeddings().register_forward_hook(lambda mod, args, out: out * 2.0)
    try:
        loss = ChunkedLoss()
        assert loss.decide(model, batch) is False and "not its output layer applied" in loss.reason
    finally:
        scaled.remove()
    from sftkit.tiny import tiny_causal_lm

    capped = tiny_causal_lm(tiny_tokenizer, architecture="gemma2")
    capped.config.final_logit_softcapping = 1.0  # 30 in Gemma 2; the tiny model's logits are small
    loss = ChunkedLoss()
    assert loss.decide(capped, batch) is False and "soft-capping" in loss.reason
    from peft import LoraConfig, get_peft_model

    lora = get_peft_model(tiny_causal_lm(tiny_tokenizer), LoraConfig(r=2, target_modules=["q_proj", "lm_head"]))
    loss = ChunkedLoss()
    assert loss.decide(lora, batch) is False and "not a plain Linear" in loss.reason
    # LoRA on the other layers (the default "all-linear" leaves the output layer alone): used, exact
    lora = get_peft_model(tiny_causal_lm(tiny_tokenizer), LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    loss = ChunkedLoss()
    assert loss.decide(lora, batch) is True
    got = LossModel(lora, loss)(**batch)["loss"]
    loss.close()
    assert torch.allclose(got, lora(**batch).loss, rtol=1e-5)


def test_the_probe_leaves_no_hook_behind(model, tiny_tokenizer):
    batch = PadCollator(tiny_tokenizer.pad_token_id)(_rows(model.config.vocab_size))
    loss = ChunkedLoss()
    assert loss.decide(model, batch)
    with torch.no_grad():
        model(**batch)  # not capturing outside a loss call
    assert loss._hidden == []
    loss.close()
    assert not model.get_decoder()._forward_hooks


def test_instruction_runs_train_the_same_with_it_and_record_it(tmp_path):
    """A whole run (grouped batches, fp32) with and without the chunked loss: the same loss at every
    step; metrics.json says which loss ran and why."""
    import json

    from sftkit.tiny import save_tiny_model
    sys.path.insert(0, str(Path(__file__).parent))
    from test_run import make_recipe, run

    tiny = save_tiny_model(tmp_path / "model")
    logs = {}
    for on in (True, False):
        d = tmp_path / str(on)
        d.mkdir()
        recipe = make_recipe(d, tiny, training={"precision": "fp32", "chunked_loss": on,
                                                "gradient_accumulation_steps": 2})
        out = run(recipe, output=d / "run")
        train = json.loads((out.run_dir / "metrics.json").read_text())["train"]
        assert train["chunked_loss"]["used"] is on, train["chunked_loss"]
        assert train["peak_memory_gb"] > 0 and "peak_memory_gb_per_rank" not in train  # one process: one figure
        logs[on] = [e["loss"] for e in map(json.loads, (out.run_dir / "train_log.jsonl").read_text().splitlines())
                    if "loss" in e]
    assert "chunked_loss = false" in train["chunked_loss"]["reason"]
    assert len(logs[True]) == 4 and logs[True] == pytest.approx(logs[False], rel=1e-4)
