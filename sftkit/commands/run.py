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
def run(recipe, overrides, overwrite, resume, smoke, output):
    """Train (and evaluate) RECIPE (a TOML file, or the name of a shipped recipe) into a run directory.

    The directory gets the model (or adapter) with its tokenizer and chat template, the resolved
    recipe, metrics.json, train_log.jsonl, sftkit.lock.json, a report, and COMPLETE when done.
    Exit codes: 0 done, 1 invalid input or failed run, 2 usage error, 3 an evaluation gate failed, 4 an evaluator failed.
    """
    if overwrite and resume:
        _fail(SftkitError("--overwrite and --resume exclude each other", hint="pick one", exit_code=2))
    from sftkit.pipeline import run as run_pipeline, summary_lines

    echo = lambda msg: click.echo(msg, err=True)  # noqa: E731
    try:
        recipe = resolve_recipe(recipe)
        outcome = run_pipeline(recipe, overrides, overwrite=overwrite, resume=resume, smoke=smoke,
                               output=output, console=echo)
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


def _fail(err: SftkitError) -> None:
    click.echo(f"error: {err}", err=True)
    sys.exit(err.exit_code)
