"""LoRA adapters (peft) and saving a trained model (adapter, merged or full) with its tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import SftkitError

_HEAD_NAMES = ("score", "classifier", "classification_head", "cls_head")


def is_classifier(model) -> bool:
    return type(model).__name__.endswith("ForSequenceClassification")


def classifier_head_names(model) -> list[str]:
    """Names of the classification head modules (kept fully trainable under LoRA)."""
    return [name for name in _HEAD_NAMES if getattr(model, name, None) is not None]


def apply_adapter(model, adapter_section: dict | None):
    """Wrap ``model`` in a LoRA adapter per ``[adapter]`` (r, alpha, dropout, target_modules); None = unchanged."""
    if not adapter_section:
        return model
    from peft import LoraConfig, TaskType, get_peft_model

    kind = adapter_section.get("kind", "lora")
    if kind != "lora":
        raise SftkitError(f"unknown adapter kind {kind!r}", where="[adapter].kind", hint='use "lora"')
    targets = adapter_section.get("target_modules", "all-linear")
    cls = is_classifier(model)
    kwargs = {}
    if cls:
        heads = classifier_head_names(model)
        if heads:
            kwargs["modules_to_save"] = heads
    config = LoraConfig(
        r=int(adapter_section.get("r", 8)),
        lora_alpha=float(adapter_section.get("alpha", 16)),
        lora_dropout=float(adapter_section.get("dropout", 0.05)),
        target_modules=targets,
        task_type=TaskType.SEQ_CLS if cls else TaskType.CAUSAL_LM,
        **kwargs,
    )
    try:
        return get_peft_model(model, config)
    except ValueError as err:
        names = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules()
                        if type(m).__name__ in ("Linear", "Conv1D")})
        raise SftkitError(f"LoRA could not be applied: {str(err).splitlines()[0]}", where="[adapter].target_modules",
                          hint=f'use "all-linear" or some of this model\'s linear layers: {", ".join(names[:12])}') from err


def is_adapter(model) -> bool:
    try:
        from peft import PeftModel
    except ImportError:  # pragma: no cover
        return False
    return isinstance(model, PeftModel)


def merge_and_save(model, tokenizer, out_dir, *, merge: bool = False, model_section: dict | None = None,
                   base_dir=None) -> Path:
    """Save ``model`` + ``tokenizer`` into ``out_dir``: an adapter (or, with ``merge``, merged full weights).

    For an unmerged adapter the ``[model]`` section is recorded so :func:`load_trained` can rebuild the
    base (e.g. re-convert a GGUF whose cache entry was removed); a classifier adapter also keeps its
    config (labels)."""
    from .loading import BASE_RECORD

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if is_adapter(model) and merge:
        model = model.merge_and_unload()
    model.save_pretrained(out)
    if is_adapter(model):
        base_config = model.get_base_model().config
        if is_classifier(model.get_base_model()):
            base_config.save_pretrained(out)
        if model_section:
            (out / BASE_RECORD).write_text(json.dumps(
                {"model": model_section, "base_dir": str(base_dir) if base_dir is not None else None}, indent=2))
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    return out
