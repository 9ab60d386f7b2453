"""The arena's part of a run (a plugin like any other): a run that trains on arena votes records
them, and its report shows the arena ratings before and after it (``sftkit.arena.loop``)."""

from sftkit import hookimpl


@hookimpl
def sftkit_run_start(run):
    from sftkit.arena.loop import record_databases

    record_databases(run)


@hookimpl
def sftkit_report_sections(run, metrics):
    from sftkit.arena.loop import report_sections

    return report_sections(run, metrics)
