"""Read raw rows from files, directories, inline tables and Hugging Face datasets.

Every reader returns :class:`RawRows`: a ``datasets.Dataset`` (memory-mapped Arrow for files),
a function naming where row ``i`` came from (``file.jsonl:17``), the files read, and the rows it
skipped (``on_error = "skip"``) by reason. Readers only read; :mod:`sftkit.data.formats` converts.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import DataError
from ..jsonl import parse_line
from ..paths import open_data
from ..records import TEXT_EXTENSIONS
from .arrowcache import cache_key, cached_dataset, file_fingerprint

CHUNK_BYTES = 16 << 20  # bytes of JSONL parsed per Arrow call
KEEP_IN_PASS1_BYTES = 64 << 20  # files up to this size are parsed once
MAX_ROW_DEPTH = 32  # JSON levels in a row (the row object is 1); Arrow itself writes at most 64


@dataclass
class RawRows:
    """Rows as read, before conversion to canonical records."""

    dataset: Any  # datasets.Dataset
    describe: Callable[[int], str]  # row index -> location for messages
    files: list[str] = field(default_factory=list)
    skipped: dict = field(default_factory=dict)  # reason -> count


def _bump(counts: dict, reason: str, n: int = 1) -> None:
    counts[reason] = counts.get(reason, 0) + n


def encoding_hint(encoding: str) -> str:
    other = "latin-1" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else "utf-8"
    return f'set encoding = "{other}" (or the file\'s real encoding) in this [[data]] entry'


def _require_file(path: Path, what: str = "file") -> None:
    from ..paths import not_a_regular_file

    try:
        exists = path.exists()
    except OSError as exc:  # e.g. a name longer than the file system allows
        raise DataError(f"{what} cannot be opened: {exc.strerror}: {str(path)[:120]}…" if len(str(path)) > 120
                        else f"{what} cannot be opened: {exc.strerror}: {path}", hint="shorten the path") from None
    if exists and not path.is_dir():
        try:
            why = not_a_regular_file(path)
        except OSError as exc:
            raise DataError(f"{what} cannot be opened: {exc.strerror}: {path}") from None
        if why:
            raise DataError(f"{what} {path} {why}", hint="point at a data file")
    if not exists:
        near = ""
        if path.parent.exists():
            from ..errors import did_you_mean

            hint = did_you_mean(path.name, [p.name for p in path.parent.iterdir()])
            near = f"; {hint}" if hint else ""
        raise DataError(f"{what} not found: {path}{near}", hint="paths are relative to the recipe file")


def _readable(reader):
    """``reader(path, ...)`` with a corrupt, truncated or unreadable file as one located DataError."""
    import functools
    import zlib

    from ..paths import unreadable

    @functools.wraps(reader)
    def read(path, *args, **kwargs):
        try:
            return reader(path, *args, **kwargs)
        except DataError:
            raise
        except (OSError, EOFError, zlib.error) as exc:
            raise unreadable(path, exc) from None
    return read


# ----------------------------------------------------------------------------------------- JSONL

def _iter_line_chunks(path: Path, max_bytes: int = CHUNK_BYTES):
    """Yield ``(chunk_bytes, first_line_number)`` of whole lines."""
    line_no = 1
    with open_data(path) as f:
        first = True
        while True:
            chunk = f.read(max_bytes)
            if not chunk:
                break
            if not chunk.endswith(b"\n"):
                chunk += f.readline()
            if first and chunk.startswith(b"\xef\xbb\xbf"):
                chunk = chunk[3:]
            first = False
            yield chunk, line_no
            line_no += chunk.count(b"\n")


def _decode_chunk(chunk: bytes, first_line: int, path: Path, encoding: str, on_error: str,
                  skipped: dict, bad_lines: list) -> bytes:
    """Return the chunk as UTF-8 bytes; bad lines raise (or are blanked and counted when skipping)."""
    utf8 = encoding.lower().replace("_", "-") in ("utf-8", "utf8")
    try:
        text = chunk.decode(encoding)
        return chunk if utf8 else text.encode("utf-8")
    except UnicodeDecodeError as exc:
        if on_error != "skip":
            line = first_line + chunk[: exc.start].count(b"\n")
            col = exc.start - (chunk.rfind(b"\n", 0, exc.start) + 1) + 1
            byte = chunk[exc.start: exc.start + 1].hex()
            raise DataError(f"text is not valid {encoding} (byte 0x{byte} at column {col})",
                            where=f"{path}:{line}", hint=encoding_hint(encoding)) from None
    out = []
    for i, line in enumerate(chunk.split(b"\n")):
        try:
            decoded = line.decode(encoding)
        except UnicodeDecodeError:
            _bump(skipped, f"not valid {encoding}")
            bad_lines.append(first_line + i)
            out.append(b"")
            continue
        out.append(line if utf8 else decoded.encode("utf-8"))
    return b"\n".join(out)


TOO_DEEP = f"values nested more than {MAX_ROW_DEPTH} levels deep"
TOO_DEEP_HINT = "flatten the row, e.g. keep a deep structure as a JSON string in one field"


_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}\n")


def _nests_deeper(text: bytes, limit: int) -> int | None:
    """Offset where JSON brackets (outside strings) first nest deeper than ``limit``, or None."""
    import re

    depth = 0
    for m in re.finditer(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', text):
        tok = m.group()
        if tok in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return m.start()
        elif tok in (b"]", b"}"):
            depth -= 1
    return None


def _deep_lines(data: bytes, limit: int) -> list[int]:
    """0-based indexes of the JSON lines in ``data`` that nest deeper than ``limit``; found before
    Arrow parses them (its parser takes seconds per thousand levels). A cheap count of brackets
    per line picks the few lines worth scanning."""
    counts = data.translate(None, _NOT_BRACKETS).split(b"\n")
    if max(map(len, counts)) <= limit:
        return []
    suspects = [i for i, brackets in enumerate(counts) if len(brackets) > limit]
    lines = data.split(b"\n")
    return [i for i in suspects if _nests_deeper(lines[i], limit) is not None]


def _drop_deep_lines(data: bytes, first_line: int, path: Path, on_error: str, skipped: dict,
                     bad_lines: list) -> bytes:
    """Raise for the first line nested deeper than MAX_ROW_DEPTH, or blank and count them all."""
    deep = _deep_lines(data, MAX_ROW_DEPTH)
    if not deep:
        return data
    if on_error != "skip":
        raise DataError(TOO_DEEP, where=f"{path}:{first_line + deep[0]}",
                        hint=TOO_DEEP_HINT + '; or set on_error = "skip" to skip such lines')
    lines = data.split(b"\n")
    for i in deep:
        lines[i] = b""
        bad_lines.append(first_line + i)
    _bump(skipped, "nested too deeply", len(deep))
    return b"\n".join(lines)


def _too_deep_value(value, levels: int) -> bool:
    """Whether a parsed JSON value nests more than ``levels`` lists/objects deep (no recursion)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        items = node.values() if isinstance(node, dict) else node
        for v in items:
            if isinstance(v, (list, dict)):
                if depth >= levels:
                    return True
                stack.append((v, depth + 1))
    return False


def _clean_chunk(chunk: bytes, first_line: int, path: Path, on_error: str, skipped: dict,
                 bad_lines: list) -> bytes:
    """Find the lines Arrow could not parse; raise for the first, or blank and count them."""
    lines = chunk.split(b"\n")
    found = False
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        problem = parse_line(line)[1]
        if problem is None:
            continue
        found = True
        if on_error != "skip":
            shown = line[:80].decode("utf-8", "replace")
            raise DataError(f"{problem}: {shown!r}", where=f"{path}:{first_line + i}",
                            hint='fix the line, or set on_error = "skip" to skip bad lines')
        _bump(skipped, "not valid JSON" if problem.startswith("not valid") else "not a JSON object")
        bad_lines.append(first_line + i)
        lines[i] = b""
    return b"\n".join(lines) if found else chunk


def _parse_json_chunk(data: bytes, schema=None):
    import pyarrow as pa
    import pyarrow.json as paj

    opts = paj.ReadOptions(block_size=max(len(data) + 1, 1 << 16))
    parse = paj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer") if schema is not None else None
    if not data.strip():
        return pa.table({}) if schema is None else schema.empty_table()
    return paj.read_json(io.BytesIO(data), read_options=opts, parse_options=parse)


def _type_conflict(path: Path, exc: Exception, data: bytes | None = None, first_line: int = 1) -> DataError:
    """A field whose JSON type changes between lines; names the line when Arrow says which row."""
    import re

    text = str(exc)
    where = str(path)
    m = re.search(r"Column\((/[^)]*)\) changed from (\w+) to (\w+) in row (\d+)", text)
    if m and data is not None:
        row, seen = int(m.group(4)), -1
        for i, line in enumerate(data.split(b"\n")):
            if line.strip():
                seen += 1
                if seen == row:
                    where = f"{path}:{first_line + i}"
                    break
        field = m.group(1).strip("/").replace("/", ".")
        return DataError(f'field "{field}" is a {m.group(3)} here but a {m.group(2)} on earlier lines', where=where,
                         hint="give each field the same JSON type on every line (e.g. always a string)")
    return DataError(f"a field has different types on different lines ({text})", where=where,
                     hint="give each field the same JSON type on every line (e.g. always a string)")


@_readable
def read_jsonl(path: Path, *, encoding: str = "utf-8", on_error: str = "error",
               max_rows: int | None = None) -> RawRows:
    """JSON Lines (optionally ``.gz``), streamed through Arrow in 16 MB chunks.

    Malformed lines are located line by line only in the chunk Arrow rejected.
    """
    _require_file(path)
    key = cache_key("jsonl", file_fingerprint(path), encoding, on_error, max_rows)

    def build(open_sink):
        import pyarrow as pa

        skipped: dict = {}
        bad_lines: list = []
        schemas, kept, chunks_used = [], [], 0
        kept_bytes, rows = 0, 0
        for chunk, first_line in _iter_line_chunks(path):
            data = _decode_chunk(chunk, first_line, path, encoding, on_error, skipped, bad_lines)
            data = _drop_deep_lines(data, first_line, path, on_error, skipped, bad_lines)
            try:
                table = _parse_json_chunk(data)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                data = _clean_chunk(data, first_line, path, on_error, skipped, bad_lines)
                try:
                    table = _parse_json_chunk(data)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc2:
                    raise _type_conflict(path, exc2, data, first_line) from exc
            schemas.append(table.schema)
            chunks_used += 1
            rows += table.num_rows
            kept_bytes += len(data)
            if kept is not None:
                kept.append(table)
                if kept_bytes > KEEP_IN_PASS1_BYTES:
                    kept = None
            if max_rows is not None and rows >= max_rows:
                break
        try:
            schema = pa.unify_schemas(schemas, promote_options="permissive") if schemas else pa.schema([])
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise _type_conflict(path, exc) from exc
        _check_column_names(schema.names, str(path))
        sink = open_sink(schema)
        if kept is not None:
            for table in kept:
                sink.write(table)
        else:  # second pass with the unified schema, one chunk at a time
            bad = set(bad_lines)
            for n, (chunk, first_line) in enumerate(_iter_line_chunks(path)):
                if n >= chunks_used:
                    break
                data = _decode_chunk(chunk, first_line, path, encoding, "skip", {}, [])
                if bad:
                    lines = data.split(b"\n")
                    for i in range(len(lines)):
                        if first_line + i in bad:
                            lines[i] = b""
                    data = b"\n".join(lines)
                try:
                    sink.write(_parse_json_chunk(data, schema))
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise _type_conflict(path, exc) from exc
        return {"skipped": skipped, "bad_lines": sorted(bad_lines)}

    ds, meta = cached_dataset(path.name, key, build)
    bad = set(meta.get("bad_lines", []))
    return RawRows(ds, _JsonlLocator(path, bad), [str(path)], meta.get("skipped", {}))


class _JsonlLocator:
    """Maps a row index to its line number (blank and skipped lines do not make rows)."""

    def __init__(self, path: Path, bad_lines: set):
        self.path = path
        self.bad = bad_lines

    def __call__(self, index: int) -> str:
        row = -1
        with open_data(self.path) as f:
            for line_no, line in enumerate(f, start=1):
                if not line.strip() or line_no in self.bad:
                    continue
                row += 1
                if row == index:
                    return f"{self.path}:{line_no}"
        return f"{self.path} row {index + 1}"


# ------------------------------------------------------------------------------------------ JSON

def _first_byte(path: Path) -> bytes:
    with open_data(path) as f:
        head = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    return head[:1]


def _too_deep_in(path: Path, text: str, field: str | None) -> DataError:
    """The error for a JSON file whose rows nest too deeply, at the first line that does."""
    data = text.encode("utf-8", "replace")
    at = _nests_deeper(data, MAX_ROW_DEPTH + (2 if field else 1))
    line = data.count(b"\n", 0, at) + 1 if at is not None else None
    return DataError(TOO_DEEP, where=f"{path}:{line}" if line else str(path), hint=TOO_DEEP_HINT)


@_readable
def read_json(path: Path, *, encoding: str = "utf-8", field: str | None = None,
              on_error: str = "error", max_rows: int | None = None) -> RawRows:
    """A JSON array of objects, an object whose ``field`` holds the rows, or JSON Lines."""
    _require_file(path)
    if field is None and _first_byte(path) != b"[":
        try:
            raw = read_jsonl(path, encoding=encoding, on_error="error", max_rows=max_rows)
        except DataError as err:
            if err.message == TOO_DEEP:
                raise
            # one object over several lines: read it whole below
        else:
            if len(raw.dataset) == 1:  # one object holding the rows in a field?
                lists = [k for k, v in raw.dataset[0].items() if isinstance(v, list) and v and isinstance(v[0], dict)]
                if lists and not any(k in ("messages", "conversations", "chosen", "rejected", "prompt") for k in lists):
                    raise DataError("the file holds one JSON object, not a list of rows", where=str(path),
                                    hint=f'set field = "{lists[0]}"')
            return raw
    try:
        with open_data(path) as f:
            text = f.read().decode(encoding)
    except UnicodeDecodeError as exc:
        raise DataError(f"text is not valid {encoding} (byte offset {exc.start})", where=str(path),
                        hint=encoding_hint(encoding)) from None
    try:
        value = json.loads(text)
    except ValueError as exc:
        line = getattr(exc, "lineno", None)
        raise DataError(f"not valid JSON ({getattr(exc, 'msg', exc)})",
                        where=f"{path}:{line}" if line else str(path)) from None
    except RecursionError:
        raise _too_deep_in(path, text, field) from None
    if field is not None:
        if not isinstance(value, dict) or field not in value:
            keys = sorted(value) if isinstance(value, dict) else []
            from ..errors import did_you_mean

            hint = did_you_mean(field, keys)
            raise DataError(f"field {field!r} not found (top-level keys: {', '.join(keys) or 'none'})"
                            + (f"; {hint}" if hint else ""), where=str(path))
        value = value[field]
    if isinstance(value, dict):
        lists = [k for k, v in value.items() if isinstance(v, list)]
        raise DataError("the file holds one JSON object, not a list of rows",
                        where=str(path), hint=f'set field = "{lists[0]}"' if lists else "make it a list of objects")
    if not isinstance(value, list):
        raise DataError(f"expected a list of rows, got {type(value).__name__}", where=str(path))
    rows = [r if isinstance(r, dict) else {"text": r} for r in value[: max_rows or None]]
    if _too_deep_value(rows, MAX_ROW_DEPTH + 1):  # before Arrow: datasets' type inference is exponential in depth
        raise _too_deep_in(path, text, field)
    ds = _dataset_from_rows(rows, str(path))
    return RawRows(ds, lambda i: f"{path} item {i}", [str(path)], {})


def _dataset_from_rows(rows: list, where: str):
    import pyarrow as pa
    from datasets import Dataset

    keys: dict = {}
    for r in rows:  # every row's keys (Dataset.from_list would keep only the first row's)
        keys.update(dict.fromkeys(r))
    try:
        return Dataset.from_dict({k: [r.get(k) for r in rows] for k in keys})
    except OverflowError:
        raise DataError("a number does not fit in 64 bits", where=where,
                        hint="write such numbers as strings") from None
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
        raise DataError(f"rows do not share field types ({exc})", where=where,
                        hint="give each field the same type in every row") from None


# ------------------------------------------------------------------------------------------- CSV

def _check_column_names(names, where: str) -> None:
    """Column names Arrow and datasets can hold: no control characters (a NUL ends a name there)."""
    for name in names:
        if any(ord(c) < 32 or ord(c) == 127 for c in name):
            raise DataError(f"column name {name!r} contains a control character", where=where,
                            hint="rename the column (NUL bytes often mean a UTF-16 file: set encoding = \"utf-16\")")


def _csv_header(path: Path, encoding: str, delimiter: str) -> list[str]:
    import csv

    try:
        with open_data(path) as fb:
            raw = fb.readline()
        line = raw.decode(encoding).lstrip("\ufeff")
    except UnicodeDecodeError as exc:
        raise DataError(f"header is not valid {encoding} (byte 0x{raw[exc.start:exc.start+1].hex()})",
                        where=f"{path}:1", hint=encoding_hint(encoding)) from None
    try:
        names = next(csv.reader([line], delimiter=delimiter), [])
    except csv.Error as exc:
        raise DataError(f"the header row cannot be parsed ({exc})", where=f"{path}:1",
                        hint="the first line must name the columns, separated by the delimiter") from None
    names = [n.strip() for n in names]
    _check_column_names(names, f"{path}:1")
    if not names or not any(names):
        raise DataError("no header row (the first line must name the columns)", where=f"{path}:1")
    return names


def _first_undecodable_line(path: Path, encoding: str) -> tuple[int, str] | None:
    with open_data(path) as f:
        for line_no, line in enumerate(f, start=1):
            try:
                line.decode(encoding)
            except UnicodeDecodeError as exc:
                return line_no, line[exc.start: exc.start + 1].hex()
    return None


def _line_of_text(path: Path, encoding: str, text: str) -> int | None:
    want = text.rstrip("\r\n")
    with open_data(path) as f:
        for line_no, line in enumerate(f, start=1):
            if line.decode(encoding, "replace").rstrip("\r\n") == want:
                return line_no
    return None


@_readable
def read_csv(path: Path, *, encoding: str = "utf-8", delimiter: str | None = None,
             on_error: str = "error", max_rows: int | None = None) -> RawRows:
    """CSV/TSV with a header row; every column is read as a string. Streamed through Arrow."""
    _require_file(path)
    if delimiter is None:
        delimiter = "\t" if ".tsv" in path.suffixes else ","
    key = cache_key("csv", file_fingerprint(path), encoding, delimiter, on_error, max_rows)
    names = _csv_header(path, encoding, delimiter)

    def build(open_sink):
        import pyarrow as pa
        import pyarrow.csv as pcsv

        skipped: dict = {}

        first_bad: list = []

        def invalid_row(row):  # exceptions raised here are swallowed by Arrow: remember and stop
            if on_error == "skip":
                _bump(skipped, "wrong number of columns")
                return "skip"
            first_bad.append((row.actual_columns, row.expected_columns, row.text, row.number))
            return "error"

        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise DataError(f"duplicate column names in the header: {', '.join(sorted(dupes))}", where=f"{path}:1")
        schema = pa.schema([(n, pa.string()) for n in names])
        read = pcsv.ReadOptions(encoding=encoding, block_size=CHUNK_BYTES, skip_rows=1, column_names=names)
        parse = pcsv.ParseOptions(delimiter=delimiter, newlines_in_values=True, invalid_row_handler=invalid_row)
        conv = pcsv.ConvertOptions(column_types=schema, strings_can_be_null=False, quoted_strings_can_be_null=False)
        sink = open_sink(schema)
        try:
            with open_data(path) as stream:
                reader = pcsv.open_csv(stream, read_options=read, parse_options=parse, convert_options=conv)
                for batch in reader:
                    sink.write(pa.Table.from_batches([batch]))
                    if max_rows is not None and sink.rows >= max_rows:
                        break
        except DataError:
            raise
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            if first_bad:
                actual, expected, text, number = first_bad[0]
                number = number or _line_of_text(path, encoding, text)
                raise DataError(f"row has {actual} columns, the header has {expected} ({', '.join(names)}): "
                                f"{text[:80]!r}", where=f"{path}:{number}" if number else str(path),
                                hint='quote fields that contain the delimiter, set delimiter = ..., '
                                     'or on_error = "skip"') from None
            bad = _first_undecodable_line(path, encoding)
            if bad:
                raise DataError(f"text is not valid {encoding} (byte 0x{bad[1]})", where=f"{path}:{bad[0]}",
                                hint=encoding_hint(encoding)) from None
            raise DataError(f"could not parse CSV ({exc})", where=str(path)) from None
        return {"skipped": skipped}

    ds, meta = cached_dataset(path.name, key, build)
    return RawRows(ds, lambda i: f"{path} row {i + 1}", [str(path)], meta.get("skipped", {}))


# --------------------------------------------------------------------------------------- Parquet

@_readable
def read_parquet(path: Path, *, max_rows: int | None = None) -> RawRows:
    """A Parquet file, streamed batch by batch into the Arrow cache."""
    _require_file(path)
    key = cache_key("parquet", file_fingerprint(path), max_rows)

    def build(open_sink):
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(str(path))
        except Exception as exc:
            raise DataError(f"not a readable Parquet file ({exc})", where=str(path)) from None
        sink = open_sink(pf.schema_arrow)
        import pyarrow as pa

        for batch in pf.iter_batches(batch_size=65_536):
            sink.write(pa.Table.from_batches([batch]))
            if max_rows is not None and sink.rows >= max_rows:
                break
        return {}

    ds, _ = cached_dataset(path.name, key, build)
    return RawRows(ds, lambda i: f"{path} row {i + 1}", [str(path)], {})


# ------------------------------------------------------------------------------ text directories

@_readable
def read_text_dir(path: Path, *, extensions=TEXT_EXTENSIONS, recursive: bool = True,
                  encoding: str = "utf-8", on_error: str = "error", max_rows: int | None = None) -> RawRows:
    """One row per document file: ``{"text": contents, "file": relative path}``."""
    _require_file(path, "directory")
    if not path.is_dir():
        raise DataError("expected a directory of text files", where=str(path))
    exts = tuple(e if e.startswith(".") else f".{e}" for e in extensions)
    pattern = "**/*" if recursive else "*"
    files = sorted(p for p in path.glob(pattern) if p.is_file() and p.suffix.lower() in exts)
    if max_rows is not None:
        files = files[:max_rows]
    if not files:
        raise DataError(f"no {'/'.join(exts)} files in the directory", where=str(path),
                        hint="set extensions = [...] to read other files")
    key = cache_key("text_dir", [file_fingerprint(p) for p in files], encoding, on_error)

    def build(open_sink):
        import pyarrow as pa

        skipped: dict = {}
        kept: list = []
        schema = pa.schema([("text", pa.string()), ("file", pa.string())])
        sink = open_sink(schema)
        texts, names = [], []
        for p in files:
            try:
                text = p.read_bytes().decode(encoding)
            except UnicodeDecodeError as exc:
                if on_error != "skip":
                    raise DataError(f"text is not valid {encoding} (byte offset {exc.start})", where=str(p),
                                    hint=encoding_hint(encoding)) from None
                _bump(skipped, f"not valid {encoding}")
                continue
            texts.append(text)
            names.append(str(p.relative_to(path)))
            kept.append(str(p))
            if len(texts) >= 1000:
                sink.write(pa.table({"text": texts, "file": names}, schema=schema))
                texts, names = [], []
        sink.write(pa.table({"text": texts, "file": names}, schema=schema))
        return {"skipped": skipped, "files": kept}

    ds, meta = cached_dataset(path.name, key, build)
    kept = meta.get("files", [str(p) for p in files])
    return RawRows(ds, lambda i: kept[i] if i < len(kept) else f"{path} document {i + 1}",
                   [str(p) for p in files], meta.get("skipped", {}))


# ---------------------------------------------------------------------------------------- inline

def read_inline(rows: list, *, where: str = "rows", max_rows: int | None = None) -> RawRows:
    """Rows written in the recipe itself (``rows = [{...}, ...]``)."""
    if not isinstance(rows, list):
        raise DataError("rows must be a list of tables", where=where)
    for i, r in enumerate(rows):
        if not isinstance(r, dict):
            raise DataError(f"rows[{i}] must be a table {{...}}, got {type(r).__name__}", where=where)
    rows = rows[: max_rows or None]
    return RawRows(_dataset_from_rows(rows, where), lambda i: f"{where}[{i}]", [], {})


# --------------------------------------------------------------------------- Hugging Face datasets

def _is_saved_dataset(path: Path) -> bool:
    return any((path / n).exists() for n in ("state.json", "dataset_dict.json", "dataset_info.json"))


def read_hf(*, id: str | None = None, path: Path | None = None, config: str | None = None,
            split: str = "train", revision: str | None = None, data_files=None,
            max_rows: int | None = None) -> RawRows:
    """A hub dataset (``datasets.load_dataset``) or a local dataset directory (works offline)."""
    import datasets

    label = str(path) if path is not None else str(id)
    try:
        if path is not None:
            _require_file(path, "dataset directory")
            if _is_saved_dataset(path):
                ds = datasets.load_from_disk(str(path))
            else:
                ds = datasets.load_dataset(str(path), name=config, data_files=data_files)
        else:
            ds = datasets.load_dataset(id, name=config, revision=revision, data_files=data_files)
    except DataError:
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"could not load dataset {label!r}: {first}",
                        hint="check the id/config, or point path = at a local dataset directory (offline)") from None
    if isinstance(ds, (datasets.DatasetDict, dict)):
        if split not in ds:
            from ..errors import did_you_mean

            hint = did_you_mean(split, list(ds))
            raise DataError(f"dataset {label!r} has no split {split!r} (splits: {', '.join(ds)})"
                            + (f"; {hint}" if hint else ""), hint="set dataset_split = ...")
        ds = ds[split]
    if max_rows is not None and len(ds) > max_rows:
        ds = ds.select(range(max_rows))
    files = [f["filename"] for f in getattr(ds, "cache_files", [])]
    return RawRows(ds, lambda i: f"{label} [{split}] row {i + 1}", files if path is not None else [], {})
