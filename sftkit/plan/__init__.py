"""``sftkit plan``: the cost of a run before it runs (time, memory, disk, data), and its limits."""

from .estimate import check_limits, limit_failures, make_plan

__all__ = ["make_plan", "limit_failures", "check_limits"]
