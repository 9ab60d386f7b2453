"""``sftkit.lock.json``: what a run was made with (package versions, data file hashes, recipe hash)."""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from pathlib import Path

PACKAGES = ("sftkit", "torch", "transformers", "trl", "datasets", "peft", "accelerate", "tokenizers")
HASH_LIMIT = 2 * 1024 ** 3  # do not hash files larger than this


def package_versions(names=PACKAGES) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _data_paths(recipe: dict, base_dir: Path, host=None) -> list[tuple[str, Path]]:
    """Local files the recipe's ``[[data]]`` entries and ``[strategy]`` name, by their key: the
    options their components' schemas mark ``x-sftkit-path`` (the one rule for what is a path)."""
    from sftkit.errors import dotted
    from sftkit.paths import resolve_path
    from sftkit.schema import component_of, component_tables, path_options

    if host is None:
        from sftkit.plugins import get_host

        host = get_host()
    found = []

    def add(key, value):
        try:
            p = resolve_path(value, base_dir)
        except Exception:
            return
        if p.is_file():
            found.append((key, p))
        elif p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file():
                    found.append((f"{key}/{f.relative_to(p)}", f))

    for table, path, item in component_tables(recipe):
        if table not in ("data", "strategy"):
            continue
        comp = component_of(table, item, host.registry)
        for key_path, value in path_options(comp.schema if comp is not None else None, item):
            add(dotted(tuple(path) + tuple(key_path)), value)
    return found


def build_lock(recipe: dict, base_dir: Path, *, recipe_hash: str, host=None, files=None) -> dict:
    """The lock record for one run; ``files`` adds paths the data stage reports having read."""
    paths = _data_paths(recipe, Path(base_dir), host)
    seen = {str(p) for _, p in paths}
    for f in files or ():
        p = Path(f)
        if p.is_file() and str(p) not in seen:
            paths.append((str(p), p))
            seen.add(str(p))
    files = {}
    for key, p in paths:
        size = p.stat().st_size
        files[key] = {"path": str(p), "bytes": size,
                      "sha256": sha256_file(p) if size <= HASH_LIMIT else None}
    plugins = {}
    if host is not None:
        try:
            plugins = {k: v for k, v in host.dist_versions().items() if k != "sftkit"}
        except Exception:
            plugins = {}
    model = {"name": (recipe.get("model") or {}).get("name")}
    try:
        from sftkit.paths import resolve_path

        mp = resolve_path(model["name"], Path(base_dir)) if model["name"] else None
        if mp is not None and mp.exists():
            model["path"] = str(mp)
            if mp.is_file():
                model["bytes"] = mp.stat().st_size
    except Exception:
        pass
    return {
        "recipe_hash": recipe_hash,
        "model": model,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "plugins": plugins,
        "data_files": files,
    }


def write_lock(run_dir: Path, lock: dict) -> Path:
    from sftkit.redaction import scrub

    path = Path(run_dir) / "sftkit.lock.json"
    path.write_text(scrub(json.dumps(lock, indent=2, sort_keys=True)) + "\n", encoding="utf-8")
    return path


def read_lock(run_dir: Path) -> dict:
    """The run directory's lock record, or {} when it is missing or unreadable."""
    try:
        data = json.loads((Path(run_dir) / "sftkit.lock.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def changed_data(old: dict, new: dict) -> list[str]:
    """The data files whose content (sha256, or size when too large to hash) differs between two lock
    records, or that one of them lacks; [] when ``old`` has no record of its data."""
    before, after = old.get("data_files"), new.get("data_files") or {}
    if not isinstance(before, dict):
        return []

    def key(entry):
        return (entry.get("sha256"), entry.get("bytes")) if isinstance(entry, dict) else None

    names = sorted(set(before) | set(after))
    return [n for n in names if key(before.get(n)) != key(after.get(n))]
