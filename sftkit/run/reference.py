"""The model ``sftkit eval --model REF`` names: a saved model or adapter directory, a hub id or a
GGUF file (``package://…``), loaded with what a recipe's ``[model]`` table would give it."""

from __future__ import annotations

import json
from pathlib import Path


def saved_kind(ref: str | Path) -> tuple[bool, list]:
    """(is a sequence classifier, its labels) from a saved directory's config, without loading weights."""
    model_dir = Path(ref)
    if not model_dir.is_dir():
        return False, []
    try:
        cfg = json.loads((model_dir / "config.json").read_text()) if (model_dir / "config.json").exists() else {}
        adapter = json.loads((model_dir / "adapter_config.json").read_text()) \
            if (model_dir / "adapter_config.json").exists() else {}
    except (OSError, ValueError):
        return False, []
    is_cls = any("SequenceClassification" in str(a) for a in cfg.get("architectures") or []) \
        or adapter.get("task_type") == "SEQ_CLS"
    id2label = cfg.get("id2label") or {}
    labels = [id2label[k] for k in sorted(id2label, key=int)] if is_cls and id2label else []
    return is_cls, labels


def is_saved_dir(ref: str | Path) -> bool:
    path = Path(str(ref)).expanduser()
    return path.is_dir() and ((path / "config.json").exists() or (path / "adapter_config.json").exists())


def load_reference(ref: str, model_section: dict, *, console=None):
    """``(model, tokenizer)`` for ``ref``: a saved directory (full model or LoRA adapter) through
    ``load_trained``, anything else (hub id, ``.gguf``, ``package://``) as ``[model] name = ref``
    with the recipe's other ``[model]`` options; relative paths are relative to the working directory."""
    from sftkit import models

    if is_saved_dir(ref):
        return models.load_trained(Path(str(ref)).expanduser())
    section = {**(model_section or {}), "name": str(ref)}
    section.pop("tokenizer", None)
    return models.load_causal_lm(section, Path.cwd(), console=console)


def load_base(model_section: dict, base_dir, *, labels: list, is_classifier: bool, seed: int = 42, console=None,
              quantization: dict | None = None):
    """The recipe's ``[model]`` (a classifier with ``labels`` when the evaluated model is one); in 4-bit
    with ``quantization`` (a QLoRA recipe: the base its adapter trains on)."""
    from sftkit import models

    if console:
        console(f"loading the base model {model_section['name']}")
    if is_classifier:
        from transformers import set_seed

        set_seed(seed)  # its new head: the same as the run's base
        return models.load_sequence_classifier(model_section, base_dir, labels=labels, quantization=quantization)
    return models.load_causal_lm(model_section, base_dir, quantization=quantization)


def labels_of(model) -> list:
    id2label = getattr(model.config, "id2label", None) or {}
    return [id2label[k] for k in sorted(id2label, key=int)]
