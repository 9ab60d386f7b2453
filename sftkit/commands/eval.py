"""``sftkit eval RECIPE --model REF``: evaluate a model with a recipe's [[eval]] tables (the run's
stages with training switched off, :func:`sftkit.run.evaluate`)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from sftkit.errors import SftkitError


def _fail(err: SftkitError) -> None:
    click.echo(f"error: {err}", err=True)
    sys.exit(err.exit_code)


@click.command("eval")
@click.argument("recipe", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--model", "model_ref", required=True, metavar="REF",
              help="The model to evaluate: a run's model/ directory (full model or LoRA adapter), any saved "
                   "model directory, a hub id or a .gguf file (package://… too).")
@click.option("--base", is_flag=True, help="Also evaluate the recipe's [model] for the before/after comparison.")
@click.option("--output", "-o", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where metrics.json and the report go (default: the recipe's output dir + '-eval').")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe key (value parsed as TOML).")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines on stderr (warnings and errors still).")
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write a JUnit XML file: one test case per gate and per evaluator verdict.")
def eval_command(recipe, model_ref, base, output, overrides, quiet, junit):
    """Evaluate a model with RECIPE's [[eval]] tables and write metrics and a report (no training rows needed).

    Exit codes: 0 done, 1 invalid input, 2 usage error, 3 an evaluation gate failed, 4 an evaluator
    failed (metrics and report written).
    """
    from sftkit.commands.run import console, write_junit
    from sftkit.run import evaluate, summary_lines

    echo = console(quiet)
    try:
        outcome = evaluate(recipe, model_ref, base=base, output=output, overrides=overrides, console=echo)
    except SftkitError as err:
        if getattr(err, "outcome", None) is not None:
            for line in summary_lines(err.outcome):
                click.echo(line)
        if junit is not None:
            write_junit(junit, "eval", getattr(err, "metrics", None), err)
        _fail(err)
    for line in summary_lines(outcome):
        click.echo(line)
    if junit is not None:
        write_junit(junit, "eval", outcome.metrics)
