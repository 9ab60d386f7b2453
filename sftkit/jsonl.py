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


def read_jsonl(path: Path | str, *, on_error: str = "error", objects: bool = True, limit: int | None = None,
               where: str | None = None) -> list[Any]:
    """The values of a JSON-lines file, blank lines skipped, at most ``limit``.

    A line that is not JSON (or, with ``objects``, not a JSON object) raises a one-line
    :class:`DataError` naming ``file:line`` (``on_error="skip"``: the line is left out).
    """
    path = Path(path)
    out: list[Any] = []
    lineno = 0
    try:
        with io.TextIOWrapper(open_data(path), encoding="utf-8", errors="replace") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                    problem = None if not objects or isinstance(value, dict) else \
                        f"a JSON line must be an object {{...}}, got {type(value).__name__}"
                except ValueError as exc:
                    problem = f"not valid JSON ({str(exc).split(':')[0]})"
                except RecursionError:
                    problem = "values nested too deeply for JSON"
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
