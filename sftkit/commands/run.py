"""``sftkit run RECIPE``: train (and evaluate) a recipe into a run directory."""

from __future__ import annotations

import os
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
@click.option("--each-holdout", is_flag=True,
              help="Leave-one-cluster-out: one run per cluster of [dataset] holdout_clusters (held out alone), "
                   "then one table (each_holdout.md / .json in the output directory).")
@click.option("--allow-data-change", is_flag=True,
              help="With --resume: continue although the data files changed since the run started.")
@click.option("--quiet", "-q", is_flag=True, help="No progress or log lines on stderr (warnings and errors still); "
                                                  "the summary alone on stdout.")
@click.option("--nproc", type=int, default=1, show_default=True,
              help="Processes on this machine (one per GPU; on CPU, gloo). Uses [distributed] strategy.")
@click.option("--nnodes", type=int, default=1, show_default=True, help="Machines taking part (run the command on each).")
@click.option("--node-rank", type=int, default=0, show_default=True, help="This machine's number, 0 .. nnodes-1.")
@click.option("--master-addr", default=None, help="Address of machine 0 (several machines).")
@click.option("--master-port", type=int, default=None, help="Port on machine 0 for the rendezvous (default: a free one).")
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write a JUnit XML file: one test case per gate and per evaluator verdict.")
def run(recipe, overrides, overwrite, resume, smoke, output, each_holdout, allow_data_change, quiet, nproc, nnodes,
        node_rank, master_addr, master_port, junit):
    """Train (and evaluate) RECIPE (a TOML file, or the name of a shipped recipe) into a run directory.

    Progress and logs go to stderr, the summary alone to stdout (--quiet: warnings and errors only
    on stderr). The directory gets the model (or adapter) with its tokenizer and chat template, the
    resolved recipe, metrics.json, train_log.jsonl, sftkit.lock.json, a report, and COMPLETE when done.
    Exit codes: 0 done, 1 invalid input or failed run, 2 usage error, 3 an evaluation gate failed,
    4 an evaluator failed, 130 stopped by Ctrl-C or SIGTERM (continue with --resume).
    """
    if overwrite and resume:
        _fail(SftkitError("--overwrite and --resume exclude each other", hint="pick one", exit_code=2))
    from sftkit.run.distributed import world_from_env
    from sftkit.run.launch import LaunchOptions

    options = LaunchOptions(nproc=nproc, nnodes=nnodes, node_rank=node_rank, master_addr=master_addr,
                            master_port=master_port)
    world = world_from_env()
    if each_holdout and (options.needed or world.distributed):
        _fail(SftkitError("--each-holdout runs one process per run; it cannot be combined with --nproc / --nnodes",
                          hint="run each held-out cluster with --set dataset.holdout_clusters=[...] instead", exit_code=2))
    if each_holdout and junit is not None:
        _fail(SftkitError("--junit describes one run; --each-holdout makes one run per cluster", exit_code=2,
                          hint="write a JUnit file per run with --set dataset.holdout_clusters=[...] --junit FILE"))
    if options.needed and not world.distributed:
        _launch(options, recipe, overrides, overwrite, resume, smoke, output, allow_data_change, quiet, junit)
        return
    from sftkit.run import run as run_pipeline
    from sftkit.run import summary_lines

    echo = console(quiet) if world.is_main else (lambda msg: None)
    if not world.distributed:  # under a launcher, its agent stops the processes when one fails
        _stop_on_sigterm()
    if each_holdout:
        return _each_holdout(recipe, overrides, output, echo, overwrite=overwrite, resume=resume, smoke=smoke,
                             allow_data_change=allow_data_change)
    try:
        recipe = resolve_recipe(recipe)
        _refuse_before_earlier_steps(recipe, overrides)
        outcome = run_pipeline(recipe, overrides, overwrite=overwrite, resume=resume, smoke=smoke,
                               output=output, console=echo, allow_data_change=allow_data_change)
    except SftkitError as err:
        if getattr(err, "outcome", None) is not None and world.is_main:
            for line in summary_lines(err.outcome):
                click.echo(line)
        if junit is not None and world.is_main:
            write_junit(junit, "run", getattr(err, "metrics", None), err)
        _fail(err, world)
    except Exception as exc:
        if not world.distributed:
            raise
        from sftkit.run.launch import ERROR_DIR_ENV, peer_lost

        if not peer_lost(exc, world.rank):
            raise
        if not os.environ.get(ERROR_DIR_ENV):  # under torchrun: say it once per rank, no traceback
            click.echo(f"error: rank {world.rank}: another process of the run stopped ({exc.__class__.__name__}: "
                       f"{str(exc).splitlines()[0][:200] if str(exc) else ''})", err=True)
        sys.exit(1)
    if world.is_main:
        for line in summary_lines(outcome):
            click.echo(line)
        if junit is not None:
            write_junit(junit, "run", outcome.metrics)


def write_junit(path: Path, command: str, metrics: dict | None, error: Exception | None = None) -> None:
    """``--junit``: the gates and verdicts as JUnit XML (:mod:`sftkit.reporting.junit`)."""
    from sftkit.reporting.junit import write_outcome

    write_outcome(path, command, metrics, error)
    click.echo(f"junit: {path}", err=True)


def _launch(options, recipe, overrides, overwrite, resume, smoke, output, allow_data_change, quiet=False,
            junit=None) -> None:
    """Start the processes (torch.distributed.run), each running this command without launch options."""
    from sftkit.recipe import load_recipe
    from sftkit.run.distributed import check_device
    from sftkit.run.launch import launch

    try:  # a bad recipe is reported once, before any process starts
        loaded = load_recipe(resolve_recipe(recipe), list(overrides))
        check_device(loaded.data.get("distributed"))
    except SftkitError as err:
        _fail(err)
    args = ["run", str(recipe)]
    for item in overrides:
        args += ["--set", item]
    args += [flag for flag, on in (("--overwrite", overwrite), ("--resume", resume), ("--smoke", smoke),
                                   ("--allow-data-change", allow_data_change), ("--quiet", quiet)) if on]
    if output is not None:
        args += ["--output", str(output)]
    if junit is not None:  # the main process writes it
        args += ["--junit", str(junit)]
    try:
        launch(options, args)
    except SftkitError as err:
        _fail(err)


def console(quiet: bool):
    """Progress lines for stderr; with ``quiet`` only warnings, and progress bars off."""
    import os

    if not quiet:
        return lambda msg: click.echo(msg, err=True)
    os.environ["SFTKIT_NO_PROGRESS"] = "1"
    return lambda msg: click.echo(msg, err=True) if str(msg).startswith("warning") else None


def _each_holdout(recipe, overrides, output, echo, **flags) -> None:
    from sftkit.recipe import load_recipe
    from sftkit.reporting.holdout import markdown, run_each
    from sftkit.run import run as run_pipeline
    from sftkit.run.stages import run_dir_for

    try:
        path = resolve_recipe(recipe)
        data = load_recipe(path, list(overrides)).data
        out = Path(output) if output else run_dir_for(data, None)
        table = run_each(path, list(overrides), data, out,
                         lambda p, ov, output: run_pipeline(p, ov, output=output, console=echo, **flags))
    except SftkitError as err:
        _fail(err)
    click.echo(markdown(table))
    click.echo(f"table: {out / 'each_holdout.md'}")


def _refuse_before_earlier_steps(path: Path, overrides) -> None:
    """A recipe whose ``[recipe] after`` steps are not done yet is refused in one line (exit 2)."""
    from sftkit.plugins import get_host
    from sftkit.prerequisites import refuse_if_missing
    from sftkit.reading import read_recipe

    host = get_host()
    read, _problems = read_recipe(path, list(overrides), host=host)
    if read is not None:  # an unreadable recipe: the run reports its problems
        refuse_if_missing(read.data, read.base_dir, str(path), host)


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


def _fail(err: SftkitError, world=None) -> None:
    if world is not None and world.distributed:
        from sftkit.run.launch import report_error

        if not report_error(err, world.rank):  # under torchrun: every failing rank says it itself
            click.echo(f"error: rank {world.rank}: {err}", err=True)
        sys.exit(err.exit_code)
    click.echo(f"error: {err}", err=True)
    sys.exit(err.exit_code)
