"""The one JSON-lines reader for small files: evaluation items, replay text, train logs, a data
file's first row (light: the standard library only; ``.gz`` files too).

Large training data streams through Arrow instead (:mod:`sftkit.data.readers`), with the same
``file:line`` messages.
"""

from __future__ import annotations

import io
import json
import zlib
from pathlib import Path
from typing import Any

from .errors import DataError
from .paths import open_data, unreadable


def parse_line(line: str | bytes, *, objects: bool = True) -> tuple[Any, str | None]:
    """A JSON line's value and None, or None and why it is not one: not JSON, nested too deeply for
    JSON, or (with ``objects``) not a JSON object. The one rule for a bad line, here and in the Arrow
    reader (:mod:`sftkit.data.readers`)."""
    try:
        value = json.loads(line)
    except ValueError as exc:
        return None, f"not valid JSON ({str(exc).split(':')[0]})"
    except RecursionError:
        return None, "values nested too deeply for JSON"
    if objects and not isinstance(value, dict):
        return None, f"a JSON line must be an object {{...}}, got {type(value).__name__}"
    return value, None


def read_jsonl(path: Path | str, *, on_error: str = "error", objects: bool = True, limit: int | None = None,
               where: str | None = None) -> list[Any]:
    """The values of a JSON-lines file, blank lines skipped, at most ``limit``.

    A line that is not JSON (or, with ``objects``, not a JSON object) is one
    :class:`DataError` naming ``file:line`` (``on_error="skip"``: the line is left out); a file that
    cannot be read or decompressed is one too (:func:`sftkit.paths.unreadable`).
    """
    path = Path(path)
    out: list[Any] = []
    lineno = 0
    try:
        with io.TextIOWrapper(open_data(path), encoding="utf-8", errors="replace") as fh:
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
    except (OSError, EOFError, zlib.error) as exc:
        raise unreadable(path, exc, lineno + 1) from None
    return out


def read_values(path: Path | str, *, where: str | None = None, objects: bool = False) -> list[Any]:
    """The values of a small .json file (a list) or JSON-lines file (.jsonl; .gz too): evaluation
    items, replay text. A missing or unreadable file, a .json that is not a list, or a bad line (with
    ``objects``: a line that is not an object) is one :class:`DataError`."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"file not found: {path}", where=where,
                        hint="check the path (relative paths resolve against the recipe's directory)")
    if not path.name.removesuffix(".gz").endswith(".json"):
        return read_jsonl(path, objects=objects, where=where)
    try:
        with open_data(path) as f:
            data = json.loads(f.read().decode("utf-8", "replace"))
    except (OSError, EOFError, zlib.error) as exc:
        raise unreadable(path, exc) from None
    except ValueError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})", where=where) from None
    except RecursionError:
        raise DataError(f"{path}: values nested too deeply for JSON", where=where) from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of objects", where=where)
    return data
