"""A group's prompt computed once: GRPO scores (and samples) ``num_generations`` completions of the
same prompt, and TRL runs the whole prompt through the model for every one of them.

:func:`completion_logps` gives what TRL's ``_get_per_token_logps_and_entropies`` gives (the
log-probability of each completion token at the trainer's temperature, and the entropy of each
prediction) from one forward of each distinct prompt, whose key/value cache is then shared, row by
row, by the forward of the completions. Gradients flow through the shared cache into the prompt's
computation (autograd sums them over the group), so the loss and its gradient are the same
numbers, computed from about ``prompt / num_generations + completion`` tokens per row instead of
``prompt + completion``. :func:`prefilled_cache` does the same for sampling.

Exact for decoder-only models whose forward takes a ``cache`` (transformers' dynamic cache) and
whose positions are relative (rotary embeddings): positions continue from the cache as in one
forward of the whole row.
"""

from __future__ import annotations

from typing import Any


def applies(model) -> bool:
    """Whether the model's positions are rotary (relative): a row continued from a shared cache then
    computes what one forward of the whole row computes. Absolute position embeddings (GPT-2) do
    not: a left-padded row numbers its positions differently there."""
    config = getattr(model, "config", None)
    text = config.get_text_config() if config is not None and hasattr(config, "get_text_config") else config
    return getattr(text, "rope_parameters", None) is not None


def prompt_groups(prompt_ids, prompt_mask) -> tuple[Any, Any] | None:
    """``(first row of each distinct prompt, each row's prompt index)``, or None when every row's
    prompt is its own (nothing to share)."""
    import torch

    rows = torch.cat([prompt_ids, prompt_mask.to(prompt_ids.dtype)], dim=1)
    unique, inverse = torch.unique(rows, dim=0, return_inverse=True)
    if unique.size(0) == rows.size(0):
        return None
    first = torch.full((unique.size(0),), rows.size(0), dtype=torch.long, device=rows.device)
    first.scatter_reduce_(0, inverse, torch.arange(rows.size(0), device=rows.device), reduce="amin")
    return first, inverse


def prefilled_cache(model, prompt_ids, prompt_mask, first, inverse, *, position_ids=None):
    """The key/value cache of ``prompt_ids`` computed once per distinct prompt (rows ``first``) and
    expanded to every row (``inverse``); differentiable when grad is on."""
    out = model(input_ids=prompt_ids[first], attention_mask=prompt_mask[first], use_cache=True,
                logits_to_keep=1, **({"position_ids": position_ids[first]} if position_ids is not None else {}))
    cache = out.cache if getattr(out, "cache", None) is not None else out.past_key_values
    cache.batch_select_indices(inverse)
    return cache


def completion_logps(model, input_ids, attention_mask, logits_to_keep: int, *, compute_entropy: bool):
    """``(log-probs, entropies or None)`` of the last ``logits_to_keep`` tokens of each row, as TRL's
    fused LM head computes them in one forward of the whole row; None when no two rows share their
    prompt, the prompt is a single token or the model's positions are not rotary (then the caller
    does the plain forward)."""
    import torch

    from sftkit.records import IGNORE_INDEX

    split = input_ids.size(1) - logits_to_keep - 1  # the cache holds the prompt but its last token
    if split < 1 or not applies(model):
        return None
    groups = prompt_groups(input_ids[:, :split + 1], attention_mask[:, :split + 1])
    if groups is None:
        return None
    first, inverse = groups
    cache = prefilled_cache(model, input_ids[:, :split], attention_mask[:, :split], first, inverse)
    rest = input_ids[:, split:]  # the prompt's last token, then the completion
    labels = rest.masked_fill(attention_mask[:, split:] == 0, IGNORE_INDEX)[:, 1:]
    labels = torch.cat([labels, torch.full_like(labels[:, :1], IGNORE_INDEX)], dim=1)  # the last token predicts nothing
    out = model(input_ids=rest, attention_mask=attention_mask, cache=cache, shift_labels=labels, fused_lm_head=True)
    logps = out.log_probs[:, :logits_to_keep]
    entropy = out.entropy[:, :logits_to_keep] if compute_entropy and out.entropy is not None else None
    return logps, entropy
