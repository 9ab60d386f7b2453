"""The run's checkpoints, ``RUN_DIR/checkpoints``.

The trainer saves one every ``[training] save_steps`` (``save_total_limit`` kept); ``--resume``
continues from the newest complete one (:func:`sftkit.strategies.trainer.last_checkpoint`). They
hold the optimizer state, several times the model's size, so a finished run removes them unless
``[output] keep_checkpoints = true`` (:func:`clean`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

DIRNAME = "checkpoints"


def save_every(training, steps: int) -> int:
    """Steps between checkpoints: ``[training] save_steps``, default max(10, steps / 5)."""
    return int(training.save_steps or max(10, steps // 5))


def directory(run_dir: Path) -> Path:
    return Path(run_dir) / DIRNAME


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def clean(run_dir: Path, *, keep: bool, say=None) -> int:
    """Remove the checkpoints of a finished run (unless ``keep``); returns the bytes freed."""
    where = directory(run_dir)
    if keep or not where.is_dir():
        return 0
    freed = _size(where)
    shutil.rmtree(where)
    if say and freed:
        say(f"removed the checkpoints ({freed / 1e6:.1f} MB; [output] keep_checkpoints = true keeps them)")
    return freed
