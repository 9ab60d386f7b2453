"""``sftkit cache``: what sftkit keeps on disk (converted GGUF models, smoke models, Arrow data) and
how to reclaim it. Everything there is derived and is rebuilt on demand."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from sftkit.errors import storage_error
from sftkit.paths import cache_root

PARTS = {
    "models": "GGUF files (and model loaders' formats) converted to trainable weights",
    "smoke": "tiny same-architecture models for --smoke",
    "data": "data files streamed into memory-mapped Arrow",
    "hashes": "content hashes of model files (so a file installed twice converts once)",
}


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def _human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


@click.group()
def cache():
    """Show or clear sftkit's cache ($SFTKIT_CACHE, default ~/.cache/sftkit)."""


@cache.command("info")
def info():
    """Size of each part of the cache."""
    root = cache_root()
    click.echo(f"cache: {root}")
    total = 0
    for part, what in PARTS.items():
        path = root / part
        size = _size(path) if path.exists() else 0
        total += size
        click.echo(f"  {part:<7} {_human(size):>9}  {what}")
    click.echo(f"  {'total':<7} {_human(total):>9}")


@cache.command("clean")
@click.argument("parts", nargs=-1, type=click.Choice(list(PARTS)))
def clean(parts):
    """Delete cached parts (all of them when none is named); they are rebuilt when needed."""
    root = cache_root()
    freed = 0
    for part in parts or tuple(PARTS):
        path = root / part
        if path.exists():
            size = _size(path)
            try:
                shutil.rmtree(path)
            except OSError as exc:  # a read-only or foreign cache: one line, naming it and SFTKIT_CACHE
                err = storage_error(exc, hint="make the cache writable, or set SFTKIT_CACHE to another directory")
                if err is None:
                    raise
                raise err from None
            freed += size
    click.echo(f"freed {_human(freed)} from {root}")
