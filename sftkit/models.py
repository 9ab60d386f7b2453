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


def load_base(run) -> tuple:
    """The run's loader of ``[model]`` (handed to strategies as ``RunContext.load_model``): the recipe's
    model as a causal LM, or its tiny stand-in when the run is a smoke run; in 4-bit under QLoRA."""
    from .modeling.qlora import run_load_arguments

    return load_causal_lm(run.config.model.as_dict(), run.base_dir, smoke=run.smoke, console=run.console,
                          host=run.host, quantization=run_load_arguments(run))
