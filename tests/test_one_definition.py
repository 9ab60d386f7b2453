"""One definition each: a rule sftkit needs in several places is written once and imported.

Read statically from the source (nothing is imported), so a copy that creeps back in fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "sftkit"


def _trees():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(PACKAGE.parent).as_posix(), ast.parse(path.read_text(encoding="utf-8"))


def _defined(name: str) -> list[str]:
    """Where ``name`` is assigned or defined as a function (any scope)."""
    found = []
    for rel, tree in _trees():
        for node in ast.walk(tree):
            targets = node.targets if isinstance(node, ast.Assign) else \
                [node.target] if isinstance(node, ast.AnnAssign) else []
            if any(isinstance(t, ast.Name) and t.id == name for t in targets) or \
                    (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name):
                found.append(rel)
    return found


def test_shared_constants_and_rules_are_defined_once():
    assert _defined("IGNORE_INDEX") == ["sftkit/records.py"]
    assert _defined("TEXT_EXTENSIONS") == ["sftkit/records.py"]
    assert _defined("END_OF_TURN") == ["sftkit/modeling/stops.py"]
    assert _defined("stop_token_ids") == ["sftkit/modeling/stops.py"]
    assert _defined("factory_options") == ["sftkit/config.py"]
    assert _defined("shape_hint") == ["sftkit/strategies/selection.py"]
    assert len(_defined("CORE_COMMANDS")) == 1


def test_record_formats_are_declared_beside_their_converters():
    """An input format (its kind, fields, converter, detection) is one declaration, registered as a
    component: no table of formats elsewhere, and the core names none of them."""
    for table in ("FORMAT_KINDS", "FORMAT_FIELDS", "DETECT_ORDER", "CONVERTERS"):
        assert _defined(table) == []
    named = {rel for rel, tree in _trees() for node in ast.walk(tree)
             if isinstance(node, ast.Constant) and node.value == "sharegpt"}
    assert named == {"sftkit/data/formats.py"}


def test_no_literal_ignore_index():
    """Labels the loss skips are IGNORE_INDEX, never a bare -100."""
    literal = []
    for rel, tree in _trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and \
                    isinstance(node.operand, ast.Constant) and node.operand.value == 100:
                literal.append(f"{rel}:{node.lineno}")
    literal = [w for w in literal if not w.startswith("sftkit/records.py:")]  # the definition
    assert literal == []


def test_a_bad_json_line_reads_the_same_in_both_readers(tmp_path):
    import pytest

    from sftkit.data.readers import read_jsonl as read_large
    from sftkit.errors import DataError
    from sftkit.jsonl import read_jsonl as read_small

    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n[2]\n', encoding="utf-8")
    with pytest.raises(DataError) as small:
        read_small(path)
    with pytest.raises(DataError) as large:
        read_large(path)
    problem = "a JSON line must be an object {...}, got list"
    assert problem in str(small.value) and problem in str(large.value)


def test_replay_directories_read_the_text_files_text_dir_reads(tmp_path):
    from sftkit.records import TEXT_EXTENSIONS
    from sftkit.strategies.domain import read_replay

    for i, ext in enumerate(TEXT_EXTENSIONS):
        (tmp_path / f"doc{i}{ext}").write_text(f"document {i}", encoding="utf-8")
    (tmp_path / "notes.rst").write_text("not a text file of sftkit's", encoding="utf-8")
    assert read_replay(tmp_path, "text") == [f"document {i}" for i in range(len(TEXT_EXTENSIONS))]
