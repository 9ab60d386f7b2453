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


def open_data(path: Path):
    """A data file opened for reading bytes; ``.gz`` is decompressed as it is read (the one place
    that decides which compressions sftkit reads)."""
    if Path(path).suffix == ".gz":
        import gzip

        return gzip.open(path, "rb")
    return open(path, "rb")


def _line_reached(path: Path) -> int:
    """The line being read when decompressing ``path`` fails (1-based; to within the 8 KB read
    whose data the failure takes with it)."""
    newlines = 0
    try:
        with open_data(path) as f:
            while chunk := f.read(8192):
                newlines += chunk.count(b"\n")
    except Exception:
        pass
    return newlines + 1


def unreadable(path: Path, exc: BaseException, line: int | None = None):
    """A one-line :class:`DataError` for a data file that failed while being read: a corrupt or
    truncated compressed stream (with the line reached, counted when not given) or the file system
    refusing; None for any other exception."""
    import errno
    import gzip
    import zlib

    from .errors import DataError

    corrupt = isinstance(exc, (zlib.error, EOFError, gzip.BadGzipFile))
    if not corrupt and not isinstance(exc, OSError):
        return None
    if corrupt:
        line = line or _line_reached(path)
        what = "truncated" if isinstance(exc, EOFError) else "corrupt"
        return DataError(f"cannot read past line {line}: the compressed data is {what} ({exc})", where=str(path),
                         hint="the file is corrupt, truncated or unreadable; re-create or re-download it")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return DataError("cannot read the file: permission denied", where=str(path),
                         hint="make it readable by this user (chmod), or copy it somewhere readable")
    return DataError(f"cannot read the file: {exc.strerror or exc}", where=str(path),
                     hint="the file is corrupt, truncated or unreadable; re-create or re-download it")


def unreadable_start(path: Path, sample: int = 16 << 20):
    """The :func:`unreadable` error of a compressed file whose first ``sample`` bytes (decompressed)
    cannot be read, else None: ``validate`` catches a corrupt or truncated file without reading
    a large one whole."""
    import zlib

    if Path(path).suffix != ".gz":
        return None
    try:
        with open_data(path) as f:
            while sample > 0 and (chunk := f.read(min(sample, 1 << 20))):
                sample -= len(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        return unreadable(path, exc)
    return None
