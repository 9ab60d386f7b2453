"""The prompts an export is verified on: the run's ``[[eval]]`` items when they can be read, else built-in ones."""

from __future__ import annotations

import json
from pathlib import Path

import tomllib

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


def run_recipe(run_dir: Path | None) -> dict:
    """The resolved recipe a run saved (``recipe.toml``), or {}."""
    path = Path(run_dir) / "recipe.toml" if run_dir else None
    if path is None or not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return {}


def recipe_base_dir(run_dir: Path, recipe: dict) -> Path | None:
    """The directory the run's relative paths were read from, recovered from ``sftkit.lock.json``
    (the absolute path of a ``[[data]]`` file minus its relative spelling in the recipe)."""
    from ..run.lockfile import read_lock

    files = read_lock(run_dir).get("data_files") or {}
    for i, entry in enumerate(recipe.get("data") or []):
        rel = entry.get("path") if isinstance(entry, dict) else None
        hit = files.get(f"data[{i}].path") or {}
        if isinstance(rel, str) and not Path(rel).is_absolute() and str(hit.get("path", "")).endswith(rel):
            return Path(hit["path"][: -len(rel)] or ".")
    return None


def run_conversations(run_dir: Path | None, limit: int = 64) -> list[list[dict]]:
    """Conversations of the run's ``[[eval]]`` items (inline or from their files), with the [template]
    system prompt the run added; [] when the run names none that can be read."""
    from ..evaluation.base import item_messages, read_records
    from ..paths import resolve_path

    recipe = run_recipe(run_dir)
    base = recipe_base_dir(run_dir, recipe) if recipe else None
    system = (recipe.get("template") or {}).get("system")
    seen, out = set(), []
    for table in recipe.get("eval") or []:
        items = table.get("items")
        if items is None:
            rel = next((table[k] for k in PATH_OPTIONS if isinstance(table.get(k), str)), None)
            if rel is None:
                continue
            try:
                items = read_records(resolve_path(rel, base))
            except Exception:  # a file moved since the run: fall back to other tables or built-in prompts
                continue
        for item in items:
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
