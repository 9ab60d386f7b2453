"""sftkit's on-disk cache of converted models (GGUF → safetensors) and smoke-test configs.

Entries are written into a temporary directory and renamed into place, so a half-written entry is
never used; an entry counts only when its ``sftkit_cache.json`` marker exists.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

from ..paths import cache_root  # re-exported by sftkit.models

MARKER = "sftkit_cache.json"
CACHE_VERSION = 1


def file_digest(path: Path, *extra: str) -> str:
    """A short key for a file: its absolute path, size and modification time (plus ``extra``)."""
    st = Path(path).stat()
    key = "|".join([str(Path(path).resolve()), str(st.st_size), str(st.st_mtime_ns), str(CACHE_VERSION), *extra])
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def content_digest(path: Path, *extra: str) -> str:
    """A short key for a file's content (sha256 of its bytes, plus ``extra``): the same model
    installed in several places shares one cache entry. The hash is remembered per (path, size,
    modification time) in ``<cache>/hashes/``, so each file is read once."""
    path = Path(path).resolve()
    remembered = cache_root() / "hashes" / file_digest(path)
    try:
        sha = remembered.read_text(encoding="utf-8").strip()
    except OSError:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                h.update(block)
        sha = h.hexdigest()
        remembered.parent.mkdir(parents=True, exist_ok=True)
        tmp = remembered.with_name(f".{remembered.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        tmp.write_text(sha, encoding="utf-8")
        os.replace(tmp, remembered)
    return hashlib.sha256("|".join([sha, str(CACHE_VERSION), *extra]).encode()).hexdigest()[:24]


def text_digest(*parts: str) -> str:
    return hashlib.sha256("|".join([str(CACHE_VERSION), *parts]).encode()).hexdigest()[:24]


def cached_entry(kind: str, digest: str) -> Path | None:
    """The finished cache directory for ``digest``, or None."""
    final = cache_root() / kind / digest
    return final if (final / MARKER).exists() else None


def write_entry(kind: str, digest: str, fill, info: dict) -> Path:
    """Create cache entry ``kind/digest`` by calling ``fill(tmp_dir)``, then renaming it into place atomically."""
    root = cache_root() / kind
    root.mkdir(parents=True, exist_ok=True)
    final = root / digest
    tmp = root / f".tmp-{digest}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        fill(tmp)
        from ..redaction import scrub_obj

        (tmp / MARKER).write_text(json.dumps({**scrub_obj(info), "cache_version": CACHE_VERSION}, indent=2))
        if final.exists() and not (final / MARKER).exists():
            shutil.rmtree(final, ignore_errors=True)  # a stale, unfinished entry
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / MARKER).exists():  # lost a race to a concurrent writer: use theirs
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final
