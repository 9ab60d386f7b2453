"""One run: recipe → data → template → strategy.train → evaluation (base and tuned) → metrics → report.

:func:`run` is what ``sftkit run`` calls. The run directory is claimed first (never clobbering a
finished run or a foreign directory), ``COMPLETE`` is written last, so a directory without it is
an unfinished run that ``--resume`` continues from its last checkpoint.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .errors import DataError, GateError, SftkitError

SMOKE_TRAINING = {"max_steps": 2, "logging_steps": 1, "save_steps": 1000}
SMOKE_ROWS = {"train": 16, "eval": 8}


@dataclass
class RunOutcome:
    """What :func:`run` returns: the run directory and the metrics written to ``metrics.json``."""

    run_dir: Path
    metrics: dict
    claimed: str  # "new" | "overwritten" | "resumed"
    elapsed: float = 0.0
    gate_failures: list = field(default_factory=list)


def run_dir_for(data: dict, output: str | Path | None) -> Path:
    """The run directory: ``--output`` or ``[output] dir`` with ``{recipe.name}`` substituted."""
    name = str(data.get("recipe", {}).get("name", "recipe"))
    text = str(output) if output else str(data.get("output", {}).get("dir", "runs/{recipe.name}"))
    return Path(text.replace("{recipe.name}", name)).expanduser()


SMOKE_EVAL = {"limit": 4, "max_new_tokens": 16}


def apply_smoke(data: dict, registry=None) -> dict:
    """A recipe for ``--smoke``: two optimizer steps, small batches, no mid-run saving, and
    evaluators limited to a few short items where their options allow it."""
    data = copy.deepcopy(data)
    for table in data.get("eval") or []:
        comp = registry.find("evaluators", str(table.get("name"))) if registry is not None else None
        props = ((comp.schema or {}).get("properties") or {}) if comp is not None else {}
        for key, cap in SMOKE_EVAL.items():
            if key in props:
                table[key] = min(int(table.get(key) or cap), cap)
    t = data.setdefault("training", {})
    t.update(SMOKE_TRAINING)
    t["per_device_train_batch_size"] = min(int(t.get("per_device_train_batch_size", 8)), 4)
    t["per_device_eval_batch_size"] = min(int(t.get("per_device_eval_batch_size", 8)), 4)
    t["gradient_accumulation_steps"] = 1
    t.pop("eval_steps", None)
    return data


def _toml_clean(node):
    if isinstance(node, dict):
        return {str(k): _toml_clean(v) for k, v in node.items() if v is not None}
    if isinstance(node, (list, tuple)):
        return [_toml_clean(v) for v in node if v is not None]
    if isinstance(node, Path):
        return str(node)
    return node


def write_recipe(run_dir: Path, data: dict, secrets=()) -> None:
    """The resolved recipe, as TOML (secret-looking values redacted)."""
    import tomli_w

    from .recipe import redact

    from .redaction import scrub_obj

    body = tomli_w.dumps(_toml_clean(scrub_obj(redact(data, set(secrets)))))
    (run_dir / "recipe.toml").write_text("# resolved recipe of this run (sftkit)\n" + body, encoding="utf-8")


def _write_json(path: Path, obj: Any) -> None:
    from .redaction import scrub

    path.write_text(scrub(json.dumps(obj, indent=2, default=str)) + "\n", encoding="utf-8")


def _shrink(bundle, smoke: bool):
    if not smoke:
        return bundle
    train = bundle.train.select(range(min(len(bundle.train), SMOKE_ROWS["train"])))
    ev = bundle.eval
    if ev is not None:
        ev = ev.select(range(min(len(ev), SMOKE_ROWS["eval"])))
    return type(bundle)(**{**bundle.__dict__, "train": train, "eval": ev})


def check_fit(strategy, comp, bundle) -> None:
    """The data kind must be one the strategy trains on."""
    accepts = tuple(getattr(strategy, "accepts", None) or comp.meta.get("accepts") or ())
    if accepts and bundle.kind not in accepts:
        from .validate import shape_hint

        hint = shape_hint(comp.name, accepts)
        raise DataError(f"strategy {comp.name!r} trains on {' or '.join(accepts)} data, but the data is "
                        f"{bundle.kind} data", where="[strategy] name", hint=hint)
    if getattr(strategy, "check_data", None):
        strategy.check_data(bundle)


def _evaluate(run, ev, model, tokenizer, label: str) -> dict:
    target = ev.Target(model, tokenizer, run.formatter, label, precision=run.precision)
    if run.world is not None and run.world.distributed:
        from .run.distributed import ShardedTarget

        target = ShardedTarget(target, run.world)  # each rank answers its share, all see every result
    return ev.evaluate_all(run, target)


class RunStopped(SftkitError):
    """Ctrl-C or SIGTERM stopped the run; it can be continued with ``--resume``."""

    exit_code = 130


def run(recipe_path, overrides=(), *, overwrite: bool = False, resume: bool = False, smoke: bool = False,
        output: str | Path | None = None, host=None, console: Callable[[str], None] | None = None,
        allow_data_change: bool = False) -> RunOutcome:
    """Train and evaluate a recipe into its run directory; returns a :class:`RunOutcome`.

    The run directory is locked for the whole run (another process gets a one-line refusal naming
    this one). Raises :class:`SftkitError` (one-line message) for user mistakes; :class:`GateError`
    after the run was written when an evaluation gate failed; :class:`RunStopped` on Ctrl-C.
    """
    held: dict = {}
    try:
        return _run(recipe_path, overrides, overwrite=overwrite, resume=resume, smoke=smoke, output=output,
                    host=host, console=console, allow_data_change=allow_data_change, held=held)
    except SftkitError:
        raise
    except Exception as exc:  # a full disk or read-only directory, whatever library hit it: one line
        from .errors import storage_error

        err = storage_error(exc, held["lock"].run_dir if "lock" in held else None)
        if err is None:
            raise
        raise err from None
    except KeyboardInterrupt:
        if "lock" not in held:
            raise RunStopped("stopped before training started") from None
        step = (held.get("extras") or {}).get("step", 0)
        again = ["sftkit", "run", str(recipe_path), *(f"--set {o}" for o in overrides),
                 *(["--smoke"] if smoke else []), *([f"--output {output}"] if output else []), "--resume"]
        raise RunStopped(f"stopped at step {step}; continue with `{' '.join(again)}`",
                         where=str(held["lock"].run_dir)) from None
    finally:
        if "lock" in held:
            held["lock"].release()


def _run(recipe_path, overrides, *, overwrite, resume, smoke, output, host, console, allow_data_change,
         held: dict) -> RunOutcome:
    from .api import RunContext
    from .core_schema import STRATEGY_COMMON
    from .plugins import call_hook, get_host
    from .recipe import component_options, load_recipe, recipe_hash
    from .run import distributed
    from .strategies import lockfile, rundir

    world = distributed.world_from_env()
    main = world.is_main
    say = (console if main else None) or (lambda msg: None)
    started = time.time()
    host = host or get_host()
    recipe = load_recipe(recipe_path, list(overrides), host=host)
    distributed.start(world, recipe.data.get("distributed"))
    data = apply_smoke(recipe.data, host.registry) if smoke else copy.deepcopy(recipe.data)
    name = recipe.name
    strategy_table = data["strategy"]
    comp = host.registry.get("strategies", strategy_table["name"])
    strategy = comp.create(component_options(strategy_table, STRATEGY_COMMON))

    run_dir = run_dir_for(data, output)
    digest = recipe_hash({"recipe": data, "smoke": smoke})
    existed = run_dir.exists()
    if main:  # the main process holds the run directory's lock for all ranks
        held["lock"] = rundir.lock(run_dir, command=f"sftkit run {recipe_path}")
        # refuse a run directory that must not be used before loading anything heavy
        rundir.claim(run_dir, recipe_name=name, recipe_hash=digest, overwrite=overwrite, resume=resume, dry_run=True)
    limits = {k: v for k, v in (data.get("plan") or {}).items() if v is not None}
    if limits and not smoke and not world.distributed:  # estimate first; refuse with the numbers before training
        from .plan import check_limits, make_plan

        say("planning: [plan] limits are set")
        check_limits(make_plan(recipe_path, overrides, host=host, console=say))

    from .data import load_data

    with distributed.main_first(world):  # the other ranks reuse the main process's Arrow files
        bundle = _shrink(load_data(data, recipe.base_dir, host=host), smoke)
    check_fit(strategy, comp, bundle)
    if data.get("eval"):
        from .reporting.accounting import check_inputs

        check_inputs(data, bundle)
    formatter = None
    if getattr(strategy, "uses_formatter", True):
        from .templates import make_formatter

        formatter = make_formatter(data, host=host)
    ctx = RunContext(recipe=data, recipe_path=Path(recipe_path), base_dir=recipe.base_dir, run_dir=run_dir,
                     host=host, data=bundle, formatter=formatter, smoke=smoke, resume=resume, console=say,
                     world=world)
    held["extras"] = ctx.extras  # the trainer's callbacks record the step reached there
    from .modeling.precision import for_run

    say(for_run(ctx).describe())  # decided once: training and both evaluations use it
    if hasattr(strategy, "load"):
        from transformers import set_seed

        set_seed(ctx.seed)  # before any weight is created: a new head (classification) is the same every run
    with distributed.main_first(world):  # a model converted once (GGUF cache), then loaded by the others
        model, tokenizer = strategy.load(ctx) if hasattr(strategy, "load") else (None, None)

    claimed = "resumed" if resume else "new"
    if main:  # only the main process owns the run directory
        lock = lockfile.build_lock(data, recipe.base_dir, recipe_hash=recipe_hash(data), host=host,
                                   files=(bundle.stats or {}).get("files"))
        lock["smoke"] = smoke
        if resume:
            changed = lockfile.changed_data(lockfile.read_lock(run_dir), lock)
            if changed and not allow_data_change:
                raise SftkitError(f"the data changed since this run started ({', '.join(changed[:3])}"
                                  f"{', …' if len(changed) > 3 else ''}), so it cannot be resumed as the same run",
                                  where=str(run_dir), hint="restore the data, pass --allow-data-change to continue "
                                  "with the new data anyway, or --overwrite to start again")
            if changed:
                say(f"warning: continuing with changed data: {', '.join(changed)}")
                lock["data_changed_on_resume"] = changed
        claimed = rundir.claim(run_dir, recipe_name=name, recipe_hash=digest, overwrite=overwrite, resume=resume)
        rundir.unmark_complete(run_dir)
        say(f"run directory: {run_dir} ({claimed})" + (f", {world.size} processes" if world.distributed else ""))
        write_recipe(run_dir, data, recipe.secrets)
        lockfile.write_lock(run_dir, lock)
    distributed.barrier(world)

    try:
        plugin_errors = call_hook(host, "sftkit_run_start", say, run=ctx) if main else []
        from . import evaluation

        ev = evaluation if data.get("eval") else None
        base_results = {}
        if ev is not None and model is not None:
            say("evaluating the base model")
            base_results = _evaluate(ctx, ev, model, tokenizer, "base")
        say(f"training ({comp.name})")
        result = strategy.train(ctx)
    except SftkitError:
        # bad input found before the first checkpoint: leave no half-made run directory behind
        from .strategies.trainer import last_checkpoint

        if main and claimed != "resumed" and last_checkpoint(run_dir) is None:
            rundir.discard(run_dir, remove_dir=not existed)
        raise

    diverged = _divergence(ctx, result)
    if diverged:
        ev = None  # evaluating a NaN model is meaningless: write what happened and stop without COMPLETE

    from .reporting.accounting import EvaluationFailed, evaluation_errors, row_accounting

    rows, failures = [], []
    if ev is not None and ctx.extras.get("model") is not None:
        say("evaluating the tuned model")
        tuned_results = _evaluate(ctx, ev, ctx.extras["model"], ctx.tokenizer, "tuned")
        rows = ev.compare(ctx, base_results, tuned_results)
        failures = list(ev.gate_failures(rows))

    data_stats = {**(bundle.stats or {}), "tokens": ctx.extras.get("tokenized_stats")}
    for key in ("tone", "classes", "replay"):
        if key in ctx.extras:
            data_stats[key] = ctx.extras[key]
    metrics = {
        "recipe": name,
        "strategy": comp.name,
        "smoke": smoke,
        "train": {**result.metrics, "parameters": ctx.extras.get("parameters")},
        "precision": ctx.precision.as_dict(),
        "data": {"kind": bundle.kind,
                 **{k: v for k, v in data_stats.items() if k in ("duplicates", "tone", "classes", "replay")},
                 **row_accounting(bundle.stats, ctx.extras.get("tokenized_stats"), train_rows=len(bundle.train),
                                  eval_rows=len(bundle.eval) if bundle.eval is not None else 0)},
        "eval": rows,
        # a --smoke run trains a tiny random model: gates are reported, never enforced
        "gates": {"passed": not failures, "failures": failures, "enforced": not smoke},
        "distributed": {**distributed.global_batch(data.get("training", {}), world.size),
                        "strategy": distributed.strategy_of(data.get("distributed")) if world.distributed else None},
    }
    if not main:  # the main process writes the run directory; the others are done
        return RunOutcome(run_dir=run_dir, metrics=metrics, claimed=claimed, elapsed=time.time() - started,
                          gate_failures=failures)
    if plugin_errors:
        metrics["plugin_errors"] = plugin_errors
    if ctx.plugin_metrics:
        metrics["plugins"] = copy.deepcopy(ctx.plugin_metrics)
    _write_json(run_dir / "metrics.json", metrics)
    _write_json(run_dir / "data_stats.json", data_stats)
    if data.get("output", {}).get("report", True):
        _report(run_dir, ctx, say)
    if diverged:
        raise SftkitError(diverged, where=str(run_dir),
                          hint="lower training.learning_rate (e.g. /10), keep max_grad_norm = 1.0, and run "
                               "again with --overwrite")
    end_errors = call_hook(host, "sftkit_run_end", say, run=ctx, metrics=metrics)
    if end_errors or ctx.plugin_metrics != metrics.get("plugins", {}):
        if end_errors:  # recorded, so a hook that failed is never silent; the run still completes
            metrics["plugin_errors"] = plugin_errors + end_errors
        if ctx.plugin_metrics:
            metrics["plugins"] = copy.deepcopy(ctx.plugin_metrics)
        _write_json(run_dir / "metrics.json", metrics)
    elapsed = time.time() - started
    rundir.mark_complete(run_dir, {"recipe": name, "elapsed_s": round(elapsed, 2)})
    outcome = RunOutcome(run_dir=run_dir, metrics=metrics, claimed=claimed, elapsed=elapsed, gate_failures=failures)
    if failures and smoke:
        say(f"note: {len(failures)} evaluation gate(s) would fail; gates are not enforced with --smoke "
            "(tiny random model)")
    errors = evaluation_errors(rows)
    if errors:  # an evaluator that errored leaves the verdict incomplete, smoke run or not
        err = EvaluationFailed(f"{len(errors)} evaluation(s) failed: " + "; ".join(errors),
                               where=str(run_dir / "metrics.json"),
                               hint="see the report; fix the cause and re-run, or `sftkit eval` to evaluate again")
        err.outcome = outcome
        raise err
    if failures and not smoke:
        err = GateError(f"{len(failures)} evaluation gate(s) failed: " + "; ".join(failures),
                        where=str(run_dir / "metrics.json"))
        err.outcome = outcome
        raise err
    return outcome


def _divergence(ctx, result) -> str | None:
    """Why the trained model is unusable (NaN/inf weights or loss), recorded in the train metrics; or None."""
    import math

    model = ctx.extras.get("model")
    bad = []
    if model is not None and hasattr(model, "state_dict"):
        from .strategies.trainer import nonfinite_tensors

        bad = nonfinite_tensors(model)
    losses = [e.get("step") for e in (result.log_history or []) if isinstance(e, dict)
              and isinstance(e.get("loss"), (int, float)) and not math.isfinite(e["loss"])]
    if not bad and not losses:
        return None
    result.metrics["nonfinite_tensors"] = bad
    parts = [f"{len(bad)} weight tensor(s) hold NaN/inf"] if bad else []
    if losses:
        parts.append(f"the loss became NaN/inf at step {losses[0]}")
    return "training diverged: " + " and ".join(parts) + "; the run is not marked finished"


def _report(run_dir: Path, ctx, say) -> None:
    from .reporting import write_report

    try:
        write_report(run_dir, run=ctx)
    except SftkitError:
        raise
    except Exception as exc:  # a broken report must not lose a finished training run
        say(f"warning: the report could not be written: {type(exc).__name__}: {exc}")


def _num(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def summary_lines(outcome: RunOutcome) -> list[str]:
    """A short human summary of a finished run."""
    t = outcome.metrics.get("train", {})
    lines = [f"finished {outcome.metrics.get('recipe')} ({outcome.metrics.get('strategy')}) in {outcome.elapsed:.1f}s"]
    parts = [f"steps {t.get('steps')}"]
    if t.get("train_runtime") is not None:
        parts.append(f"train time {float(t['train_runtime']):.1f}s")
    if t.get("trained_tokens_per_second") is not None:
        parts.append(f"trained tokens/s {float(t['trained_tokens_per_second']):,.0f}")
    if t.get("padding_fraction") is not None:
        parts.append(f"padding {100 * float(t['padding_fraction']):.1f}%")
    if t.get("final_loss") is not None:
        parts.append(f"final loss {float(t['final_loss']):.4f}")
    if t.get("eval_loss") is not None:
        parts.append(f"eval loss {float(t['eval_loss']):.4f}")
    if t.get("eval_accuracy") is not None:
        parts.append(f"eval accuracy {float(t['eval_accuracy']):.3f}")
    lines.append(", ".join(parts))
    from .evaluation.verdict import summary_line

    lines.extend(summary_line(row) for row in outcome.metrics.get("eval", []))
    lines.append(f"saved: {t.get('model_dir') or outcome.run_dir / 'model'} ({t.get('saved', 'model')})")
    lines.append(f"run directory: {outcome.run_dir}")
    return lines
