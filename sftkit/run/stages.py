"""The named stages of a run, in order::

    prepare ─▶ load_data ─▶ load_model ─▶ open_run_dir ─▶ evaluate_base ─▶ train ─▶ evaluate_tuned ─▶ finish

Each stage takes the :class:`RunState` and records what it produced there. ``sftkit run`` runs
them all (:func:`sftkit.run.run`); ``sftkit eval`` runs the same stages with training switched
off and the evaluated model taken from ``--model`` (:func:`sftkit.run.evaluate`).

The run directory is checked before anything heavy is loaded and claimed only once the data and
the model loaded; ``COMPLETE`` is written last, so a directory without it is an unfinished run
that ``--resume`` continues from its last checkpoint.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from sftkit.errors import GateError, SftkitError
from sftkit.strategies.selection import accepted_kinds, check_fit, keeps_fields, make_strategy

from . import outputs
from . import smoke as smoke_policy

if TYPE_CHECKING:
    from sftkit.api import RunContext
    from sftkit.config import Config
    from sftkit.recipe import ResolvedRecipe


@dataclass
class RunOutcome:
    """What a run returns: the run directory and the metrics written to ``metrics.json``."""

    run_dir: Path
    metrics: dict
    claimed: str  # "new" | "overwritten" | "resumed" | "eval"
    elapsed: float = 0.0
    gate_failures: list = field(default_factory=list)
    mode: str = "run"


@dataclass
class RunState:
    """One run as it goes through the stages: the recipe, the context handed to components, and
    what each stage produced."""

    recipe: ResolvedRecipe  # resolved after the smoke policy; its slices are ``config``
    run_dir: Path
    ctx: RunContext
    say: Callable[[str], None]
    mode: str = "run"  # "run" | "eval" | "preview" / "plan" (prepare and load_data only)
    overwrite: bool = False
    overrides: tuple = ()  # the --set values (a stopped run's resume command repeats them)
    digest: str = ""
    started: float = field(default_factory=time.time)
    strategy: Any = None
    component: Any = None
    data_problem: str | None = None
    base_model: Any = None
    base_tokenizer: Any = None
    base_results: dict = field(default_factory=dict)
    base_source: str | None = None  # where the base results came from: "evaluated", "run directory", "cache"
    base_key: str | None = None  # the base results' key in the user cache (run/base_cache.py), when cached
    baselines: list | None = None  # [[baseline]] tables, ready to apply (evaluation.baselines.Baseline)
    baseline_results: dict = field(default_factory=dict)  # {baseline label: {eval label: EvalResult}}
    result: Any = None  # sftkit.api.TrainResult
    tuned_model: Any = None
    tuned_tokenizer: Any = None
    tuned_formatter: Any = None
    tuned_results: dict = field(default_factory=dict)
    claimed: str = "new"
    plugin_errors: list = field(default_factory=list)  # lifecycle hooks that raised, named
    existed: bool = False
    lock: Any = None  # rundir.RunLock, held from check_run_dir to the end of the run
    diverged: str | None = None  # why the trained model is unusable (NaN/inf), or None
    model_ref: str | None = None  # sftkit eval: the model to evaluate (training switched off)
    tuned_label: str = "tuned"  # what the evaluated model is called (sftkit eval: its reference)
    with_base: bool = True  # sftkit eval: also evaluate the recipe's [model]

    @property
    def host(self):
        return self.ctx.host

    @property
    def config(self) -> Config:
        """The resolved recipe's typed slices, after the smoke policy."""
        return self.recipe.config

    @property
    def main(self) -> bool:
        """This process writes the run directory (always, unless the run has several processes)."""
        world = self.ctx.world
        return world is None or world.is_main

    @property
    def evaluates(self) -> bool:
        return bool(self.config.eval)


def run_dir_for(config: Config, output: str | Path | None, *, smoke: bool = False) -> Path:
    """The run directory: ``--output``, or ``[output] dir`` with ``{recipe.name}`` substituted (the
    smoke policy's own directory beside it for ``--smoke``); refused in one line when the file
    system cannot hold it."""
    from .rundir import path_for, usable

    if output:
        return usable(Path(str(output)).expanduser())
    return usable(path_for(config.output.dir, config.name, smoke=smoke))


# --------------------------------------------------------------------------- prepare

def prepare(recipe_path, overrides=(), *, host=None, smoke: bool = False, resume: bool = False,
            overwrite: bool = False, output=None, console=None, mode: str = "run") -> RunState:
    """Read and check the recipe, apply the smoke policy, create the strategy, and check (without
    writing) that the run directory may be used."""
    from sftkit.api import RunContext
    from sftkit.plugins import get_host
    from sftkit.recipe import load_recipe, recipe_hash

    from . import distributed

    world = distributed.world_from_env()
    say = (console if world.is_main else None) or (lambda msg: None)
    host = host or get_host()
    recipe = load_recipe(recipe_path, list(overrides), host=host, policy=smoke_policy.recipe if smoke else None)
    config = recipe.config
    if mode == "run":
        distributed.start(world, config.distributed)
    if mode == "eval":
        run_dir = Path(output) if output else Path(str(run_dir_for(config, None)) + "-eval")
    else:
        run_dir = run_dir_for(config, output, smoke=smoke)
    from sftkit.models import load_base

    ctx = RunContext(config=config, recipe_path=Path(recipe_path), base_dir=recipe.base_dir, run_dir=run_dir,
                     host=host, smoke=smoke, resume=resume, console=say, world=world, load_model=load_base)
    state = RunState(recipe=recipe, run_dir=run_dir, ctx=ctx, say=say, mode=mode, overwrite=overwrite,
                     overrides=tuple(overrides))
    if mode == "eval":
        return state
    state.strategy, state.component = make_strategy(config.strategy, host)
    state.digest = recipe_hash({"recipe": recipe.serialized(), "smoke": smoke})
    return state


def check_run_dir(state: RunState) -> None:
    """Lock the run directory for the whole run (another process gets a one-line refusal naming this
    one) and refuse, before anything heavy is loaded, a directory that must not be used."""
    from . import rundir

    state.existed = state.run_dir.exists()
    if not state.main:  # the main process holds the run directory's lock for all ranks
        return
    state.lock = rundir.lock(state.run_dir, command=f"sftkit run {state.ctx.recipe_path}")
    rundir.claim(state.run_dir, recipe_name=state.recipe.name, recipe_hash=state.digest, overwrite=state.overwrite,
                 resume=state.ctx.resume, dry_run=True)


def check_plan_limits(state: RunState) -> None:
    """``[plan] max_hours`` / ``max_memory_gb``: estimate the run from its loaded data (not in a smoke
    run or across processes) and refuse with the numbers before any training."""
    limits = state.config.plan
    world = state.ctx.world
    if limits.max_hours is None and limits.max_memory_gb is None:
        return
    if state.ctx.smoke or (world is not None and world.distributed):
        return
    from sftkit.plan import check_limits, plan_of

    state.say("planning: [plan] limits are set")
    check_limits(plan_of(state, console=state.say))


def end_processes(state: RunState) -> None:
    """A finished run leaves its process group (every rank, after the main one wrote COMPLETE)."""
    from . import distributed

    if state.ctx.world is not None:
        distributed.stop(state.ctx.world)


def release(state: RunState | None) -> None:
    """Release the run directory's lock (end of the run, failed or not)."""
    if state is not None and state.lock is not None:
        state.lock.release()


class RunStopped(SftkitError):
    """Ctrl-C or SIGTERM stopped the run; it can be continued with ``--resume``."""

    exit_code = 130


def stopped(state: RunState | None, recipe_path, overrides=(), output=None) -> RunStopped:
    """The one-line error for a run stopped by Ctrl-C or SIGTERM: the step reached and how to continue."""
    if state is None or (state.lock is None and state.main):
        return RunStopped("stopped before training started")
    step = state.ctx.step
    again = ["sftkit", "run", str(recipe_path), *(f"--set {o}" for o in overrides),
             *(["--smoke"] if state.ctx.smoke else []), *([f"--output {output}"] if output else []), "--resume"]
    return RunStopped(f"stopped at step {step}; continue with `{' '.join(again)}`", where=str(state.run_dir))


# --------------------------------------------------------------------------- load data

def load_data(state: RunState, *, required: bool = True) -> None:
    """The ``[[data]]`` entries as one DataBundle (cut by the smoke policy), checked against the
    strategy, and the ``[template]`` formatter when the strategy uses one. ``required=False``
    (``sftkit eval``): data that cannot be loaded is a warning; evaluators that need it report why."""
    from sftkit.data.loader import load_entries

    ctx = state.ctx
    from .distributed import World, main_first

    try:
        with main_first(ctx.world or World()):  # the other ranks reuse the main process's Arrow files
            bundle = load_entries(state.config.data, state.config.dataset, state.recipe.base_dir,
                                  seed=state.config.seed, host=state.host, require_train=required,
                                  accepts=accepted_kinds(state.component, state.strategy),
                                  fields=keeps_fields(state.component))
    except SftkitError as err:
        if required:
            raise
        state.data_problem = str(err)
        state.say(f"warning: the recipe's data could not be loaded ({err}); "
                  "evaluators that need the eval split will fail")
        return
    ctx.data = smoke_policy.rows(bundle) if ctx.smoke else bundle
    if state.mode in ("run", "eval"):  # what only training and evaluation need
        prepare_baselines(state)
    if state.strategy is not None:
        if state.mode != "preview":
            check_fit(state.strategy, state.component, ctx.data)
        if state.evaluates and state.mode in ("run", "eval"):
            from sftkit.reporting.accounting import check_inputs

            check_inputs(state.config.dataset, ctx.data)
        if getattr(state.strategy, "uses_formatter", True):
            from sftkit.templates import make_formatter

            ctx.formatter = make_formatter(state.config.template, host=state.host)


def prepare_baselines(state: RunState) -> None:
    """The ``[[baseline]]`` tables with their few-shot examples drawn from the training rows (a
    baseline that cannot be built is an error here, before any model is loaded)."""
    if state.baselines is not None or not state.evaluates or not state.config.baseline:
        return
    from sftkit.evaluation.baselines import build

    state.baselines = build(state.config.baseline, getattr(state.ctx.data, "train", None), seed=state.ctx.seed)


# --------------------------------------------------------------------------- load model

def load_model(state: RunState) -> None:
    """The base model: the strategy's ``load`` (the contract's default for strategies without one)."""
    from sftkit.modeling.precision import for_run

    from . import devices

    device = devices.setup(state.ctx)
    state.say(for_run(state.ctx, device).describe())  # decided once: training and both evaluations use it
    if state.mode == "eval":
        _load_eval_base(state)
        return
    from sftkit.api import Strategy

    load = getattr(state.strategy, "load", None)
    if not callable(load):
        load = Strategy.load.__get__(state.strategy)
    from transformers import set_seed

    from .distributed import World, main_first

    set_seed(state.ctx.seed)  # before any weight is created: a new head (classification) is the same every run
    world = state.ctx.world or World()
    with main_first(world):  # a model converted once (GGUF cache), then loaded by the others
        loaded = load(state.ctx)
    model, tokenizer = loaded if loaded is not None else (None, None)
    state.base_model = _placed(state, model)  # DDP: each rank's copy on its own GPU, the base evaluation runs there
    state.base_tokenizer = tokenizer
    if tokenizer is not None:
        state.ctx.tokenizer = tokenizer


def _formatter(state: RunState, tokenizer, model):
    from sftkit.templates import make_formatter

    formatter = make_formatter(state.config.template, host=state.host)
    formatter.setup(tokenizer, model)
    return formatter


def _placed(state: RunState, model):
    """``model`` on this process's device (its own GPU in a multi-process DDP run). Under FSDP or
    DeepSpeed the full weights stay where they were loaded: a whole copy per GPU is what sharding
    avoids (the model may not fit one GPU)."""
    from . import devices
    from .distributed import strategy_of

    world = state.ctx.world
    several = world is not None and world.distributed
    if several and strategy_of(state.config.distributed) != "ddp":
        return model
    return devices.place(model, devices.for_rank(state.ctx.device or "cpu", world.local_rank if several else 0, several))


def _load_eval_base(state: RunState) -> None:
    from . import reference

    if not state.with_base or not state.evaluates:
        return
    is_cls, labels = reference.saved_kind(state.model_ref)
    if is_cls and not labels:
        state.say("note: the evaluated classifier names no labels, so the base model is not evaluated")
        return
    from sftkit.modeling.qlora import run_load_arguments

    model, tokenizer = reference.load_base(state.config.model.as_dict(), state.recipe.base_dir, labels=labels,
                                           is_classifier=is_cls, seed=state.ctx.seed, console=state.say,
                                           quantization=run_load_arguments(state.ctx, classifier=is_cls))
    state.base_model, state.base_tokenizer = _placed(state, model), tokenizer
    state.ctx.formatter = None if is_cls else _formatter(state, tokenizer, model)
    state.ctx.tokenizer = tokenizer


def use_given_model(state: RunState) -> None:
    """``sftkit eval``'s stand-in for :func:`train`: the base model is freed (one model in memory at a
    time) and the model named by ``--model`` becomes the one evaluated."""
    import gc

    from . import reference

    state.base_model = state.base_tokenizer = None
    gc.collect()
    state.say(f"loading {state.model_ref}")
    model, tokenizer = reference.load_reference(state.model_ref, state.config.model.as_dict(), console=state.say)
    is_cls = reference.saved_kind(state.model_ref)[0] or "SequenceClassification" in type(model).__name__
    state.tuned_model, state.tuned_tokenizer = _placed(state, model), tokenizer
    state.tuned_formatter = None if is_cls else _formatter(state, tokenizer, model)
    state.ctx.formatter, state.ctx.tokenizer = state.tuned_formatter, tokenizer
    state.tuned_label = str(state.model_ref)  # not "tuned": nothing was tuned here


# --------------------------------------------------------------------------- open the run directory

def open_eval_dir(state: RunState) -> None:
    """``sftkit eval``'s output directory: never a run directory holding a model."""
    out = state.run_dir
    ref = Path(str(state.model_ref)).expanduser()
    if (out / "model").exists() or (ref.exists() and out.resolve() == ref.resolve()):
        raise SftkitError(f"{out} holds a trained model (a run directory); evaluation results would overwrite its "
                          "metrics and report", hint="pass --output DIR to write the evaluation elsewhere")
    from . import rundir

    if ref.is_dir() and rundir.state(ref.parent) == "unfinished":
        state.say(f"warning: {ref.parent} is an unfinished run (no COMPLETE file): its model may be partial "
                  "or from before the last step; continue it with `sftkit run RECIPE --output DIR --resume`")
    out.mkdir(parents=True, exist_ok=True)
    state.claimed = "eval"
    outputs.write_recipe(out, state.recipe.serialized(), state.recipe.secrets)


def open_run_dir(state: RunState, *, allow_data_change: bool = False) -> None:
    """Claim the run directory (the check in :func:`check_run_dir` passed), write the resolved recipe
    and the lock file, and call ``sftkit_run_start``. On ``--resume`` the data must not have changed
    (unless ``allow_data_change``). With several processes only the main one writes; all wait."""
    from . import distributed

    state.claimed = "resumed" if state.ctx.resume else "new"
    if state.main:  # only the main process owns the run directory
        _open_run_dir(state, allow_data_change)
    world = state.ctx.world
    if world is not None:
        distributed.barrier(world)
    if state.main:  # isolated: a plugin that raises is named and the run goes on
        from sftkit.plugins import call_hook

        state.plugin_errors = call_hook(state.host, "sftkit_run_start", state.say, run=state.ctx)


def _open_run_dir(state: RunState, allow_data_change: bool) -> None:
    from sftkit.recipe import recipe_hash

    from . import lockfile, rundir

    bundle = state.ctx.data
    lock = lockfile.build_lock(state.config, state.recipe.base_dir, recipe_hash=recipe_hash(state.recipe.serialized()),
                               host=state.host, files=(bundle.stats or {}).get("files"))
    lock["smoke"] = state.ctx.smoke
    if state.ctx.resume:
        changed = lockfile.changed_data(lockfile.read_lock(state.run_dir), lock)
        if changed and not allow_data_change:
            raise SftkitError(f"the data changed since this run started ({', '.join(changed[:3])}"
                              f"{', …' if len(changed) > 3 else ''}), so it cannot be resumed as the same run",
                              where=str(state.run_dir), hint="restore the data, pass --allow-data-change to "
                              "continue with the new data anyway, or --overwrite to start again")
        if changed:
            state.say(f"warning: continuing with changed data: {', '.join(changed)}")
            lock["data_changed_on_resume"] = changed
    state.claimed = rundir.claim(state.run_dir, recipe_name=state.recipe.name, recipe_hash=state.digest,
                                 overwrite=state.overwrite, resume=state.ctx.resume)
    rundir.unmark_complete(state.run_dir)
    world = state.ctx.world
    state.say(f"run directory: {state.run_dir} ({state.claimed})"
              + (f", {world.size} processes" if world is not None and world.distributed else ""))
    outputs.write_recipe(state.run_dir, state.recipe.serialized(), state.recipe.secrets)
    lockfile.write_lock(state.run_dir, lock)


def discard_unstarted(state: RunState) -> None:
    """After a user error before the first checkpoint: leave no half-made run directory behind."""
    from sftkit.strategies.trainer import last_checkpoint

    from . import rundir

    if state.main and state.claimed != "resumed" and last_checkpoint(state.run_dir) is None:
        rundir.discard(state.run_dir, remove_dir=not state.existed)


# --------------------------------------------------------------------------- evaluate

def _target(state: RunState, model, tokenizer, formatter, label: str):
    from sftkit.evaluation import Target

    training = state.config.training
    target = Target(model, tokenizer, formatter, label, precision=state.ctx.precision,
                    batch_size=training.per_device_eval_batch_size,  # None: chosen for the device
                    row_length=training.max_length)  # the loss encodes eval rows as training does
    world = state.ctx.world
    if world is not None and world.distributed:
        from .distributed import ShardedTarget

        target = ShardedTarget(target, world)  # each rank answers its share, all see every result
    return target


BASE_EVAL = "base_eval.json"


def _base_eval_key(state: RunState) -> str:
    """What the base model's results depend on: model, template, [[eval]] tables, the data files'
    content, evaluation batch and length, smoke."""
    from sftkit.recipe import recipe_hash

    tables, training = state.recipe.serialized(), state.config.training
    files = (getattr(state.ctx.data, "stats", None) or {}).get("files")
    return recipe_hash({k: tables.get(k) for k in ("model", "template", "eval", "baseline", "data", "dataset", "recipe")}
                       | {"files": files, "smoke": state.ctx.smoke,
                          "batch": training.per_device_eval_batch_size, "max_length": training.max_length})


def _reuse_base(state: RunState, key: str) -> tuple[dict, dict] | None:
    import json

    from sftkit.api import EvalResult

    try:
        stored = json.loads((state.run_dir / BASE_EVAL).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if stored.get("key") != key:
        return None
    names = set(EvalResult.__dataclass_fields__)

    def results(by_label: dict) -> dict:
        return {label: EvalResult(**{k: v for k, v in r.items() if k in names}) for label, r in by_label.items()}

    return results(stored["results"]), {b: results(r) for b, r in (stored.get("baselines") or {}).items()}


def _store_base(state: RunState, key: str) -> None:
    from dataclasses import asdict

    from sftkit.evaluation import jsonable

    def results(by_label: dict) -> dict:
        return {label: jsonable(asdict(r)) for label, r in by_label.items()}

    outputs.write_json(state.run_dir / BASE_EVAL, {"key": key, "results": results(state.base_results),
                                                   "baselines": {b: results(r) for b, r in state.baseline_results.items()}})


def evaluate_base(state: RunState) -> None:
    """Every ``[[eval]]`` table on the base model (before training changes it), then once more per
    ``[[baseline]]`` (the base model prompted, :mod:`sftkit.evaluation.baselines`). The results are
    kept in the run directory; ``--resume`` reuses them when nothing they depend on changed."""
    if not state.evaluates:
        return
    if state.base_model is None:
        if state.mode == "run":
            state.say("note: the strategy loads no base model, so there is no before/after comparison")
        if state.config.baseline:
            state.say("note: without a base model the [[baseline]] tables are not evaluated")
        return
    key = _base_eval_key(state) if state.mode == "run" else None
    if key and state.ctx.resume:
        reused = _reuse_base(state, key)
        if reused is not None:
            state.say(f"reusing the base model's evaluation from {state.run_dir / BASE_EVAL}")
            state.base_results, state.baseline_results = reused
            state.base_source = "run directory"
            _stop_if_gates_cannot_be_judged(state)
            return
    from . import base_cache

    prepare_baselines(state)
    content_key = base_cache.key(state)
    cached = base_cache.load(content_key) if content_key else None
    if cached is not None:
        state.say(f"reusing the base model's evaluation from the cache ({base_cache.directory() / content_key}.json: "
                  "same base model, evaluators and eval items)")
        (state.base_results, state.baseline_results), state.base_source = cached, "cache"
    else:
        from sftkit.evaluation import evaluate_all
        from sftkit.evaluation.runner import evaluate_baselines

        state.say("evaluating the base model")
        target = _target(state, state.base_model, state.base_tokenizer, state.ctx.formatter, "base")
        state.base_results, state.base_source = evaluate_all(state.ctx, target), "evaluated"
        if state.baselines:
            state.say(f"evaluating the prompt-only baseline(s): {', '.join(b.label for b in state.baselines)}")
            state.baseline_results = evaluate_baselines(state.ctx, target, state.baselines)
        if content_key and state.main:
            base_cache.store(content_key, state.base_results, state.baseline_results,
                             about={"model": state.config.model.name})
    state.base_key = content_key
    if key and state.main:
        _store_base(state, key)
    _stop_if_gates_cannot_be_judged(state)


def _stop_if_gates_cannot_be_judged(state: RunState) -> None:
    """A gated evaluator that failed on the base model cannot judge the run: stop before training."""
    from sftkit.evaluation.runner import gated_base_errors
    from sftkit.reporting.accounting import EvaluationFailed

    errors = gated_base_errors(state.ctx, state.base_results) if state.mode == "run" else []
    if errors:
        raise EvaluationFailed(f"{'; '.join(errors)}: the gate cannot be judged, so training did not start",
                               where="[[eval]]", hint="fix the evaluator or its options (or remove its gate) and run again")


# --------------------------------------------------------------------------- train

def train(state: RunState) -> None:
    """``strategy.train``; the trained model is the result's, or else the one saved in ``model_dir``."""
    state.say(f"training ({state.component.name})")
    result = state.strategy.train(state.ctx)
    state.result = result
    state.tuned_model = _placed(state, getattr(result, "model", None))
    state.tuned_tokenizer = getattr(result, "tokenizer", None) or state.ctx.tokenizer
    state.tuned_formatter = state.ctx.formatter
    state.diverged = _divergence(state.tuned_model, result)
    if state.tuned_model is None and state.evaluates and not state.diverged:
        model_dir = Path(getattr(result, "model_dir", None) or state.ctx.model_dir)
        if (model_dir / "config.json").exists() or (model_dir / "adapter_config.json").exists():
            from sftkit.models import load_trained

            state.say(f"loading the trained model from {model_dir}")
            model, state.tuned_tokenizer = load_trained(model_dir)
            state.tuned_model = _placed(state, model)


def _divergence(model, result) -> str | None:
    """Why the trained model is unusable (NaN/inf weights or loss), recorded in the train metrics; or None."""
    import math

    bad = []
    if model is not None and hasattr(model, "state_dict"):
        from sftkit.strategies.trainer import nonfinite_tensors

        bad = nonfinite_tensors(model)
    losses = [e.get("step") for e in (getattr(result, "log_history", None) or []) if isinstance(e, dict)
              and isinstance(e.get("loss"), (int, float)) and not math.isfinite(e["loss"])]
    if not bad and not losses:
        return None
    result.metrics["nonfinite_tensors"] = bad
    parts = [f"{len(bad)} weight tensor(s) hold NaN/inf"] if bad else []
    if losses:
        parts.append(f"the loss became NaN/inf at step {losses[0]}")
    return "training diverged: " + " and ".join(parts) + "; the run is not marked finished"


def evaluate_tuned(state: RunState) -> None:
    """Every ``[[eval]]`` table on the trained (or given) model, compared with the base results.
    A run with ``[[eval]]`` tables and no model to evaluate is an error, never a pass."""
    if not state.evaluates or state.diverged:  # evaluating a NaN model is meaningless
        return
    if state.tuned_model is None:
        name = state.component.name if state.component is not None else "?"
        raise SftkitError(f"strategy {name!r} returned no trained model and saved none in {state.ctx.model_dir}, "
                          "so no [[eval]] table could run", where="[[eval]]",
                          hint="the strategy must return TrainResult(model=..., tokenizer=...) or save the model "
                               "into run.model_dir (docs/plugins.md, 'The Strategy contract')")
    from sftkit.evaluation import evaluate_all

    state.say("evaluating the tuned model" if state.mode == "run" else "evaluating the model")
    target = _target(state, state.tuned_model, state.tuned_tokenizer, state.tuned_formatter, state.tuned_label)
    state.tuned_results = evaluate_all(state.ctx, target)


# --------------------------------------------------------------------------- finish

def _data_summary(state: RunState) -> dict:
    from sftkit.reporting.accounting import row_accounting

    bundle = state.ctx.data
    stats = dict(getattr(bundle, "stats", None) or {})
    out = {"kind": getattr(bundle, "kind", None),
           **{k: stats[k] for k in ("duplicates",) if k in stats},
           **{k: v for k, v in state.ctx.data_stats.items() if k != "tokens"},
           **row_accounting(stats, state.ctx.data_stats.get("tokens"),
                            train_rows=len(bundle.train) if bundle is not None and bundle.train is not None else 0,
                            eval_rows=len(bundle.eval) if bundle is not None and bundle.eval is not None else 0)}
    if state.data_problem:
        out["error"] = state.data_problem
    return out


def finish(state: RunState) -> RunOutcome:
    """metrics.json, data_stats.json, the report, ``sftkit_run_end`` and (for a run) ``COMPLETE``;
    raises :class:`GateError` after writing when a gate failed (not enforced in a smoke run)."""
    from sftkit.evaluation import compare, gate_failures

    ctx, smoke = state.ctx, state.ctx.smoke
    rows, failures = [], []
    if state.evaluates:
        rows = compare(ctx, state.base_results, state.tuned_results, state.baseline_results)
        failures = list(gate_failures(rows))
    enforced = not smoke
    metrics = {"recipe": state.recipe.name,
               "strategy": state.config.strategy.name}
    if state.mode == "run":
        metrics.update(smoke=smoke, train=dict(state.result.metrics))
    else:
        metrics.update(model_dir=str(state.model_ref),
                       base_model=state.config.model.name if state.base_results else None,
                       labels={"base": "base", "tuned": state.tuned_label},  # the report's and summary's names
                       train={})
    if ctx.precision is not None:
        metrics["precision"] = ctx.precision.as_dict()
    if state.mode == "run":
        from . import distributed

        world = ctx.world or distributed.World()
        metrics["distributed"] = {**distributed.global_batch(state.config.training, world.size),
                                  "strategy": distributed.strategy_of(state.config.distributed)
                                  if world.distributed else None}
    if state.base_source is not None:  # evaluated now, or reused (from the run directory or the cache)
        metrics["base_eval"] = {"source": state.base_source,
                                **({"key": state.base_key} if state.base_key else {})}
    metrics.update(data=_data_summary(state), eval=rows,
                   gates={"passed": not failures, "failures": failures, **({"enforced": enforced}
                                                                         if state.mode == "run" else {})})
    if not state.main:  # the main process writes the run directory; the others are done
        return RunOutcome(run_dir=state.run_dir, metrics=metrics, claimed=state.claimed,
                          elapsed=time.time() - state.started, gate_failures=failures, mode=state.mode)
    data_stats = dict(getattr(ctx.data, "stats", None) or {})
    data_stats.update(ctx.data_stats)
    if state.plugin_errors:
        metrics["plugin_errors"] = list(state.plugin_errors)
    if ctx.plugin_metrics:  # plugins' own numbers, so `sftkit report` re-renders their sections the same
        metrics["plugins"] = copy.deepcopy(ctx.plugin_metrics)
    outputs.write_json(state.run_dir / "metrics.json", metrics)
    outputs.write_json(state.run_dir / "data_stats.json", data_stats)
    if state.mode == "eval":
        outputs.copy_train_log(state.model_ref, state.run_dir)
    if state.mode == "eval" or state.config.output.report:
        outputs.write_report(state.run_dir, ctx, state.say, host=state.host)
    elapsed = time.time() - state.started
    outcome = RunOutcome(run_dir=state.run_dir, metrics=metrics, claimed=state.claimed, elapsed=elapsed,
                         gate_failures=failures, mode=state.mode)
    if state.diverged:
        raise SftkitError(state.diverged, where=str(state.run_dir),
                          hint="lower training.learning_rate (e.g. /10), keep max_grad_norm = 1.0, and run "
                               "again with --overwrite")
    if state.mode == "run":
        from sftkit.plugins import call_hook

        from . import checkpoints, rundir

        end_errors = call_hook(state.host, "sftkit_run_end", state.say, run=ctx, metrics=metrics)
        if end_errors or ctx.plugin_metrics != metrics.get("plugins", {}):  # never lost, never silent
            if end_errors:
                metrics["plugin_errors"] = state.plugin_errors + end_errors
            if ctx.plugin_metrics:
                metrics["plugins"] = copy.deepcopy(ctx.plugin_metrics)
            outputs.write_json(state.run_dir / "metrics.json", metrics)
        checkpoints.clean(state.run_dir, keep=state.config.output.keep_checkpoints, say=state.say)
        from sftkit.reporting.model_card import write_run_card
        write_run_card(state.run_dir, state.say)  # model/README.md (the model card)
        rundir.mark_complete(state.run_dir, {"recipe": state.recipe.name, "elapsed_s": round(elapsed, 2)})
    if failures and not enforced:
        state.say(f"note: {len(failures)} evaluation gate(s) would fail; gates are not enforced with --smoke "
                  "(tiny random model)")
    from sftkit.reporting.accounting import EvaluationFailed, evaluation_errors

    errors = evaluation_errors(rows)
    if errors:  # an evaluator that errored leaves the verdict incomplete, smoke run or not
        err = EvaluationFailed(f"{len(errors)} evaluation(s) failed: " + "; ".join(errors),
                               where=str(state.run_dir / "metrics.json"),
                               hint="see the report; fix the cause and re-run, or `sftkit eval` to evaluate again")
        err.outcome, err.metrics = outcome, metrics
        raise err
    if failures and enforced:
        err = GateError(f"{len(failures)} evaluation gate(s) failed: " + "; ".join(failures),
                        where=str(state.run_dir / "metrics.json"))
        err.outcome = outcome
        err.metrics = metrics
        raise err
    return outcome

