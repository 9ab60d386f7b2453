"""sftkit.jsonl: the one reader of small JSON-lines files (items, replay text, logs, first rows)."""

import gzip

import pytest

from sftkit.errors import DataError
from sftkit.jsonl import read_jsonl


def test_errors_name_file_and_line_and_skip_leaves_bad_lines_out(tmp_path):
    path = tmp_path / "items.jsonl"
    path.write_text('{"a": 1}\n\n[2]\n{"a": \n{"a": 3}\n')
    with pytest.raises(DataError, match=r"items.jsonl:3: a JSON line must be an object"):
        read_jsonl(path)
    assert read_jsonl(path, on_error="skip") == [{"a": 1}, {"a": 3}]
    with pytest.raises(DataError, match=r"items.jsonl:4: not valid JSON"):
        read_jsonl(path, objects=False)
    assert read_jsonl(path, objects=False, limit=2) == [{"a": 1}, [2]]


def test_gzip(tmp_path):
    path = tmp_path / "items.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write('{"prompt": "hi"}\n')
    assert read_jsonl(path) == [{"prompt": "hi"}]

