"""``sftkit plan RECIPE``: rows, tokens, steps, time, memory and disk of a run, before it runs."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import click

from sftkit.errors import SftkitError


def _clock(seconds) -> str:
    if seconds is None:
        return "unknown"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def format_plan(plan: dict) -> list[str]:
    """The plan as text lines."""
    d, s, t, m, k = plan["data"], plan["schedule"], plan["time"], plan["memory"], plan["disk"]
    dropped = ", ".join(f"{r} {n}" for r, n in (d.get("dropped") or {}).items() if n) or "none"
    n = int(s.get("processes") or 1)
    procs = f" x {n} processes" if n > 1 else ""
    lines = [
        f"plan for {plan['recipe']} ({plan['strategy']}), precision {plan['precision']['name']} "
        f"on {plan['precision']['device']} ({plan['precision']['reason']})",
        f"data: {d['train_rows']:,} train rows ({d.get('train_tokens') or 0:,} tokens, {d.get('trained_tokens') or 0:,} "
        f"trained), {d['eval_rows']:,} eval rows; mean length {d.get('mean_length')}, longest {d.get('longest')} "
        f"of max_length {d.get('max_length')}; truncated {d.get('truncated', 0)}, dropped {dropped}",
        f"schedule: {s['steps']} steps of {s['global_batch']} rows (per device {s['per_device_batch']} x "
        f"accumulation {s['gradient_accumulation']}{procs}) = {s['epochs']} epochs, "
        f"~{s.get('trained_tokens') or 0:,} trained tokens",
        f"time: training {_clock(t['train_seconds'])} ({t['seconds_per_step']} s/step, calibrated on "
        f"{t['calibration']['steps']} steps{', a device per process' if n > 1 else ''}), evaluation "
        f"{_clock(t['eval_seconds'])} (base + tuned), total {_clock(t['total_seconds'])}",
    ]
    for row in t.get("evaluators") or []:
        per = row.get("seconds_per_item")
        lines.append(f"  eval {row['label']}: {row.get('items') or '?'} items x "
                     f"{f'{per:.2f}' if per is not None else '?'} s = {_clock(row.get('seconds'))} per model")
    lines.append(f"memory ({m['kind']}, {m['device']}): estimated peak {m['estimate_gb']:.2f} GB"
                 + (f" per process ({m['strategy']}, {n} processes)" if n > 1 else "")
                 + f" (measured in calibration, one process: {m['measured_peak_gb']} GB); model: weights "
                 f"{m['weights_gb']:.2f} + gradients {m['gradients_gb']:.2f} + optimizer {m['optimizer_gb']:.2f} + "
                 f"activations {m['activations_gb']:.2f} = {m['total_gb']:.2f} GB")
    if n > 1:
        p = m["per_process"]
        lines.append(f"  per process: weights {p['weights_gb']:.2f} + gradients {p['gradients_gb']:.2f} + optimizer "
                     f"{p['optimizer_gb']:.2f} + activations {p['activations_gb']:.2f} + gradient buckets "
                     f"{p['buckets_gb']:.2f} = {p['total_gb']:.2f} GB")
    lines.append(f"disk: model {k['model_gb']:.2f} GB + {k['checkpoints']} checkpoint(s) {k['checkpoints_gb']:.2f} GB "
                 f"= {k['total_gb']:.2f} GB")
    lines += [f"warning: {w}" for w in plan.get("warnings") or []]
    return lines


@click.command("plan")
@click.argument("recipe", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe value.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--steps", type=click.IntRange(2, 50), default=None,
              help="Calibration steps to time (default 3; the first is not counted).")
@click.option("--nproc", type=click.IntRange(1, 4096), default=1, show_default=True,
              help="Processes per machine the run will use (sftkit run --nproc): global batch, steps and memory per process.")
@click.option("--nnodes", type=click.IntRange(1, 4096), default=1, show_default=True, help="Machines the run will use.")
def plan(recipe, overrides, fmt, steps, nproc, nnodes):
    """Estimate a run of RECIPE before it runs: rows and tokens per split, truncated and dropped rows,
    steps and epochs, trained tokens, global batch, training and evaluation time (calibrated by a few
    real steps at the recipe's batch shape), peak memory (weights, gradients, optimizer state,
    activations; per process with --nproc, by the recipe's [distributed] strategy) and output disk.
    Exits 1 when [plan] max_hours / max_memory_gb are exceeded."""
    from sftkit.plan import limit_failures
    from sftkit.run import plan as make_plan

    def say(msg: str) -> None:
        click.echo(msg, err=True)

    try:
        with contextlib.redirect_stdout(sys.stderr):  # the trainer prints its logs: stdout is the plan's
            result = make_plan(recipe, overrides, console=say, steps=steps, processes=nproc * nnodes)
    except SftkitError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(err.exit_code)
    failures = limit_failures(result)
    result["limit_failures"] = failures
    if fmt == "json":
        click.echo(json.dumps(result, indent=2, default=str))
    else:
        for line in format_plan(result):
            click.echo(line)
    if failures:
        click.echo("error: [plan]: " + "; ".join(failures), err=True)
        sys.exit(1)
