"""Light look at a data entry's fields (first row only) and the record format they suggest.

Used by ``sftkit validate`` for cross-field rules (does the data fit the strategy?) without
importing datasets or reading whole files.
"""

from __future__ import annotations

import csv
import io
import json
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import DataError
from .paths import open_data

if TYPE_CHECKING:
    from .registry import Registry


def detect_format(fields, registry: Registry) -> str | None:
    """The record format implied by a row's field names, or None when none fits.

    The same rules the data stage applies (:func:`sftkit.data.formats.detect_format`).
    """
    from .data.formats import detect_format as detect

    try:
        return detect(list(fields), None, "", registry)
    except DataError:
        return None


def kind_of_format(fmt: str | None, registry: Registry) -> str | None:
    """The canonical kind of the records the registered format ``fmt`` gives, or None (unknown)."""
    comp = registry.find("formats", fmt) if fmt else None
    return comp.meta["emits"] if comp is not None else None


def _first_json_line(path: Path) -> dict | None:
    from .jsonl import read_jsonl

    try:
        rows = read_jsonl(path, objects=False, limit=1)
    except DataError:
        return None
    return rows[0] if rows and isinstance(rows[0], dict) else None


def peek_fields(item: dict, path: Path | None) -> list[str] | None:
    """Field names of the first row of a ``[[data]]`` entry, after its ``columns`` mapping.

    Returns None when they cannot be known cheaply (hub datasets, Parquet, unreadable files).
    """
    fields: list[str] | None = None
    try:
        if isinstance(item.get("rows"), list) and item["rows"] and isinstance(item["rows"][0], dict):
            fields = list(item["rows"][0])
        elif path is not None and path.is_file():
            name = path.name.lower().removesuffix(".gz")
            if name.endswith((".jsonl", ".ndjson")):
                row = _first_json_line(path)
                fields = list(row) if row else None
            elif name.endswith(".json"):
                if path.stat().st_size < 5_000_000:
                    with open_data(path) as fh:
                        data = json.loads(fh.read(50_000_000).decode("utf-8", "replace"))
                    if isinstance(data, dict):
                        data = next((v for v in data.values() if isinstance(v, list)), None)
                    if isinstance(data, list) and data and isinstance(data[0], dict):
                        fields = list(data[0])
            elif name.endswith((".csv", ".tsv")):
                delim = item.get("delimiter") or ("\t" if name.endswith(".tsv") else ",")
                with io.TextIOWrapper(open_data(path), encoding=item.get("encoding", "utf-8"), errors="replace",
                                      newline="") as fh:
                    header = next(csv.reader(fh, delimiter=delim), None)
                fields = [h.strip() for h in header] if header else None
            elif name.endswith((".txt", ".md")):
                fields = ["text"]
    except (OSError, EOFError, ValueError, UnicodeError, LookupError, RecursionError, csv.Error, zlib.error):
        return None  # an unreadable file is named by the data stage (and a corrupt start by validate)
    if fields is None or any(not isinstance(f, str) or any(ord(c) < 32 or ord(c) == 127 for c in f) for f in fields):
        return None  # a name with control characters is refused (located) by the data stage, never echoed here
    columns = item.get("columns") or {}
    if isinstance(columns, dict):
        reverse = {v: k for k, v in columns.items() if isinstance(v, str)}
        fields = [reverse.get(f, f) for f in fields]
    return fields


def count_rows(item: dict, path: Path | None, limit: int) -> int | None:
    """How many rows a ``[[data]]`` entry holds, counted up to ``limit`` (``limit + 1`` means "more"):
    inline ``rows``, or a local JSON-lines (also ``.gz``), JSON or CSV/TSV file. None when that
    cannot be known cheaply (hub datasets, Parquet, directories, unreadable files). Rows the loader
    will drop (invalid, duplicates) are counted: the number is an upper bound."""
    import gzip
    import itertools
    import zlib

    if isinstance(item.get("rows"), list):
        return min(len(item["rows"]), limit + 1)
    if path is None or not path.is_file():
        return None
    name = path.name.lower()
    try:
        if name.endswith((".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")):
            opener = gzip.open if name.endswith(".gz") else open
            with opener(path, "rb") as fh:
                return sum(1 for _ in itertools.islice((line for line in fh if line.strip()), limit + 1))
        if name.endswith(".json") and path.stat().st_size < 5_000_000:
            data = json.loads(path.read_text(encoding="utf-8", errors="replace"))
            field = item.get("field")
            if isinstance(data, dict):
                data = data.get(field) if field else next((v for v in data.values() if isinstance(v, list)), None)
            return min(len(data), limit + 1) if isinstance(data, list) else None
        if name.endswith((".csv", ".tsv")):
            delim = item.get("delimiter") or ("\t" if name.endswith(".tsv") else ",")
            with open(path, encoding=item.get("encoding", "utf-8"), errors="replace", newline="") as fh:
                rows = (r for r in csv.reader(fh, delimiter=delim) if any(c.strip() for c in r))
                return max(0, sum(1 for _ in itertools.islice(rows, limit + 2)) - 1)  # less the header
    except (OSError, EOFError, zlib.error, ValueError, UnicodeError, csv.Error):
        return None
    return None
