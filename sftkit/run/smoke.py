"""The one smoke policy (``sftkit run --smoke``): a few optimizer steps on a tiny random model of
the same architecture, a few rows and short evaluations, written to its own directory.

Everything ``--smoke`` changes is here: :func:`recipe` (training and evaluator options),
:func:`rows` (data), :func:`run_dir` (where it writes). The tiny model itself comes from
``sftkit.modeling.smoke`` when the strategy loads with ``run.smoke``.
"""

from __future__ import annotations

import copy
from pathlib import Path

TRAINING = {"max_steps": 2, "logging_steps": 1, "save_steps": 1000, "gradient_accumulation_steps": 1}
BATCH_CAP = 4  # per-device train and eval batch size at most
ROWS = {"train": 16, "eval": 8}
EVAL = {"limit": 4, "max_new_tokens": 16}  # evaluator options capped where the evaluator has them
STRATEGY = {"num_generations": 2, "max_completion_length": 16}  # strategy options capped where a recipe sets them
SUFFIX = "-smoke"


def recipe(data: dict, registry=None) -> dict:
    """A copy of the resolved recipe for a smoke run: two optimizer steps, small batches, no
    mid-run saving or evaluation, evaluators limited to a few short items where they allow it."""
    data = copy.deepcopy(data)
    for table in data.get("eval") or []:
        comp = registry.find("evaluators", str(table.get("name"))) if registry is not None else None
        props = ((comp.schema or {}).get("properties") or {}) if comp is not None else {}
        for key, cap in EVAL.items():
            if key in props:
                table[key] = min(int(table.get(key) or cap), cap)
    t = data.setdefault("training", {})
    t.update(TRAINING)
    for key in ("per_device_train_batch_size", "per_device_eval_batch_size"):
        t[key] = min(int(t.get(key) or BATCH_CAP), BATCH_CAP)
    t.pop("eval_steps", None)
    strategy = data.get("strategy") or {}
    for key, cap in STRATEGY.items():  # an RL group must fit the capped batch; completions kept short
        if isinstance(strategy.get(key), int) and strategy[key] > cap:
            strategy[key] = cap
    return data


def rows(bundle):
    """The data bundle cut to a few training and evaluation rows."""
    train = bundle.train.select(range(min(len(bundle.train), ROWS["train"])))
    ev = bundle.eval
    if ev is not None:
        ev = ev.select(range(min(len(ev), ROWS["eval"])))
    return type(bundle)(**{**bundle.__dict__, "train": train, "eval": ev})


def run_dir(real: Path) -> Path:
    """Where a smoke run writes when no ``--output`` is given: beside the real run directory, never
    in it (a finished smoke run must not block the real run)."""
    real = Path(real)
    return real.with_name(real.name + SUFFIX)
