"""``sftkit cache``: what sftkit keeps on disk (converted GGUF models, smoke models, Arrow data, the
base model's evaluations) and how to reclaim it. Everything there is derived and is rebuilt on demand."""

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
    "base_eval": "the base model's evaluation results, reused by runs that evaluate it the same way",
}
WIDTH = max(map(len, PARTS))


def _where(part: str) -> Path:
    """The directory of one part (``$SFTKIT_BASE_EVAL_CACHE`` moves the base evaluations)."""
    if part == "base_eval":
        from sftkit.run.base_cache import directory

        return directory()
    return cache_root() / part


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
        path = _where(part)
        size = _size(path) if path.exists() else 0
        total += size
        click.echo(f"  {part:<{WIDTH}} {_human(size):>9}  {what}")
    click.echo(f"  {'total':<{WIDTH}} {_human(total):>9}")


@cache.command("clean")
@click.argument("parts", nargs=-1, type=click.Choice(list(PARTS)))
def clean(parts):
    """Delete cached parts (all of them when none is named); they are rebuilt when needed."""
    root = cache_root()
    freed = 0
    for part in parts or tuple(PARTS):
        path = _where(part)
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
