"""The one JSON-lines reader for small files: evaluation items, replay text, train logs, a data
file's first row (light: the standard library only; ``.gz`` files too).

Large training data streams through Arrow instead (:mod:`sftkit.data.readers`), with the same
``file:line`` messages.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from .errors import DataError


def parse_line(line: str | bytes, *, objects: bool = True) -> tuple[Any, str | None]:
    """A JSON line's value and None, or None and why it is not one: not JSON, or (with ``objects``)
    not a JSON object. The one rule for a bad line, here and in the Arrow reader (:mod:`sftkit.data.readers`)."""
    try:
        value = json.loads(line)
    except ValueError as exc:
        return None, f"not valid JSON ({str(exc).split(':')[0]})"
    if objects and not isinstance(value, dict):
        return None, f"a JSON line must be an object {{...}}, got {type(value).__name__}"
    return value, None


def read_jsonl(path: Path | str, *, on_error: str = "error", objects: bool = True, limit: int | None = None,
               where: str | None = None) -> list[Any]:
    """The values of a JSON-lines file, blank lines skipped, at most ``limit``.

    A line that is not JSON (or, with ``objects``, not a JSON object) raises a one-line
    :class:`DataError` naming ``file:line`` (``on_error="skip"``: the line is left out).
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    out: list[Any] = []
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            value, problem = parse_line(line, objects=objects)
            if problem:
                if on_error == "skip":
                    continue
                raise DataError(f"{path}:{lineno}: {problem}", where=where,
                                hint="each line must be one JSON object")
            out.append(value)
            if limit is not None and len(out) >= limit:
                break
    return out


def read_values(path: Path | str, *, where: str | None = None, objects: bool = False) -> list[Any]:
    """The values of a small .json file (a list) or JSON-lines file (.jsonl, .gz too): evaluation
    items, replay text. A missing or unreadable file, a .json that is not a list, or a bad line (with
    ``objects``: a line that is not an object) is one :class:`DataError`."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"file not found: {path}", where=where,
                        hint="check the path (relative paths resolve against the recipe's directory)")
    try:
        if path.name.endswith(".json"):
            data = json.loads(path.read_text(encoding="utf-8", errors="replace"))
            if not isinstance(data, list):
                raise DataError(f"{path}: expected a JSON list of objects", where=where)
            return data
        return read_jsonl(path, objects=objects)
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: could not be read ({exc})") from None
