"""Pad tokens and label maps: what the real model loaders and the tiny smoke models share."""

from __future__ import annotations

from ..errors import SftkitError


def ensure_pad_token(tokenizer) -> None:
    """Decoder LMs often have no pad token: use EOS (padding is masked out of the loss by position)."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token
        elif tokenizer.unk_token is not None:
            tokenizer.pad_token = tokenizer.unk_token


def _sync_pad(model, tokenizer) -> None:
    if getattr(model.config, "pad_token_id", None) is None and tokenizer.pad_token_id is not None:
        model.config.pad_token_id = tokenizer.pad_token_id
    gen = getattr(model, "generation_config", None)
    if gen is not None and getattr(gen, "pad_token_id", None) is None and tokenizer.pad_token_id is not None:
        gen.pad_token_id = tokenizer.pad_token_id


def label_maps(labels) -> dict:
    labels = [str(x) for x in labels]
    if len(labels) < 2:
        raise SftkitError(f"classification needs at least 2 labels, found {labels}",
                          hint="check the label column of your classification data")
    return {"num_labels": len(labels), "id2label": dict(enumerate(labels)),
            "label2id": {lab: i for i, lab in enumerate(labels)}}
