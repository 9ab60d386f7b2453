"""Cross-field rules ``sftkit validate`` runs for the built-in strategies (no heavy imports)."""

from __future__ import annotations

from sftkit.errors import Problem


def _kinds(ctx) -> set:
    recipe = ctx.recipe
    out = set()
    for kind, item in zip(ctx.data_kinds or [], recipe.get("data") or []):
        if kind and not (isinstance(item, dict) and item.get("role") == "replay"):
            out.add(kind)
    return out


# tone's methods and the data kinds each trains on (one table: validation and training read it)
METHOD_KINDS = {"dpo": ("preference",), "kto": ("labeled",), "sft": ("messages", "labeled", "preference")}


def check_tone(options: dict, ctx) -> list:
    """``method = "dpo"`` needs preference pairs, ``"kto"`` good/bad labels, ``"sft"`` good answers
    (conversations, labelled answers or the chosen side of pairs)."""
    method = options.get("method", "auto")
    kinds = _kinds(ctx)
    if method in METHOD_KINDS and kinds and not kinds & set(METHOD_KINDS[method]):
        return [Problem(f"method {method!r} needs {' or '.join(METHOD_KINDS[method])} data, "
                        f"but the data is {', '.join(sorted(kinds))}",
                        path="method",
                        hint='use method = "auto" to pick the method from the data')]
    return []


def check_domain(options: dict, ctx) -> list:
    """A replay table needs a path (or a source) and a fraction below 1."""
    replay = options.get("replay")
    if isinstance(replay, dict) and not replay.get("path"):
        return [Problem("replay needs a path to general text (.txt/.md files, or .jsonl/.csv with a text column)",
                        path="replay")]
    return []
