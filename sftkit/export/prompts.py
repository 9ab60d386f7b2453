"""The prompts an export is verified on: the run's ``[[eval]]`` items when they can be read, else built-in ones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Config

BUILTIN_PROMPTS = (
    "What is the capital of France?",
    "Write one sentence about the sea.",
    "List three colours.",
    "What is 12 + 30?",
    "Translate 'thank you' into Spanish.",
    "Name a planet in the solar system.",
    "Give a short greeting.",
    "Why is the sky blue? Answer briefly.",
)
PATH_OPTIONS = ("prompts", "path")


def recipe_base_dir(run_dir: Path, config: Config) -> Path | None:
    """The directory the run's relative paths were read from, recovered from ``sftkit.lock.json``
    (the absolute path of a ``[[data]]`` file minus its relative spelling in the recipe)."""
    from ..run.lockfile import read_lock

    files = read_lock(run_dir).get("data_files") or {}
    for i, entry in enumerate(config.data):
        rel = entry.options.get("path")
        hit = files.get(f"data[{i}].path") or {}
        if isinstance(rel, str) and not Path(rel).is_absolute() and str(hit.get("path", "")).endswith(rel):
            return Path(hit["path"][: -len(rel)] or ".")
    return None


def run_conversations(run_dir: Path | None, limit: int = 64) -> list[list[dict]]:
    """Conversations of the run's ``[[eval]]`` items (inline or from their files; an entry's ``limit``
    samples them as the run did), with the [template] system prompt the run added; [] when the run names
    none that can be read."""
    from ..config import saved_config
    from ..evaluation.base import item_messages, read_records
    from ..paths import resolve_path
    from ..sampling import sample_rows

    if run_dir is None or not (Path(run_dir) / "recipe.toml").is_file():
        return []
    config = saved_config(run_dir)
    base = recipe_base_dir(run_dir, config)
    system = config.template.system
    seen, out = set(), []
    for entry in config.eval:
        table = entry.options
        items = table.get("items")
        if items is None:
            rel = next((table[k] for k in PATH_OPTIONS if isinstance(table.get(k), str)), None)
            if rel is None:
                continue
            try:
                items = read_records(resolve_path(rel, base))
            except Exception:  # a file moved since the run: fall back to other tables or built-in prompts
                continue
        for item in sample_rows(list(items), table.get("limit"), seed=config.seed):  # the items the run scored
            try:
                msgs = item_messages(item if isinstance(item, dict) else {"prompt": item}, table)
            except Exception:
                continue
            if system and not any(m.get("role") == "system" for m in msgs):
                msgs = [{"role": "system", "content": system}] + msgs
            key = json.dumps(msgs, sort_keys=True)
            if key not in seen:
                seen.add(key)
                out.append(msgs)
    return out[:limit]


def verification_conversations(run_dir: Path | None) -> tuple[list[list[dict]], str]:
    """(conversations, where they came from: "run" or "built-in")."""
    convs = run_conversations(run_dir)
    if convs:
        return convs, "run"
    return [[{"role": "user", "content": p}] for p in BUILTIN_PROMPTS], "built-in"
