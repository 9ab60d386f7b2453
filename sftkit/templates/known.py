"""Generation-marked variants of chat templates sftkit recognises by identity (no heavy import).

* sftkit's own built-ins (a model saved by sftkit carries the unmarked built-in);
* TRL's training templates: TRL ships ``X.jinja`` (a model family's original template) next to
  ``X_training.jinja`` (the same layout with ``{% generation %}`` markers, made prefix-preserving
  where the original is not, e.g. Qwen3 or Phi-3). TRL's SFTTrainer swaps these in for
  ``assistant_only_loss``; sftkit reads the files from TRL's installed package without importing it.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

from .builtin_templates import BUILTINS


@lru_cache(maxsize=1)
def _trl_pairs() -> dict[str, tuple[str, str]]:
    """original template text -> (name, training template text), from TRL's chat_templates folder."""
    try:
        spec = importlib.util.find_spec("trl")
    except (ImportError, ValueError):
        return {}
    if spec is None or not spec.submodule_search_locations:
        return {}
    folder = Path(next(iter(spec.submodule_search_locations))) / "chat_templates"
    pairs = {}
    for training in sorted(folder.glob("*_training.jinja")):
        original = folder / training.name.replace("_training.jinja", ".jinja")
        if original.is_file():
            try:
                pairs[original.read_text(encoding="utf-8")] = (training.stem, training.read_text(encoding="utf-8"))
            except OSError:
                continue
    return pairs


def known_marked_template(template: str) -> tuple[str, str] | None:
    """``(origin, marked_template)`` for a template sftkit knows a marked variant of, else None."""
    for builtin in BUILTINS.values():
        if template == builtin.template:
            return f"sftkit:{builtin.name}", builtin.marked
    found = _trl_pairs().get(template)
    if found is not None:
        return f"trl:{found[0]}", found[1]
    return None
