"""``sftkit plan``: what a run will cost, before it runs.

:func:`plan_of` takes the run's first stages (the recipe, its data and strategy: :func:`sftkit.run.plan`
runs them), tokenizes the data the strategy's way, trains a few calibration
steps at the recipe's batch shape (:mod:`sftkit.plan.calibrate`), times each evaluator on a few
items, and returns a plain dict: data (rows, tokens, truncation, dropped rows), schedule (steps,
epochs, global batch, trained tokens), time (training, evaluation of base and tuned), memory
(modelled by part, and the measured peak of the calibration run; per process when the run will
use several, ``processes``) and output disk.
:func:`limit_failures` compares it with ``[plan] max_hours`` / ``max_memory_gb``.
"""

from __future__ import annotations

import math
from pathlib import Path

from sftkit.errors import SftkitError

FEW_EXAMPLES = 100
MOSTLY_TRUNCATED = 0.5
GB = 1024 ** 3


def _dtype_bytes(model) -> int:
    try:
        return next(model.parameters()).element_size()
    except (StopIteration, AttributeError):
        return 4


def _config(model) -> dict:
    cfg = getattr(model, "config", None)
    get = lambda *names: next((int(getattr(cfg, n)) for n in names if getattr(cfg, n, None)), 0)  # noqa: E731
    return {"layers": get("num_hidden_layers", "n_layer"), "hidden": get("hidden_size", "n_embd", "dim"),
            "vocab": get("vocab_size")}


def plan_of(state, *, console=None, steps: int | None = None, processes: int = 1) -> dict:
    """The plan (see the module docstring) of a run whose first stages have run: ``state`` is a
    :class:`sftkit.run.stages.RunState` after ``prepare`` and ``load_data`` (the recipe resolved once,
    its strategy, data and formatter), for a run of ``processes`` processes (``sftkit run --nproc``;
    calibration runs one). Raises SftkitError for bad input."""
    from sftkit.api import RunContext
    from sftkit.modeling.precision import decide
    from sftkit.strategies.trainer import planned_steps

    from .calibrate import CAL_STEPS, calibrate, time_evaluators
    from .memory import per_process, training_memory

    say = console or (lambda msg: None)
    recipe, host = state.recipe, state.host
    recipe_path = state.ctx.recipe_path
    config = recipe.config
    strategy, comp = state.strategy, state.component
    bundle = state.ctx.data
    formatter = state.ctx.formatter
    training = config.training
    precision = decide(training)

    def make_ctx(run_config, run_dir):
        return RunContext(config=run_config, recipe_path=Path(recipe_path), base_dir=recipe.base_dir,
                          run_dir=run_dir, host=host, data=bundle, formatter=formatter, console=say,
                          precision=precision, load_model=state.ctx.load_model)

    say(f"calibrating: {steps or CAL_STEPS} training steps at the recipe's batch shape ({precision.describe()})")
    cal = calibrate(make_ctx, config, strategy, bundle, steps=steps or CAL_STEPS)

    tok = cal.tokenized or {}
    rows = int(tok.get("train_rows") or tok.get("rows") or len(bundle.train))
    per_device = int(training.per_device_train_batch_size)
    accumulation = int(training.gradient_accumulation_steps)
    processes = max(1, int(processes))
    global_batch = training.per_step_rows * processes
    n_steps = planned_steps(training, math.ceil(rows / processes))  # = ceil(rows / global batch) per epoch
    epochs = n_steps * global_batch / rows if rows else None
    trained_per_row = (tok.get("trained_tokens") or 0) / tok["rows"] if tok.get("rows") else None
    mean_len = tok.get("mean_length")
    # one process's tokens per step: with several, each has its own device and they step together
    processed_per_step = (per_device * accumulation * mean_len / max(1e-9, 1 - cal.padding_fraction)) if mean_len else (
        sum(cal.step_tokens) / len(cal.step_tokens) if cal.step_tokens else None)
    rate = cal.seconds_per_token()
    train_seconds = rate * processed_per_step * n_steps if (rate and processed_per_step) else None

    eval_rows: list = []
    eval_seconds = None
    if config.eval and cal.model is not None:
        say("timing the evaluators on a few items")
        from sftkit.evaluation import Target

        ctx = make_ctx(config, Path(recipe.base_dir))
        ctx.tokenizer = cal.tokenizer
        target = Target(cal.model, cal.tokenizer, formatter, "tuned", precision=precision,
                        batch_size=training.per_device_eval_batch_size,
                        row_length=training.max_length)  # as the run builds it (run.stages._target)
        eval_rows = time_evaluators(ctx, target)
        timed = [r["seconds"] for r in eval_rows]
        if timed and all(t is not None for t in timed):
            # base and tuned, and the base model once more per [[baseline]] (at most: an evaluator a
            # prompt cannot change costs nothing there)
            eval_seconds = (2 + len(config.baseline)) * sum(timed)

    model = cal.model
    params = cal.parameters or {}
    total = int(params.get("total") or 0)
    trainable = int(params.get("trainable") or 0)
    cfg = _config(model)
    longest = min(int(tok.get("max_length_seen") or 0) or training.max_length, training.max_length)
    adapter = config.adapter
    quantized = int(params.get("quantized") or 0)
    modelled = training_memory(parameters=total, trainable=trainable, weight_bytes=_dtype_bytes(model),
                               tokens_per_step=per_device * longest, autocast=precision.name != "fp32",
                               chunked=cal.chunked_loss, quantized=quantized,
                               double_quant=bool(adapter.double_quant) if adapter else True, **cfg)
    memory = {k + "_gb": round(v / GB, 3) for k, v in modelled.items()}
    memory["bytes"] = modelled
    memory["measured_peak_gb"] = round(cal.peak_bytes / GB, 3) if cal.peak_bytes else None
    memory["device"] = precision.device
    memory["kind"] = adapter.kind if adapter else ("freeze" if config.freeze and config.freeze.given else "full")
    if quantized:
        memory["quantized_parameters"] = quantized
    memory["chunked_loss"] = cal.chunked_loss
    memory["processes"] = processes
    memory["estimate_gb"] = memory["measured_peak_gb"] or memory["total_gb"]
    if processes > 1:  # per process: the measured one-process peak scaled as the model scales it
        distributed = config.distributed
        mine = per_process(modelled, processes=processes, distributed=distributed)
        memory["per_process"] = {k + "_gb": round(v / GB, 3) for k, v in mine.items()}
        memory["strategy"] = distributed.strategy
        memory["estimate_gb"] = (round(memory["measured_peak_gb"] * mine["total"] / modelled["total"], 3)
                                 if memory["measured_peak_gb"] and modelled["total"] else memory["per_process"]["total_gb"])

    saved_bytes = _dtype_bytes(model)
    if adapter is not None and adapter.quantized and adapter.merge:  # de-quantized to the compute dtype
        saved_bytes = 2 if precision.name in ("bf16", "fp16") else 4
    disk = _disk(config, total, trainable, saved_bytes, n_steps)

    warnings = []
    if rows < FEW_EXAMPLES:
        warnings.append(f"only {rows} training examples: fewer than {FEW_EXAMPLES} rarely teach a model anything "
                        "reliable; add data or expect to measure noise")
    truncated = int(tok.get("truncated") or 0)
    if tok.get("rows") and truncated / tok["rows"] > MOSTLY_TRUNCATED:
        warnings.append(f"{truncated} of {tok['rows']} training examples are cut at training.max_length = "
                        f"{tok.get('max_length')}: raise max_length or shorten the data")
    return {
        "recipe": recipe.name,
        "strategy": comp.name,
        "precision": precision.as_dict(),
        "data": {"train_rows": rows, "eval_rows": len(bundle.eval) if bundle.eval is not None else 0,
                 "train_tokens": tok.get("total_tokens"), "trained_tokens": tok.get("trained_tokens"),
                 "eval_tokens": (tok.get("eval_tokens") or {}).get("total_tokens"),
                 "mean_length": mean_len, "longest": tok.get("max_length_seen"),
                 "max_length": tok.get("max_length"), "truncated": truncated,
                 "dropped": {**(bundle.stats or {}).get("dropped", {}), **(tok.get("dropped") or {})}},
        "schedule": {"steps": n_steps, "epochs": round(epochs, 3) if epochs is not None else None,
                     "per_device_batch": per_device, "gradient_accumulation": accumulation,
                     "processes": processes,
                     "global_batch": global_batch,
                     "trained_tokens": round(trained_per_row * global_batch * n_steps) if trained_per_row else None},
        "time": {"train_seconds": _round(train_seconds), "eval_seconds": _round(eval_seconds),
                 "total_seconds": _round((train_seconds or 0) + (eval_seconds or 0)) if train_seconds else None,
                 "seconds_per_step": _round(train_seconds / n_steps) if train_seconds else None,
                 "processes": processes,
                 "calibration": {"steps": len(cal.step_seconds), "step_seconds": [round(s, 3) for s in cal.step_seconds],
                                 "step_tokens": cal.step_tokens, "padding_fraction": round(cal.padding_fraction, 4)},
                 "evaluators": eval_rows},
        "memory": memory,
        "disk": disk,
        "parameters": {"total": total, "trainable": trainable},
        "warnings": warnings,
        "limits": config.plan.as_dict(),
    }


def _round(x):
    """Three significant figures: a tiny model's fraction-of-a-millisecond step must not print as 0."""
    return float(f"{x:.3g}") if isinstance(x, (int, float)) and math.isfinite(x) else None


def _disk(config, total: int, trainable: int, weight_bytes: int, steps: int) -> dict:
    """Output disk: the saved model and the checkpoints kept (weights + AdamW state of what trains)."""
    from sftkit.run.checkpoints import save_every

    training, adapter = config.training, config.adapter
    if not config.output.save_model:
        model_bytes = 0
    elif adapter and not adapter.merge:
        model_bytes = trainable * 4
    else:
        model_bytes = total * weight_bytes
    kept = min(int(training.save_total_limit), steps // save_every(training, steps))
    ckpt_weights = trainable * 4 if adapter else total * weight_bytes
    checkpoint = ckpt_weights + trainable * 8
    return {"model_gb": round(model_bytes / GB, 3), "model_bytes": model_bytes, "checkpoints": kept,
            "checkpoints_gb": round(kept * checkpoint / GB, 3),
            "total_gb": round((model_bytes + kept * checkpoint) / GB, 3)}


def limit_failures(plan: dict, limits: dict | None = None) -> list[str]:
    """``[plan] max_hours`` / ``max_memory_gb`` this plan exceeds, each with the numbers."""
    limits = plan.get("limits") if limits is None else limits
    out = []
    hours = limits.get("max_hours") if limits else None
    total = (plan.get("time") or {}).get("total_seconds")
    if hours is not None and total is not None and total / 3600 > float(hours):
        out.append(f"estimated time {total / 3600:.2f} h (training {plan['time']['train_seconds']} s, evaluation "
                   f"{plan['time']['eval_seconds']} s) exceeds [plan] max_hours = {hours}")
    mem = limits.get("max_memory_gb") if limits else None
    est = (plan.get("memory") or {}).get("estimate_gb")
    if mem is not None and est is not None and est > float(mem):
        out.append(f"estimated peak memory {est:.2f} GB exceeds [plan] max_memory_gb = {mem}")
    return out


def check_limits(plan: dict) -> None:
    """Raise SftkitError (exit 1) when the plan exceeds the recipe's limits."""
    failures = limit_failures(plan)
    if failures:
        raise SftkitError("; ".join(failures), where="[plan]",
                          hint="raise the limit, or make the run smaller (max_steps, max_length, batch, LoRA)")
