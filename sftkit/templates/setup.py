"""Prepare a tokenizer (and model) for a template: special tokens, EOS, pad, embeddings, chat_template.

This is what TRL's former ``setup_chat_format`` did for ChatML (add ``<|im_start|>``/``<|im_end|>``,
make ``<|im_end|>`` the EOS, install the template, resize the embeddings), generalised to any
template's tokens. Unlike it, the BOS token is left alone and the pad token is only set when missing.
"""

from __future__ import annotations


def is_single_token(tokenizer, text: str) -> bool:
    """True when ``text`` encodes to exactly one token id."""
    return len(tokenizer.encode(text, add_special_tokens=False)) == 1


def add_special_tokens(tokenizer, tokens) -> list[str]:
    """Make every string in ``tokens`` a single special token; return the ones that had to be added."""
    missing = [t for t in tokens if not is_single_token(tokenizer, t)]
    if missing:
        spec = {"additional_special_tokens": missing}
        try:  # transformers 5
            tokenizer.add_special_tokens(spec, replace_extra_special_tokens=False)
        except TypeError:  # transformers 4
            tokenizer.add_special_tokens(spec, replace_additional_special_tokens=False)
    return missing


def set_eos(tokenizer, model, token: str) -> None:
    """Make ``token`` the EOS of the tokenizer and of the model's config; the generation config stops
    at it and still at the EOS ids it had (e.g. a base model's document end)."""
    if tokenizer.eos_token != token:
        tokenizer.eos_token = token
    if model is None:
        return
    eos_id = tokenizer.convert_tokens_to_ids(token)
    config = getattr(model, "config", None)
    if config is not None:
        text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
        text_config.eos_token_id = eos_id
    gen = getattr(model, "generation_config", None)
    if gen is not None:
        old = gen.eos_token_id
        old = [] if old is None else (list(old) if isinstance(old, (list, tuple)) else [old])
        ids = list(dict.fromkeys([eos_id, *old]))
        gen.eos_token_id = ids[0] if len(ids) == 1 else ids


def _set_model_ids(model, **ids) -> None:
    config = getattr(model, "config", None)
    if config is not None:
        text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
        for key, value in ids.items():
            setattr(text_config, key, value)
    gen = getattr(model, "generation_config", None)
    if gen is not None:
        for key, value in ids.items():
            setattr(gen, key, value)


def ensure_pad(tokenizer, model=None) -> bool:
    """Use EOS as the pad token when the tokenizer has none (returns True then); give the model the
    tokenizer's pad id when its config has none."""
    added = tokenizer.pad_token is None
    if added:
        tokenizer.pad_token = tokenizer.eos_token
    config = getattr(model, "config", None)
    if config is not None:
        text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
        if getattr(text_config, "pad_token_id", None) is None:
            _set_model_ids(model, pad_token_id=tokenizer.pad_token_id)
    return added


def resize_embeddings(tokenizer, model) -> tuple[int, int] | None:
    """Grow the model's input (and tied output) embeddings to ``len(tokenizer)`` when too small.

    Returns ``(old, new)`` rows when resized, else None. Never shrinks (unused rows are harmless).
    """
    if model is None or not hasattr(model, "get_input_embeddings"):
        return None
    old = model.get_input_embeddings().weight.shape[0]
    needed = len(tokenizer)
    if needed <= old:
        return None
    model.resize_token_embeddings(needed)
    return old, model.get_input_embeddings().weight.shape[0]


def prepare_tokenizer(tokenizer, model, *, template: str | None, special_tokens=(),
                      end_of_turn: str | None = None, default_eos: str = "</s>") -> dict:
    """Install ``template`` (None: leave the tokenizer's own) and everything it needs; returns a
    summary of what changed.

    ``end_of_turn`` becomes the EOS (generation stops there); otherwise the tokenizer keeps its EOS,
    and one (``default_eos``) is added when it has none. The model's EOS ids are only touched when
    the tokenizer's EOS changes.
    """
    info: dict = {"document_eos": tokenizer.eos_token}
    eos = end_of_turn or tokenizer.eos_token or default_eos
    info["added_tokens"] = add_special_tokens(tokenizer, list(dict.fromkeys([*special_tokens, eos])))
    info["eos_changed"] = tokenizer.eos_token != eos
    if info["eos_changed"] or (end_of_turn and model is not None):  # also when set up earlier without model
        set_eos(tokenizer, model, eos)
    info["document_eos"] = info["document_eos"] or eos
    info["pad_set"] = ensure_pad(tokenizer, model)
    info["resized"] = resize_embeddings(tokenizer, model)
    if template is not None:
        tokenizer.chat_template = template
    info["eos"] = tokenizer.eos_token
    return info
