"""Built-in sources (a plugin like any other)."""

from sftkit import hookimpl


@hookimpl
def sftkit_register_sources(register):
    pass
