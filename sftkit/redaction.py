"""Secrets by value: every value a recipe takes from the environment (``${ANY_NAME}``) is replaced by
:data:`REDACTED` wherever sftkit writes or prints it, whatever the variable is called.

The recipe reader :func:`register`\\ s each substituted value; output goes through :func:`scrub`
(text) or :func:`scrub_obj` (JSON-like data) at the places sftkit writes files (run directory,
evaluation directory, report) and, for everything printed, through the wrappers
:func:`install` puts around ``sys.stdout`` and ``sys.stderr`` for the CLI. Values shorter than
:data:`MIN_LENGTH` characters are not treated as secrets (replacing every "1" would garble all
output). ``sftkit resolve --show-secrets`` turns redaction off for its own output.
"""

from __future__ import annotations

import sys
from typing import Any

REDACTED = "***redacted***"
MIN_LENGTH = 4
_values: set[str] = set()
_state = {"show": False}


def register(value: str) -> None:
    """Treat ``value`` (taken from the environment) as a secret from now on, also in the forms JSON
    and HTML escaping give it."""
    import html
    import json

    if isinstance(value, str) and len(value) >= MIN_LENGTH:
        _values.update({value, html.escape(value), json.dumps(value)[1:-1],
                        json.dumps(value, ensure_ascii=False)[1:-1]})


def show_secrets(show: bool = True) -> None:
    """Stop (or resume) redacting printed output (``--show-secrets``)."""
    _state["show"] = show


def scrub(text: str) -> str:
    """``text`` with every registered secret replaced, longest first."""
    if not _values or not isinstance(text, str):
        return text
    for value in sorted(_values, key=len, reverse=True):
        if value in text:
            text = text.replace(value, REDACTED)
    return text


def scrub_obj(obj: Any) -> Any:
    """A copy of JSON-like ``obj`` with secrets replaced in every string, keys included."""
    if not _values:
        return obj
    if isinstance(obj, str):
        return scrub(obj)
    if isinstance(obj, dict):
        return {scrub_obj(k): scrub_obj(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(scrub_obj(v) for v in obj)
    return obj


class _Scrubbing:
    """A text stream that redacts secrets in what is written to it."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text):
        if isinstance(text, str) and not _state["show"]:
            text = scrub(text)
        return self._stream.write(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def install() -> None:
    """Wrap ``sys.stdout`` and ``sys.stderr`` (once) so that nothing printed shows a secret."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, _Scrubbing):
            setattr(sys, name, _Scrubbing(stream))
