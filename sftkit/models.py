"""Load the model a recipe names (hub id, local directory or GGUF file), add adapters, freeze parts.

This module is light: heavy libraries are imported inside the functions, so ``sftkit validate`` can
use :func:`describe_model_source` without importing torch. Implementation lives in
:mod:`sftkit.modeling`.
"""

from .modeling.adapters import apply_adapter, is_adapter, merge_and_save
from .modeling.cache import cache_root
from .modeling.freeze import apply_freeze, parse_layers
from .modeling.loading import (
    gguf_cache_dir,
    load_causal_lm,
    load_sequence_classifier,
    load_tokenizer,
    load_trained,
    resolve_dtype,
)
from .modeling.smoke import shrink_config, tiny_like
from .modeling.source import ModelSource, describe_model_source

__all__ = [
    "ModelSource", "describe_model_source", "load_tokenizer", "load_causal_lm", "load_sequence_classifier",
    "apply_adapter", "apply_freeze", "merge_and_save", "load_trained", "resolve_dtype", "gguf_cache_dir",
    "cache_root", "parse_layers", "shrink_config", "tiny_like", "is_adapter",
]


def load_base(run, section: dict | None = None, *, task: str = "causal", labels=None) -> tuple:
    """The run's loader of models (handed to components as ``RunContext.load_model``): ``[model]`` (or
    ``section``, e.g. a judge's ``{"name": ...}``) as a causal LM, or as a sequence classifier with
    ``labels`` for ``task = "classification"``; its tiny stand-in when the run is a smoke run. The
    run decides smoke here, once: the loaders never see it. Under QLoRA the recipe's ``[model]`` (not
    another section) is loaded in 4-bit, its smoke stand-in too."""
    from .modeling.loading import requantized
    from .modeling.qlora import run_load_arguments

    quantization = run_load_arguments(run, classifier=task == "classification") if section is None else None
    section = run.config.model.as_dict() if section is None else section
    if run.smoke:
        model, tok = tiny_like(section, run.base_dir, task=task, labels=labels, console=run.console, host=run.host)
        return requantized(model, quantization), tok
    if task == "classification":
        return load_sequence_classifier(section, run.base_dir, labels=labels, console=run.console, host=run.host,
                                        quantization=quantization)
    return load_causal_lm(section, run.base_dir, console=run.console, host=run.host, quantization=quantization)
