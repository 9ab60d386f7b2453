"""Resolve paths a recipe names: absolute, relative to the recipe file, or ``package://mod/path``."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from .errors import SftkitError

PACKAGE_SCHEME = "package://"


def package_root(import_name: str) -> Path:
    """The directory of an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(import_name)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not (spec.submodule_search_locations or spec.origin):
        raise SftkitError(
            f"package {import_name!r} is not installed",
            hint=f"pip install it (package://{import_name}/... paths point inside installed packages)",
        )
    if spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    return Path(spec.origin).parent


def resolve_path(path: str, base_dir: Path | None) -> Path:
    """Return the filesystem path for ``path`` (not checked for existence)."""
    text = str(path)
    if text.startswith(PACKAGE_SCHEME):
        rest = text[len(PACKAGE_SCHEME):]
        import_name, _, inner = rest.partition("/")
        return package_root(import_name) / inner
    p = Path(text).expanduser()
    if not p.is_absolute() and base_dir is not None:
        p = Path(base_dir) / p
    return p


def cache_root() -> Path:
    """sftkit's cache directory: ``$SFTKIT_CACHE`` or ``~/.cache/sftkit`` (converted models, Arrow data)."""
    env = os.environ.get("SFTKIT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "sftkit"
