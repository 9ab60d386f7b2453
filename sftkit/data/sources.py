"""Factories of the built-in sources (registered in :mod:`sftkit.builtin.sources`).

Each is ``factory(options, ctx)`` -> :class:`sftkit.data.readers.RawRows`.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from ..records import TEXT_EXTENSIONS
from . import readers

EXTENSIONS = {
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "csv",
    ".parquet": "parquet", ".pq": "parquet",
}


def _on_error(ctx) -> str:
    return getattr(ctx, "on_error", "error")


def _path(options: dict, ctx) -> Path:
    return ctx.resolve(options["path"])


def jsonl_source(options: dict, ctx):
    return readers.read_jsonl(_path(options, ctx), encoding=options.get("encoding", "utf-8"),
                              on_error=_on_error(ctx), max_rows=ctx.max_rows)


def json_source(options: dict, ctx):
    return readers.read_json(_path(options, ctx), encoding=options.get("encoding", "utf-8"),
                             field=options.get("field"), on_error=_on_error(ctx), max_rows=ctx.max_rows)


def csv_source(options: dict, ctx):
    return readers.read_csv(_path(options, ctx), encoding=options.get("encoding", "utf-8"),
                            delimiter=options.get("delimiter"), on_error=_on_error(ctx), max_rows=ctx.max_rows)


def parquet_source(options: dict, ctx):
    return readers.read_parquet(_path(options, ctx), max_rows=ctx.max_rows)


def text_dir_source(options: dict, ctx):
    return readers.read_text_dir(_path(options, ctx), extensions=options.get("extensions", TEXT_EXTENSIONS),
                                 recursive=options.get("recursive", True), encoding=options.get("encoding", "utf-8"),
                                 on_error=_on_error(ctx), max_rows=ctx.max_rows)


def inline_source(options: dict, ctx):
    return readers.read_inline(options.get("rows", []), where=f"{ctx.name} rows", max_rows=ctx.max_rows)


def hf_source(options: dict, ctx):
    if bool(options.get("id")) == bool(options.get("path")):
        raise DataError("give either id (a hub dataset) or path (a local dataset directory)", where=ctx.name)
    path = ctx.resolve(options["path"]) if options.get("path") else None
    return readers.read_hf(id=options.get("id"), path=path, config=options.get("config"),
                           split=options.get("dataset_split", "train"), revision=options.get("revision"),
                           data_files=options.get("data_files"), max_rows=ctx.max_rows)


def file_source(options: dict, ctx):
    """Pick the reader from the path: a directory of text files, or a file by its extension."""
    path = _path(options, ctx)
    if path.is_dir():
        if readers._is_saved_dataset(path):
            return hf_source({"path": options["path"], **{k: v for k, v in options.items() if k == "dataset_split"}}, ctx)
        return text_dir_source(options, ctx)
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    kind = EXTENSIONS.get(suffixes[-1] if suffixes else "")
    if kind is None:
        raise DataError(f"cannot tell the file type of {path.name} from its extension "
                        f"(known: {', '.join(EXTENSIONS)})", where=ctx.name,
                        hint='use source = "jsonl", "json", "csv" or "parquet"')
    opts = dict(options)
    if kind == "csv" and ".tsv" in suffixes and "delimiter" not in opts:
        opts["delimiter"] = "\t"
    return {"jsonl": jsonl_source, "json": json_source, "csv": csv_source, "parquet": parquet_source}[kind](opts, ctx)
