"""Built-in formatters (a plugin like any other)."""

from sftkit import hookimpl


@hookimpl
def sftkit_register_formatters(register):
    pass
