"""The run: named stages from a recipe to a finished run directory (:mod:`.stages`), used by
``sftkit run`` (:func:`run`), ``sftkit eval`` (:func:`evaluate`) and ``sftkit plan`` (:func:`plan`), with the run directory
(:mod:`.rundir`), the lock file (:mod:`.lockfile`), the smoke policy (:mod:`.smoke`) and what a
run writes (:mod:`.outputs`), processes and launching (:mod:`.distributed`, :mod:`.launch`).
Nothing heavy is imported here."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from sftkit.errors import SftkitError

from . import stages
from .outputs import summary_lines
from .stages import RunOutcome, RunState, RunStopped


def run(recipe_path, overrides=(), *, overwrite: bool = False, resume: bool = False, smoke: bool = False,
        output: str | Path | None = None, host=None, console: Callable[[str], None] | None = None,
        allow_data_change: bool = False) -> RunOutcome:
    """Train and evaluate a recipe into its run directory; returns a :class:`RunOutcome`.

    The run directory is locked for the whole run. Raises :class:`SftkitError` (one-line message)
    for user mistakes; :class:`GateError` after the run was written when an evaluation gate failed;
    :class:`RunStopped` on Ctrl-C or SIGTERM.
    """
    state = None
    try:
        state = stages.prepare(recipe_path, overrides, host=host, smoke=smoke, resume=resume, overwrite=overwrite,
                               output=output, console=console)
        stages.check_run_dir(state)
        stages.load_data(state)
        stages.check_plan_limits(state)
        stages.load_model(state)
        stages.open_run_dir(state, allow_data_change=allow_data_change)
        try:
            stages.evaluate_base(state)
            stages.train(state)
        except SftkitError:
            stages.discard_unstarted(state)
            raise
        stages.evaluate_tuned(state)
        outcome = stages.finish(state)
        stages.end_processes(state)
        return outcome
    except SftkitError:
        raise
    except Exception as exc:  # a full disk or read-only directory, whatever library hit it: one line
        from sftkit.errors import storage_error

        err = storage_error(exc, state.run_dir if state is not None and state.lock is not None else None)
        if err is None:
            raise
        raise err from None
    except KeyboardInterrupt:
        raise stages.stopped(state, recipe_path, overrides, output) from None
    finally:
        stages.release(state)


def evaluate(recipe_path, model_ref: str, *, base: bool = False, output: str | Path | None = None, overrides=(),
             host=None, console: Callable[[str], None] | None = None) -> RunOutcome:
    """``sftkit eval``: the run's stages with training switched off; the evaluated model is
    ``model_ref`` (a saved directory, hub id or GGUF file), the base model the recipe's ``[model]``
    when ``base``. Writes metrics.json and the report into ``output``; raises GateError after
    writing when a gate failed."""
    try:
        state = stages.prepare(recipe_path, overrides, host=host, output=output, console=console, mode="eval")
        state.model_ref, state.with_base = str(model_ref), base
        stages.open_eval_dir(state)
        stages.load_data(state, required=False)
        stages.load_model(state)
        stages.evaluate_base(state)
        stages.use_given_model(state)
        stages.evaluate_tuned(state)
        return stages.finish(state)
    except SftkitError:
        raise
    except Exception as exc:  # an output directory that cannot be written (read-only, full): one line
        from sftkit.errors import storage_error

        err = storage_error(exc, hint="pass --output DIR naming a writable directory (or free space there)")
        if err is None:
            raise
        raise err from None


def plan(recipe_path, overrides=(), *, host=None, console: Callable[[str], None] | None = None,
         steps: int | None = None, processes: int = 1) -> dict:
    """``sftkit plan``: the run's first stages (the recipe resolved once, its strategy, data and
    formatter; no run directory), then the estimate from what they produced
    (:func:`sftkit.plan.plan_of`). ``processes``: the processes the run will use."""
    from sftkit.plan import plan_of

    state = stages.prepare(recipe_path, overrides, host=host, console=console, mode="plan")
    stages.load_data(state)
    return plan_of(state, console=console, steps=steps, processes=processes)


__all__ = ["RunOutcome", "RunState", "RunStopped", "run", "evaluate", "plan", "summary_lines"]
