"""Secrets by value: every value a recipe takes from the environment (``${ANY_NAME}``) is replaced by
:data:`REDACTED` wherever sftkit writes or prints it, whatever the variable is called.

The recipe reader :func:`register`\\ s each substituted value (with every form an encoding gives
it: repr, JSON, HTML, URL, ...); output goes through :func:`scrub` (text) or :func:`scrub_obj`
(JSON-like data) at the places sftkit writes files (run directory, evaluation directory, report,
caches) and, for everything printed, through the wrappers
:func:`install` puts around ``sys.stdout`` and ``sys.stderr`` for the CLI. Values shorter than
:data:`MIN_LENGTH` characters are not treated as secrets (replacing every "1" would garble all
output). ``sftkit resolve --show-secrets`` turns redaction off for its own output.
"""

from __future__ import annotations

import sys
from typing import Any

REDACTED = "***redacted***"
MIN_LENGTH = 4
MIN_CLIPPED = 8  # characters of a secret cut short by an ellipsis that are redacted
_values: set[str] = set()  # every form of every secret
_raw: set[str] = set()  # the values as registered
ELLIPSES = ("...", "\u2026")
_state = {"show": False}


def _encodings(value: str) -> set[str]:
    """The forms ``value`` takes inside text sftkit produces: Python's ``repr``/``ascii`` (either
    quote), JSON, HTML (``html.escape`` and Jinja's), URL-encoding and GitHub annotations."""
    import html
    import json
    from urllib.parse import quote, quote_plus

    out = {value, html.escape(value), html.escape(value, quote=False),
           html.escape(value, quote=False).replace('"', "&#34;").replace("'", "&#39;"),
           json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1],
           quote(value), quote(value, safe=""), quote_plus(value),
           value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")}
    for show in (repr, ascii):
        out.add(show(value + "'\"")[1:-4])  # inside '...': ' escaped, " not
        if '"' not in value:
            out.add(show(value + "'")[1:-2])  # inside "...": neither quote escaped
    return out


def register(value: str) -> None:
    """Treat ``value`` (taken from the environment) as a secret from now on, in every form an
    encoding (see :func:`_encodings`) or an encoding of an encoding gives it, and each of its lines."""
    if not isinstance(value, str) or len(value) < MIN_LENGTH or value in _raw:
        return
    _raw.add(value)
    parts = {value} | {line for line in value.splitlines() if len(line.strip()) >= MIN_LENGTH}
    forms = {form for part in parts for form in _encodings(part)}
    forms |= {twice for form in forms for twice in _encodings(form)}
    _values.update(f for f in forms if len(f) >= MIN_LENGTH)


def show_secrets(show: bool = True) -> None:
    """Stop (or resume) redacting printed output (``--show-secrets``)."""
    _state["show"] = show


def scrub(text: str) -> str:
    """``text`` with every registered secret replaced (longest form first), also a secret cut short
    by an ellipsis (``'sk-abc...``, ``…xyz``) when at least :data:`MIN_CLIPPED` characters show."""
    if not _values or not isinstance(text, str):
        return text
    present = [v for v in _values if v in text]
    if present:
        import re

        text = re.sub("|".join(re.escape(v) for v in sorted(present, key=len, reverse=True)), REDACTED, text)
    if any(e in text for e in ELLIPSES):
        text = _scrub_clipped(text)
    return text


def _scrub_clipped(text: str) -> str:
    """Replace the longest start of a secret's form that ends at an ellipsis (``'sk-abc...``) and
    the longest end of one that follows an ellipsis (``…xyz'``)."""
    starts = [v for v in _values if v[:MIN_CLIPPED] in text]  # the only forms that can be cut short here
    ends = [v for v in _values if v[-MIN_CLIPPED:] in text]
    if not starts and not ends:
        return text
    longest = max(map(len, _values))
    for mark in ELLIPSES:
        done, pos = [], 0
        while (at := text.find(mark, pos)) >= 0:
            head, pos = text[pos:at], at + len(mark)
            cut = max((_cut_start(head, v) for v in starts), default=0)
            done.append((head[:-cut] + REDACTED if cut else head) + mark)
            cut = max((_cut_end(v, text[pos:pos + longest]) for v in ends), default=0)
            if cut:
                done.append(REDACTED)
                pos += cut
        text = "".join(done) + text[pos:]
    return text


def _cut_start(head: str, value: str) -> int:
    """Length of the longest end of ``head`` that is a start of ``value`` (0 under MIN_CLIPPED)."""
    probe = value[:MIN_CLIPPED]
    at = head.find(probe, max(0, len(head) - len(value)))
    while at >= 0:
        if value.startswith(head[at:]):
            return len(head) - at
        at = head.find(probe, at + 1)
    return 0


def _cut_end(value: str, rest: str) -> int:
    """Length of the longest start of ``rest`` that is an end of ``value`` (0 under MIN_CLIPPED)."""
    probe = rest[:MIN_CLIPPED]
    at = value.find(probe) if len(probe) == MIN_CLIPPED else -1
    while at >= 0:
        if rest.startswith(value[at:]):
            return len(value) - at
        at = value.find(probe, at + 1)
    return 0


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


def holds_secret(obj: Any) -> bool:
    """True when a string in JSON-like ``obj`` (keys included) shows a registered secret."""
    if not _values:
        return False
    if isinstance(obj, str):
        return scrub(obj) != obj
    if isinstance(obj, dict):
        return any(holds_secret(k) or holds_secret(v) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return any(holds_secret(v) for v in obj)
    return False


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
