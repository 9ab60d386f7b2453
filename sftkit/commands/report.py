"""``sftkit report RUN_DIR``: re-render a run directory's report.html / report.md / loss.png."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from sftkit.errors import SftkitError, storage_error


@click.command("report")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
def report(run_dir):
    """Re-render RUN_DIR's report (report.html, report.md, loss.png) from its metrics.json,
    train_log.jsonl and data_stats.json, with the installed plugins' sections."""
    from sftkit.reporting import write_report
    from sftkit.run import rundir

    try:
        if rundir.state(run_dir) == "unfinished":
            raise SftkitError("this run is unfinished (no COMPLETE file): its metrics are partial or missing, "
                              "so no report is made from them", where=str(run_dir),
                              hint="continue it with `sftkit run RECIPE --output DIR --resume`")
        try:
            result = write_report(run_dir)
        except OSError as exc:  # a read-only, forbidden or full run directory: one line
            err = storage_error(exc, hint="make the run directory writable, or copy it somewhere writable and "
                                          "run `sftkit report` on the copy")
            if err is None:
                raise
            raise err from None
    except SftkitError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(err.exit_code)
    for f in result["findings"]:
        click.echo(f"{f['level']}: {f['title']} — {f['detail']} Fix: {f['fix']}")
    if result.get("plot_note"):
        click.echo(f"note: {result['plot_note']}", err=True)
    click.echo(f"report: {result['html']}")
    click.echo(f"markdown: {result['md']}")
