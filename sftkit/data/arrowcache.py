"""Arrow files written once per input file version and memory-mapped afterwards.

Readers stream their input into an Arrow IPC stream file under ``$SFTKIT_CACHE/data`` (default
``~/.cache/sftkit/data``), keyed by the input's path, size and modification time and the reading
options; ``datasets.Dataset.from_file`` then memory-maps it, so even a 500 MB JSONL file never
becomes Python objects. A JSON side file keeps what the reader learnt (skipped lines and why).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable

from ..errors import STORAGE_ERRNOS, SftkitError

READER_VERSION = "1"


def cache_root() -> Path:
    """Where converted data files live: ``<sftkit cache>/data``."""
    from ..paths import cache_root as sftkit_cache

    return sftkit_cache() / "data"


def file_fingerprint(path: Path) -> list:
    """Identity of one input file version (path, size, mtime)."""
    st = path.stat()
    return [str(path.resolve()), st.st_size, st.st_mtime_ns]


def code_version(*objects: Any) -> list:
    """Modification times of the source files (whole package directories) defining ``objects``:
    caches of map results are invalidated when the code that produced them changes."""
    import inspect

    out = []
    for obj in objects:
        try:
            src = inspect.getsourcefile(obj if inspect.ismodule(obj) or inspect.isclass(obj) else type(obj))
        except TypeError:
            src = None
        if not src:
            continue
        folder = Path(src).parent
        out.append([str(folder), sorted((p.name, p.stat().st_mtime_ns) for p in folder.glob("*.py"))])
    return out


def cache_key(*parts: Any) -> str:
    text = json.dumps([READER_VERSION, *parts], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


class ArrowSink:
    """Writes tables into one Arrow stream file with a fixed schema (cast on the way in)."""

    def __init__(self, path: Path, schema):
        import pyarrow as pa

        self.path = path
        self.schema = schema
        self._file = pa.OSFile(str(path), "wb")
        self._writer = pa.ipc.new_stream(self._file, schema)
        self.rows = 0

    def write(self, table) -> None:
        if table.num_rows == 0:
            return
        if table.schema != self.schema:
            table = table.select(self.schema.names).cast(self.schema)
        self._writer.write_table(table, max_chunksize=10_000)
        self.rows += table.num_rows

    def close(self) -> None:
        self._writer.close()
        self._file.close()


class CacheError(SftkitError):
    """sftkit's cache directory cannot be written (read-only, full, not a directory)."""


@contextlib.contextmanager
def _writing_cache(root: Path):
    """Failed writes into the cache are the cache's problem, named with ``SFTKIT_CACHE``, never
    taken for a corrupt input file."""
    try:
        yield
    except OSError as exc:
        why = STORAGE_ERRNOS.get(exc.errno) or exc.strerror or str(exc)
        raise CacheError(f"cannot write sftkit's data cache: {why}", where=str(root),
                         hint="make it writable, or set SFTKIT_CACHE to a writable directory") from None


class _CacheSink(ArrowSink):
    """An :class:`ArrowSink` whose write errors are :class:`CacheError`."""

    def write(self, table) -> None:
        with _writing_cache(self.path.parent):
            super().write(table)


def cached_dataset(name: str, key: str, build: Callable[[Callable[[Any], ArrowSink]], dict]):
    """Return ``(dataset, meta)`` for ``key``, calling ``build(open_sink)`` once to write it.

    ``build`` receives ``open_sink(schema) -> ArrowSink`` and returns a JSON-able ``meta`` dict.
    Writing goes to a temporary file renamed into place, so an interrupted read leaves no cache.
    """
    from datasets import Dataset

    from ..redaction import scrub

    root = cache_root()
    with _writing_cache(root):
        root.mkdir(parents=True, exist_ok=True)
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in scrub(name))[:60] or "data"
    final = root / f"{stem}-{key}.arrow"
    meta_path = final.with_suffix(".meta.json")
    if final.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        return Dataset.from_file(str(final)), meta

    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    sinks: list[ArrowSink] = []

    def open_sink(schema) -> ArrowSink:
        with _writing_cache(root):
            sink = _CacheSink(tmp, schema)
        sinks.append(sink)
        return sink

    try:
        meta = build(open_sink)
        with _writing_cache(root):
            if not sinks:  # nothing was written: an empty file with an empty schema
                import pyarrow as pa

                open_sink(pa.schema([]))
            for s in sinks:
                s.close()
            os.replace(tmp, final)
            meta_path.write_text(json.dumps(meta))
    finally:
        for s in sinks:
            try:
                s.close()
            except Exception:
                pass
        if tmp.exists():
            tmp.unlink()
    return Dataset.from_file(str(final)), meta
