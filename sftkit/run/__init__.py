"""The run: named stages from a recipe to a finished run directory, used by ``sftkit run`` and
``sftkit eval``, with the run directory (:mod:`.rundir`), the lock file (:mod:`.lockfile`) and
the smoke policy. Nothing heavy is imported here."""

from .stages import RunOutcome, run, summary_lines

__all__ = ["RunOutcome", "run", "summary_lines"]
