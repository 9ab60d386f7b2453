"""``sftkit plan``: the cost of a run before it runs (time, memory, disk, data), and its limits.
:func:`sftkit.run.plan` runs the run's first stages and hands them to :func:`plan_of`."""

from .estimate import check_limits, limit_failures, plan_of

__all__ = ["plan_of", "limit_failures", "check_limits"]
