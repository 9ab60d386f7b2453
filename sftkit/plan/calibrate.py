"""Calibration: a few real optimizer steps of the recipe's own strategy, at its batch shape.

The strategy trains for ``steps`` steps in a scratch directory (no checkpoint, no saved model, no
eval split), exactly as ``sftkit run`` would start; the trainer's step clock and token counter
give seconds per processed token. The first step (allocation, kernel selection) is left out.
Each evaluator then runs on the calibrated model on a few items to time one item.
"""

from __future__ import annotations

import copy
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sftkit.config import Config

CAL_STEPS = 3
EVAL_ITEMS = 4  # the fewest items an evaluator is timed on
MAX_EVAL_ITEMS = 32  # the most (a GPU's generation batch can be larger: timing one would cost a full batch)


@dataclass
class Calibration:
    """What the scratch run measured."""

    step_seconds: list = field(default_factory=list)  # per optimizer step
    step_tokens: list = field(default_factory=list)  # processed tokens (real + padding) per optimizer step
    padding_fraction: float = 0.0
    peak_bytes: int | None = None
    parameters: dict = field(default_factory=dict)
    tokenized: dict = field(default_factory=dict)
    model: Any = None
    tokenizer: Any = None
    load_seconds: float = 0.0
    chunked_loss: bool = False  # the strategy's trainer computed the loss in chunks (no full logits)

    def seconds_per_token(self) -> float | None:
        """Seconds per processed token over the steps after the first."""
        times, tokens = self.step_seconds[1:] or self.step_seconds, self.step_tokens[1:] or self.step_tokens
        n = min(len(times), len(tokens))
        if not n or sum(tokens[:n]) <= 0:
            return None
        return sum(times[:n]) / sum(tokens[:n])


def scratch_config(config: Config, steps: int) -> Config:
    """The recipe of the calibration run: ``steps`` steps, logged, never saved, no evaluation."""
    from dataclasses import replace

    training = replace(config.training, max_steps=steps, logging_steps=1, save_steps=10 ** 9, eval_steps=None)
    return replace(config, training=training, output=replace(config.output, save_model=False), eval=())


def calibrate(make_ctx, config: Config, strategy, bundle, *, steps: int = CAL_STEPS) -> Calibration:
    """Train ``steps`` steps with ``strategy`` on ``bundle`` (no eval split) in a scratch directory.

    ``make_ctx(config, run_dir)`` builds the :class:`~sftkit.api.RunContext` for the scratch run."""
    from sftkit.plan.memory import peak_bytes, reset_peak

    cal = Calibration()
    scratch_bundle = type(bundle)(**{**bundle.__dict__, "eval": None})
    with tempfile.TemporaryDirectory(prefix="sftkit-plan-") as tmp:
        ctx = make_ctx(scratch_config(config, steps), Path(tmp) / "run")
        ctx.data = scratch_bundle
        ctx.run_dir.mkdir(parents=True)
        started = time.perf_counter()
        if hasattr(strategy, "load"):
            strategy.load(ctx)
        cal.load_seconds = time.perf_counter() - started
        reset_peak()
        result = strategy.train(ctx)
        cal.peak_bytes = peak_bytes()
        cal.step_seconds = list(ctx.step_seconds)
        counter = ctx.token_counter
        if counter is not None:
            ga = int(ctx.training.gradient_accumulation_steps)
            sizes = list(counter.sizes)
            cal.step_tokens = [sum(sizes[i:i + ga]) for i in range(0, len(sizes), ga)]
            cal.padding_fraction = counter.padding_fraction
        cal.parameters = dict(ctx.parameters or {})
        cal.tokenized = dict(ctx.data_stats.get("tokens") or {})
        cal.chunked_loss = bool(((getattr(result, "metrics", None) or {}).get("chunked_loss") or {}).get("used"))
        cal.model = getattr(result, "model", None)  # the Strategy contract: the trained model comes back
        cal.tokenizer = ctx.tokenizer
    return cal


def time_evaluators(run, target, *, items: int | None = None) -> list[dict]:
    """Seconds per item of each [[eval]] table, timed on ``items`` items (``limit`` where the evaluator
    has it; by default one full generation batch of ``target``: a batch of 4 took 4x longer per item
    than the batches of 16 the evaluation runs), and the number of items a full evaluation takes
    (None where it cannot be known)."""
    from sftkit.evaluation.runner import eval_specs

    if items is None:
        items = max(EVAL_ITEMS, min(int(getattr(target, "batch_size", EVAL_ITEMS) or EVAL_ITEMS), MAX_EVAL_ITEMS))

    out = []
    for spec in eval_specs(run):
        row = {"label": spec.label, "items": None, "seconds_per_item": None, "seconds": None}
        out.append(row)
        ev = spec.evaluator
        if ev is None:
            continue
        props = _option_names(run, spec.name)
        limited = copy.copy(ev)
        limited.options = dict(ev.options)
        if "limit" in props:
            limited.options["limit"] = min(int(ev.options.get("limit") or items), items)
        started = time.perf_counter()
        try:
            result = limited.evaluate(target, run)
        except Exception:  # the run will report it; the plan just cannot time it
            continue
        seconds = time.perf_counter() - started
        measured = len(getattr(result, "items", None) or []) or None
        if "limit" not in props:  # the timed call was the whole evaluation
            row.update(items=measured, seconds=seconds,
                       seconds_per_item=seconds / measured if measured else None)
            continue
        measured = measured or limited.options["limit"]
        row["seconds_per_item"] = seconds / measured
        row["items"] = _item_count(ev, run)
        if row["items"] is not None:
            row["seconds"] = row["seconds_per_item"] * row["items"]
    return out


def _option_names(run, name: str) -> set:
    comp = run.host.registry.find("evaluators", name) if run.host is not None else None
    return set(((comp.schema or {}).get("properties") or {}) if comp is not None else {})


def _item_count(evaluator, run) -> int | None:
    """Items a full evaluation scores: from the common item loader (inline items, a file, or the
    eval split), else the eval split's rows (capped by ``limit``); None when neither applies."""
    from sftkit.evaluation.base import eval_split_rows, load_items

    try:
        return len(load_items(evaluator, run)) or None
    except Exception:
        pass
    try:
        rows = len(eval_split_rows(run))
    except Exception:
        return None
    limit = evaluator.options.get("limit")
    return (min(rows, int(limit)) if limit else rows) or None
