"""Built-in strategies (a plugin like any other)."""

from sftkit import hookimpl


@hookimpl
def sftkit_register_strategies(register):
    pass
