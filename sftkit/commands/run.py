"""``sftkit run RECIPE``: train (and evaluate) a recipe into a run directory."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from sftkit.errors import SftkitError


@click.command("run")
@click.argument("recipe")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a recipe key, e.g. --set training.max_steps=2 (value parsed as TOML).")
@click.option("--overwrite", is_flag=True, help="Replace a finished or unfinished run in the output directory.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its last checkpoint.")
@click.option("--smoke", is_flag=True,
              help="Check the whole path in seconds: 2 steps on a tiny random model of the same architecture.")
@click.option("--output", "-o", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Run directory (default: [output] dir of the recipe).")
@click.option("--allow-data-change", is_flag=True,
              help="With --resume: continue although the data files changed since the run started.")
def run(recipe, overrides, overwrite, resume, smoke, output, allow_data_change):
    """Train (and evaluate) RECIPE (a TOML file, or the name of a shipped recipe) into a run directory.

    The directory gets the model (or adapter) with its tokenizer and chat template, the resolved
    recipe, metrics.json, train_log.jsonl, sftkit.lock.json, a report, and COMPLETE when done.
    Exit codes: 0 done, 1 invalid input or failed run, 2 usage error, 3 an evaluation gate failed,
    4 an evaluator failed, 130 stopped by Ctrl-C or SIGTERM (continue with --resume).
    """
    if overwrite and resume:
        _fail(SftkitError("--overwrite and --resume exclude each other", hint="pick one", exit_code=2))
    from sftkit.pipeline import run as run_pipeline, summary_lines

    echo = lambda msg: click.echo(msg, err=True)  # noqa: E731
    _stop_on_sigterm()
    try:
        recipe = resolve_recipe(recipe)
        try:
            outcome = run_pipeline(recipe, overrides, overwrite=overwrite, resume=resume, smoke=smoke,
                                   output=output, console=echo, allow_data_change=allow_data_change)
        except Exception as exc:
            raise storage_error(exc) or exc
    except SftkitError as err:
        if getattr(err, "outcome", None) is not None:
            for line in summary_lines(err.outcome):
                click.echo(line)
        _fail(err)
    for line in summary_lines(outcome):
        click.echo(line)


def resolve_recipe(text: str) -> Path:
    """A recipe file path, or the file of a shipped recipe registered under that name."""
    path = Path(text)
    if path.is_file():
        return path
    from sftkit.errors import UsageError, did_you_mean
    from sftkit.paths import resolve_path
    from sftkit.plugins import get_host

    registry = get_host().registry
    comp = registry.find("recipes", text)
    if comp is not None and isinstance(comp.factory, str):
        return resolve_path(comp.factory, None)
    names = registry.names("recipes")
    hint = did_you_mean(text, names) or f"shipped recipes: {', '.join(names) or 'none'}"
    raise UsageError(f"recipe file not found: {text}", hint=hint)


def _stop_on_sigterm() -> None:
    """SIGTERM stops a run like Ctrl-C: cleanly, with the step reached and how to continue."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        def stop(signum, frame):
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, stop)


STORAGE_ERRNOS = {28: "no space left on the device", 30: "the file system is read-only", 13: "permission denied",
                  122: "the disk quota is exceeded", 27: "a file is too large for the file system"}


def storage_error(exc: BaseException) -> SftkitError | None:
    """A one-line error for a failed write (full disk, read-only or forbidden directory), also when
    a library reports it in its own exception type (safetensors), or None for anything else."""
    import re

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        code = getattr(exc, "errno", None)
        if code is None:  # safetensors: "Error while serializing: IoError(Os { code: 28, ... })"
            m = re.search(r"\bOs \{ code: (\d+)", str(exc))
            code = int(m.group(1)) if m else None
        if code in STORAGE_ERRNOS:
            where = getattr(exc, "filename", None)
            return SftkitError(f"cannot write or read a file: {STORAGE_ERRNOS[code]}",
                               where=str(where) if where else None,
                               hint="free space or choose a writable --output; the run was not marked "
                                    "finished (continue it later with --resume)")
        exc = exc.__cause__ or exc.__context__
    return None


def _fail(err: SftkitError) -> None:
    click.echo(f"error: {err}", err=True)
    sys.exit(err.exit_code)
