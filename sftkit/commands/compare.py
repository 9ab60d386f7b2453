"""``sftkit compare RUN_A RUN_B``: is B at least as good as A, evaluator by evaluator?"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from sftkit.errors import GateError, SftkitError


@click.command("compare")
@click.argument("run_a", type=click.Path(path_type=Path))
@click.argument("run_b", type=click.Path(path_type=Path))
@click.option("--gate", is_flag=True, help="Exit 3 when B is significantly worse than A on any evaluator "
                                           "(or regressed by more than --max-regression); 4 when an evaluator errored.")
@click.option("--max-regression", type=click.FloatRange(min=0), default=None,
              help="With --gate: also fail when B's value is below A's by more than this (in the metric's better "
                   "direction), significant or not.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--junit", "junit", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write a JUnit XML file: one test case per evaluator.")
def compare(run_a, run_b, gate, max_regression, fmt, junit):
    """Compare two finished runs (or `sftkit eval` outputs) on the items both evaluated: per evaluator
    a paired test of B against A, the verdict "B better", "B worse" or "no significant difference"
    with intervals, and the items A got right and B got wrong.

    Refuses (exit 2) runs whose items for an evaluator differ (by content hash). Exit codes: 0 done,
    2 cannot compare, with --gate 3 when B is worse (or beyond --max-regression), 4 an evaluator errored.
    """
    from sftkit.evaluation.between_runs import compare_runs, summary_lines

    try:
        result = compare_runs(run_a, run_b, max_regression=max_regression)
    except SftkitError as err:
        if junit is not None:
            from sftkit.reporting.junit import write_outcome

            write_outcome(junit, "compare", None, err)
        click.echo(f"error: {err}", err=True)
        sys.exit(err.exit_code)
    if fmt == "json":
        click.echo(json.dumps(result, indent=2, default=str))
    else:
        click.echo(f"A: {run_a}\nB: {run_b}")
        for line in summary_lines(result):
            click.echo(line)
    if junit is not None:
        from sftkit.reporting import junit as junit_xml

        cases = [junit_xml.Case(f"compare {r['label']}.{r['primary']}", "sftkit.compare",
                                failure="; ".join(r["gate"]["failures"]) or None if r["verdict"] != "error" else None,
                                error=r["reason"] if r["verdict"] == "error" else None,
                                output=f"{r['verdict']}: {r['reason']}") for r in result["rows"]]
        junit_xml.write(junit, "sftkit compare", cases)
    if not gate:
        return
    if any(r["verdict"] == "error" for r in result["rows"]):
        click.echo("compare gate: an evaluator errored, so B was not compared on it", err=True)
        from sftkit.reporting.accounting import EvaluationFailed

        sys.exit(EvaluationFailed.exit_code)
    failures = [f for r in result["rows"] for f in r["gate"]["failures"]]
    if failures:
        click.echo(f"compare gate failed: {'; '.join(failures)}", err=True)
        sys.exit(GateError.exit_code)
    click.echo("compare gate passed", err=True)
