"""Built-in record formats (a plugin like any other): this module only lists them.

Each format is a :class:`sftkit.data.formats.RecordFormat` declared beside its converter: the kind it
emits, the fields it needs and reads, its auto-detection priority and doc. Registering imports
nothing heavy.
"""

from __future__ import annotations

from sftkit import hookimpl

FORMATS = tuple(f"sftkit.data.formats:{name}" for name in (
    "PROMPT_COMPLETION",
    "MESSAGES",
    "SHAREGPT",
    "ALPACA",
    "TEXT",
    "PREFERENCE",
    "LABELED",
    "CLASSIFICATION",
))


@hookimpl
def sftkit_register_formats(register):
    from sftkit.registry import import_object

    for address in FORMATS:
        fmt = import_object(address)
        register(fmt.name, fmt.convert, **fmt.registration())
