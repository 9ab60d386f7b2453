"""Tiny randomly initialised models of a recipe model's architecture, with its real tokenizer.

``sftkit run --smoke`` uses them to check a recipe end to end in seconds. Only the config and the
tokenizer of the real model are read (never its weights, unless a GGUF was already converted); both
are cached, shrunk, under ``<cache>/smoke/<digest>``.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import SftkitError
from .cache import cached_entry, content_digest, file_digest, text_digest, write_entry
from .loaders import model_source

SMOKE_KIND = "smoke"
_SIZES = {  # attribute -> tiny value (only applied when the real value is larger)
    "hidden_size": 64, "n_embd": 64, "d_model": 64,
    "num_hidden_layers": 2, "n_layer": 2, "num_layers": 2,
    "intermediate_size": 128, "n_inner": 128, "ffn_dim": 128, "moe_intermediate_size": 64,
    "num_attention_heads": 4, "n_head": 4, "head_dim": 16,
    "num_experts": 4, "num_local_experts": 4, "n_routed_experts": 4,
}


def shrink_config(config):
    """Shrink hidden size, layers and heads of ``config`` in place (same architecture); returns it."""
    heads = getattr(config, "num_attention_heads", None)
    kv = getattr(config, "num_key_value_heads", None)
    for attr, value in _SIZES.items():
        current = getattr(config, attr, None)
        if isinstance(current, int) and current > value:
            setattr(config, attr, value)
    if isinstance(kv, int) and isinstance(heads, int):
        config.num_key_value_heads = min(config.num_attention_heads, 4 if kv == heads else 2)
    for attr in ("num_experts_per_tok", "num_experts_per_token"):
        if isinstance(getattr(config, attr, None), int):
            setattr(config, attr, min(getattr(config, attr), 2))
    n_layers = getattr(config, "num_hidden_layers", None)
    if isinstance(getattr(config, "layer_types", None), list) and isinstance(n_layers, int):
        config.layer_types = config.layer_types[:n_layers]
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    return config


def _real_config_and_tokenizer(model_section: dict, base_dir, src):
    """The real model's config and tokenizer, without loading its weights (``src``: where its loader says it is)."""
    from transformers import AutoConfig, AutoTokenizer

    from .loading import GGUF_KIND, not_found_error

    problem = src.problem()
    if problem:
        raise SftkitError(problem, where="[model].name")
    remote = bool(model_section.get("trust_remote_code", False))
    if src.kind == "gguf":
        converted = cached_entry(GGUF_KIND, content_digest(src.path))
        if converted is not None:
            return AutoConfig.from_pretrained(converted), AutoTokenizer.from_pretrained(converted)
        kw = {"gguf_file": src.path.name}
        where = src.path.parent
    else:
        kw = {"trust_remote_code": remote}
        if src.revision and src.kind == "hub":
            kw["revision"] = src.revision
        where = str(src.path) if src.kind == "dir" else src.name
    try:
        config = AutoConfig.from_pretrained(where, **kw)
        tok_where = model_section.get("tokenizer")
        tokenizer = AutoTokenizer.from_pretrained(tok_where, trust_remote_code=remote) if tok_where \
            else AutoTokenizer.from_pretrained(where, **kw)
    except OSError as err:
        raise not_found_error(src, base_dir, err) from err
    return config, tokenizer


def _digest(model_section: dict, src) -> str:
    extra = str(model_section.get("tokenizer") or "")
    if src.kind == "gguf":
        return content_digest(src.path, "smoke", extra)
    if src.kind == "dir":
        return file_digest(src.path / "config.json", "smoke", extra)
    return text_digest("smoke", src.name, str(src.revision), extra)


def smoke_dir(model_section: dict, base_dir, console=None, *, host=None) -> Path:
    """Cache directory holding the shrunk config and the real tokenizer of ``[model]``."""
    src = model_source(model_section, base_dir, console, host=host)
    digest = _digest(model_section, src)
    hit = cached_entry(SMOKE_KIND, digest)
    if hit is not None:
        return hit
    if console:
        console("preparing a tiny model of the same architecture (smoke run)...")
    config, tokenizer = _real_config_and_tokenizer(model_section, base_dir, src)

    def fill(tmp: Path) -> None:
        shrink_config(config).save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    return write_entry(SMOKE_KIND, digest, fill, {"model": model_section.get("name"), "kind": "smoke"})


def tiny_like(model_section: dict, base_dir, *, task: str = "causal", labels=None, console=None, seed: int = 0,
              host=None):
    """``(model, tokenizer)``: a randomly initialised tiny model shaped like ``[model]``, real tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    from .loading import _sync_pad, ensure_pad_token, label_maps

    where = smoke_dir(model_section, base_dir, console, host=host)
    remote = bool(model_section.get("trust_remote_code", False))
    tokenizer = AutoTokenizer.from_pretrained(where)
    ensure_pad_token(tokenizer)
    config = AutoConfig.from_pretrained(where, trust_remote_code=remote)
    torch.manual_seed(seed)
    if task == "classification":
        for key, value in label_maps(labels).items():
            setattr(config, key, value)
        config.problem_type = "single_label_classification"
        config.pad_token_id = tokenizer.pad_token_id
        model = AutoModelForSequenceClassification.from_config(config, trust_remote_code=remote)
    else:
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=remote)
    model.to(torch.float32)
    _sync_pad(model, tokenizer)
    return model, tokenizer
