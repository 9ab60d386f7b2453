"""The strategy a recipe names, created, and whether the data fits it: shared by ``sftkit run``
(:mod:`sftkit.run.stages`), ``sftkit plan``, ``sftkit preview`` and ``sftkit validate``, so none of
them calls another to get it. Light: nothing heavy is imported."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sftkit.errors import DataError

if TYPE_CHECKING:
    from sftkit.config import StrategyTable


def make_strategy(table: StrategyTable, host, *, required: bool = True) -> tuple:
    """The strategy named by the ``[strategy]`` slice, created with its options, and its registration:
    ``(strategy, component)``; ``(None, None)`` for an unknown name when not ``required``."""
    from sftkit.config import factory_options

    comp = host.registry.get("strategies", str(table.name)) if required else \
        host.registry.find("strategies", str(table.name))
    if comp is None:
        return None, None
    return comp.create(factory_options("strategy", table)), comp


def accepted_kinds(comp, strategy=None) -> tuple:
    """The data kinds a strategy trains on, preferred first: its registration's ``accepts`` (declared
    once, where ``sftkit validate`` reads it without creating the strategy), else the created
    strategy's own ``accepts`` (a plugin that declared only that), else none known."""
    declared = comp.meta.get("accepts") if comp is not None else None
    return tuple(declared or getattr(strategy, "accepts", None) or ())


def keeps_fields(comp) -> bool:
    """Whether the strategy reads each row's other columns (registration ``row_fields=True``: the data
    keeps them as JSON in a ``fields`` column, e.g. for rewards that read ``tests``)."""
    return bool(comp is not None and comp.meta.get("row_fields"))


def shape_hint(comp, accepts) -> str:
    """How to give data that fits the strategy ``comp``: its ``data_hint`` registration metadata."""
    return comp.meta.get("data_hint") or f"give data in one of: {', '.join(accepts)}, or set format explicitly"


def check_fit(strategy, comp, bundle) -> None:
    """The data kind must be one the strategy trains on, and the strategy's own check must pass."""
    accepts = accepted_kinds(comp, strategy)
    if accepts and bundle.kind not in accepts:
        raise DataError(f"strategy {comp.name!r} trains on {' or '.join(accepts)} data, but the data is "
                        f"{bundle.kind} data", where="[strategy] name", hint=shape_hint(comp, accepts))
    if callable(getattr(strategy, "check_data", None)):
        strategy.check_data(bundle)
