"""The run's checkpoints, ``RUN_DIR/checkpoints``.

The trainer saves one every ``[training] save_steps`` (``save_total_limit`` kept); ``--resume``
continues from the newest complete one (:func:`sftkit.strategies.trainer.last_checkpoint`). With
``[training] best_metric`` a checkpoint is saved at every evaluation and the best one is loaded at
the end, so the saved model is the best step's (:func:`trainer_kwargs`, :func:`best`). They hold
the optimizer state, several times the model's size, so a finished run removes them unless
``[output] keep_checkpoints = true`` (:func:`clean`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

DIRNAME = "checkpoints"


def save_every(training, steps: int) -> int:
    """Steps between checkpoints: ``[training] save_steps``, default max(10, steps / 5); with
    ``best_metric``, every evaluation (``eval_steps``) so each evaluated step can be kept."""
    if training.best_metric and training.eval_steps:
        return int(training.eval_steps)
    return int(training.save_steps or max(10, steps // 5))


def trainer_kwargs(training, *, evaluates: bool) -> dict:
    """``TrainingArguments`` keywords for best-checkpoint selection (``[training] best_metric``):
    the best checkpoint is loaded when training ends. Nothing when no metric is asked for, or when
    the trainer does not evaluate during training (no eval split)."""
    if not training.best_metric or not evaluates:
        return {}
    metric = str(training.best_metric)
    greater = training.greater_is_better
    if greater is None:
        greater = not metric.endswith("loss")
    return {"load_best_model_at_end": True, "metric_for_best_model": metric, "greater_is_better": bool(greater)}


def best(state) -> dict | None:
    """Which checkpoint was the best (a ``transformers.TrainerState`` after training):
    ``{"metric", "value", "step", "checkpoint"}``; None without best-checkpoint selection."""
    path = getattr(state, "best_model_checkpoint", None)
    if not path:
        return None
    step = getattr(state, "best_global_step", None)
    if not step:
        try:
            step = int(Path(path).name.rsplit("-", 1)[-1])
        except ValueError:
            step = None
    return {"value": getattr(state, "best_metric", None), "step": step, "checkpoint": Path(path).name}


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
