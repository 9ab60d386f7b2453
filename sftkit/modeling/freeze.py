"""Freeze parts of a model: layers by index range, the last-N rule, name patterns, embeddings."""

from __future__ import annotations

import fnmatch
import re
from typing import TYPE_CHECKING

from ..errors import SftkitError

if TYPE_CHECKING:
    from ..config import Freeze

_RANGE = re.compile(r"^\s*(-?\d+)\s*(?:-\s*(-?\d+)\s*)?$")


def parse_layers(spec: str, n_layers: int) -> list[int]:
    """``"0-9,12"`` → sorted layer indices (inclusive ranges; negative = from the end)."""
    out: set[int] = set()
    for part in str(spec).split(","):
        m = _RANGE.match(part)
        if not m:
            raise SftkitError(f"bad layer range {part.strip()!r} in {spec!r}", where="[freeze].layers",
                              hint='write index ranges like "0-9" or "0-3,6"')
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        lo, hi = (lo + n_layers if lo < 0 else lo), (hi + n_layers if hi < 0 else hi)
        if not (0 <= lo < n_layers and 0 <= hi < n_layers):
            raise SftkitError(f"layer range {part.strip()!r} is outside this model's layers 0-{n_layers - 1}",
                              where="[freeze].layers", hint=f"use indices 0 to {n_layers - 1}")
        if hi < lo:
            raise SftkitError(f"layer range {part.strip()!r} runs backwards", where="[freeze].layers",
                              hint=f"write it as {hi}-{lo}")
        out.update(range(lo, hi + 1))
    return sorted(out)


def find_layers(model):
    """``(prefix, ModuleList)`` of the transformer blocks (the largest ModuleList of identical blocks)."""
    import torch.nn as nn

    best = None
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) > 0:
            if len({type(m) for m in module}) == 1 and (best is None or len(module) > len(best[1])):
                best = (name, module)
    if best is None:
        raise SftkitError(f"{type(model).__name__} has no list of transformer layers to freeze",
                          where="[freeze]", hint="freeze by name with [freeze].patterns instead")
    return best


def apply_freeze(model, section: Freeze | None) -> dict:
    """Set ``requires_grad=False`` per the ``[freeze]`` slice; return ``{"trainable", "total", "frozen_layers"}``."""
    frozen_layers: list[int] = []
    if section is not None:
        names = {id(p): n for n, p in model.named_parameters()}
        layers_spec, last_n = section.layers, section.train_last_layers
        if layers_spec is not None or last_n is not None:
            prefix, layers = find_layers(model)
            n = len(layers)
            if layers_spec is not None:
                frozen_layers = parse_layers(layers_spec, n)
            if last_n is not None:
                if int(last_n) > n:
                    raise SftkitError(f"train_last_layers = {last_n} but the model has only {n} layers",
                                      where="[freeze].train_last_layers", hint=f"use at most {n}")
                frozen_layers = sorted(set(frozen_layers) | set(range(n - int(last_n))))
            for i in frozen_layers:
                for p in layers[i].parameters():
                    p.requires_grad_(False)
        if section.embeddings or (last_n is not None and section.embeddings is not False):
            emb = model.get_input_embeddings()
            if emb is not None:
                emb.weight.requires_grad_(False)  # a tied LM head shares this weight
        for pattern in section.patterns or []:
            hits = [p for p in model.parameters() if fnmatch.fnmatchcase(names[id(p)], pattern)]
            if not hits:
                sample = ", ".join(list(names.values())[:4])
                raise SftkitError(f"freeze pattern {pattern!r} matches no parameter", where="[freeze].patterns",
                                  hint=f"parameter names look like: {sample}")
            for p in hits:
                p.requires_grad_(False)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    if section and trainable == 0:
        raise SftkitError("[freeze] leaves no trainable parameter", where="[freeze]",
                          hint="freeze fewer layers (or use train_last_layers)")
    return {"trainable": trainable, "total": total, "frozen_layers": frozen_layers}
