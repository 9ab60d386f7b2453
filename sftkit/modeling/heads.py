"""Classification heads: where a sequence classifier's new head sits (one list: LoRA keeps it trainable,
QLoRA keeps it out of 4-bit, ``freeze_backbone`` trains only it)."""

from __future__ import annotations

# the top-level module names a sequence-classification head has in transformers' models (one list:
# LoRA keeps them trainable, freeze_backbone trains only them)
HEAD_NAMES = ("score", "classifier", "pre_classifier", "classification_head", "cls_head")


def is_classifier(model) -> bool:
    return type(model).__name__.endswith("ForSequenceClassification")


def classifier_head_names(model) -> list[str]:
    """Names of the classification head modules (kept fully trainable under LoRA)."""
    return [name for name in HEAD_NAMES if getattr(model, name, None) is not None]
