"""Built-in recipes (a plugin like any other)."""

from sftkit import hookimpl


@hookimpl
def sftkit_register_recipes(register):
    pass
