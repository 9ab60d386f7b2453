"""Built-in evaluators (a plugin like any other)."""

from sftkit import hookimpl


@hookimpl
def sftkit_register_evaluators(register):
    pass
