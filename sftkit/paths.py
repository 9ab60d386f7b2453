"""Resolve paths a recipe names: absolute, relative to the recipe file, or ``package://mod/path``."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from .errors import SftkitError

PACKAGE_SCHEME = "package://"


def package_root(import_name: str) -> Path:
    """The directory of an installed package, found without importing it (nor its parents: for
    ``a.b`` only ``a`` is looked up, then ``b`` as a directory inside it)."""
    top, _, rest = import_name.partition(".")
    try:
        spec = importlib.util.find_spec(top) if top and "." not in top else None
    except (ImportError, ValueError):
        spec = None
    if spec is None or not (spec.submodule_search_locations or spec.origin):
        raise SftkitError(
            f"package {import_name!r} is not installed",
            hint=f"pip install it (package://{import_name}/... paths point inside installed packages)",
        )
    root = Path(list(spec.submodule_search_locations)[0]) if spec.submodule_search_locations else Path(spec.origin).parent
    for part in rest.split(".") if rest else ():
        root = root / part
        if not root.is_dir():
            raise SftkitError(f"package {import_name!r} is not installed (no {part!r} inside {top!r})",
                              hint=f"package://{import_name}/... must name an installed package")
    return root


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


def not_a_regular_file(path: Path, max_bytes: int | None = None) -> str | None:
    """Why ``path`` must not be opened (a FIFO, device, socket or an oversized file), or None.
    Raises OSError (not found, name too long, ...) like ``open`` would, without blocking."""
    import stat

    st = path.stat()
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(21, "Is a directory", str(path))
    if not stat.S_ISREG(st.st_mode):
        kind = ("a FIFO" if stat.S_ISFIFO(st.st_mode) else "a device" if stat.S_ISCHR(st.st_mode)
                or stat.S_ISBLK(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode) else "a special file")
        return f"is {kind}, not a regular file"
    if max_bytes is not None and st.st_size > max_bytes:
        return f"is {st.st_size / 2**20:.1f} MB, too large for this file (at most {max_bytes / 2**20:.0f} MB)"
    return None
