"""Built-in sources (a plugin like any other). Factories live in :mod:`sftkit.data.sources`.

- ``file``: any local file by extension (.jsonl/.ndjson/.json/.csv/.tsv/.parquet, optionally .gz for
  JSON Lines), or a directory (text files, or a saved Hugging Face dataset).
- ``jsonl``, ``json``, ``csv``, ``parquet``: one local file of that type.
- ``text_dir``: a directory of .txt/.md files, one document (row ``{"text": ...}``) each.
- ``inline``: rows written in the recipe (``rows = [{prompt = "...", completion = "..."}]``).
- ``arena``: the votes of an ``sftkit arena`` database as preference pairs or KTO rows.
- ``hf``: a Hugging Face dataset: a hub ``id`` (+ config, dataset_split, revision) or a local
  ``path`` (a ``save_to_disk`` directory or a folder of data files; works offline).

Paths may be relative to the recipe, absolute, or ``package://import_name/path``.
"""

from sftkit import hookimpl
from sftkit.records import TEXT_EXTENSIONS

_PATH = {"type": "string", "minLength": 1, "x-sftkit-path": True,
         "description": "File path: relative to the recipe, absolute, or package://import_name/path."}
_ENCODING = {"type": "string", "default": "utf-8",
             "description": "Text encoding of the file, e.g. utf-8 or latin-1 (cp1252 for Windows exports)."}
_DELIMITER = {"type": "string", "minLength": 1, "maxLength": 1,
              "description": "CSV field separator (default: , for .csv and a tab for .tsv)."}
_FIELD = {"type": "string", "description": "JSON only: the key of a top-level object that holds the list of rows."}


def _schema(props: dict, required=("path",), doc: str = "") -> dict:
    schema = {"type": "object", "properties": props, "additionalProperties": False, "required": list(required)}
    if doc:
        schema["description"] = doc
    return schema


SOURCES = {
    "file": ("sftkit.data.sources:file_source", _schema(
        {"path": {**_PATH, "description": "A .jsonl/.ndjson/.json/.csv/.tsv/.parquet file (JSON Lines may be .gz), "
                  "or a directory of .txt/.md files. Relative to the recipe, absolute, or package://..."},
         "encoding": _ENCODING, "delimiter": _DELIMITER, "field": _FIELD,
         "extensions": {"type": "array", "items": {"type": "string"}, "default": list(TEXT_EXTENSIONS),
                        "description": "Directories only: file extensions to read."},
         "recursive": {"type": "boolean", "default": True, "description": "Directories only: include subdirectories."}}),
        "Any local file, its type taken from the extension; or a directory of text files."),
    "jsonl": ("sftkit.data.sources:jsonl_source", _schema({"path": _PATH, "encoding": _ENCODING}),
              "A JSON Lines file (one object per line; .gz allowed), streamed through Arrow."),
    "json": ("sftkit.data.sources:json_source", _schema({"path": _PATH, "encoding": _ENCODING, "field": _FIELD}),
             "A JSON file holding a list of rows (or an object whose `field` holds it)."),
    "csv": ("sftkit.data.sources:csv_source", _schema({"path": _PATH, "encoding": _ENCODING, "delimiter": _DELIMITER}),
            "A CSV or TSV file with a header row; every column is read as text."),
    "parquet": ("sftkit.data.sources:parquet_source", _schema({"path": _PATH}), "A Parquet file."),
    "text_dir": ("sftkit.data.sources:text_dir_source", _schema(
        {"path": {**_PATH, "description": "Directory of documents (relative to the recipe, or package://...)."},
         "extensions": {"type": "array", "items": {"type": "string"}, "default": list(TEXT_EXTENSIONS),
                        "description": "File extensions to read."},
         "recursive": {"type": "boolean", "default": True, "description": "Include subdirectories."},
         "encoding": _ENCODING}),
        "A directory of .txt/.md files, one document per file (rows {text, file}) for domain training."),
    "inline": ("sftkit.data.sources:inline_source", _schema(
        {"rows": {"type": "array", "items": {"type": "object"}, "minItems": 1,
                  "description": "The rows themselves, e.g. [{prompt = \"Hi\", completion = \"Hello!\"}]."}},
        required=("rows",)), "Rows written inline in the recipe."),
    "hf": ("sftkit.data.sources:hf_source", {
        "type": "object", "additionalProperties": False,
        "oneOf": [{"required": ["id"]}, {"required": ["path"]}],
        "properties": {
            "id": {"type": "string", "minLength": 1, "description": "Hub dataset id, e.g. \"tatsu-lab/alpaca\" (needs the network or the HF cache)."},
            "path": {**_PATH, "description": "A local dataset directory: save_to_disk output or a folder of data files (offline)."},
            "config": {"type": "string", "description": "Dataset configuration (subset) name."},
            "dataset_split": {"type": "string", "default": "train", "description": "Which split of the dataset to read (e.g. train, test)."},
            "revision": {"type": "string", "description": "Hub revision: branch, tag or commit."},
            "data_files": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}},
                                     {"type": "object"}], "description": "Data files to load (passed to datasets.load_dataset)."},
        }}, "A Hugging Face dataset: hub id via datasets.load_dataset, or a local dataset directory."),
    "arena": ("sftkit.arena.export:arena_source", _schema(
        {"path": {**_PATH, "description": "The arena directory `sftkit arena` wrote (or its arena.sqlite)."},
         "kind": {"enum": ["pairs", "kto"], "default": "pairs",
                  "description": "pairs: prompt/chosen/rejected (DPO); kto: prompt/completion/label good|bad."},
         "min_votes": {"type": "integer", "minimum": 1, "default": 1,
                       "description": "Votes a pair of answers (pairs) or an answer (kto) needs before it is used."},
         "exclude_ties": {"type": "boolean", "default": True, "description": "Leave tie votes out."},
         "prompt_set": {"type": "string", "description": "Only votes on prompts of this set (e.g. a prompts file's name)."}}),
        "Votes from `sftkit arena`: written better answers and majority winners as preference pairs or KTO rows."),
}


CHECKS = {"hf": "sftkit.data.checks:hf_check", "file": "sftkit.data.checks:file_check"}
# the canonical kind a source always gives (validate checks it against the strategy without reading data)
EMITS = {"text_dir": {"emits": "text"}}


@hookimpl
def sftkit_register_sources(register):
    for name, (factory, schema, doc) in SOURCES.items():
        register(name, factory, schema=schema, doc=doc, check=CHECKS.get(name), **EMITS.get(name, {}))
