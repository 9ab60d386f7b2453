"""``[[data]] transforms``: record transforms from plugins, applied to canonical records in order."""

from __future__ import annotations

import pytest

from sftkit import hookimpl
from sftkit.errors import DataError
from sftkit.plugins import make_host
from sftkit.validate import validate_file


def shout(options):
    def transform(record):
        record["messages"] = [{**m, "content": m["content"].upper()} if m["role"] == "assistant" else m
                              for m in record["messages"]]
        return record
    return transform


def drop_short(options):
    return lambda record: record if len(record["messages"][-1]["content"]) >= options["min_chars"] else None


def broken(options):
    return lambda record: {"text": "wrong kind"}


class Transforms:
    @hookimpl
    def sftkit_register_transforms(self, register):
        register("shout", shout, doc="Upper-case the answers.")
        register("drop_short", drop_short, doc="Drop short answers.",
                 schema={"type": "object", "additionalProperties": False,
                         "properties": {"min_chars": {"type": "integer", "minimum": 1, "default": 5}}})
        register("broken", broken, doc="Returns a record of another kind.")


ROWS = [{"prompt": "Hi", "completion": "Hello there"}, {"prompt": "Yo", "completion": "Hey"},
        {"prompt": "Hey", "completion": "Good morning"}]


def host():
    return make_host(entry_points=False, extra=(("tx", Transforms()),))


def load(tmp_path, transforms):
    from sftkit.data import load_data

    return load_data({"data": [{"source": "inline", "rows": ROWS, "transforms": transforms}]}, tmp_path, host=host())


def test_transforms_apply_in_order_and_dropped_rows_are_counted(tmp_path):
    bundle = load(tmp_path, [{"name": "drop_short", "min_chars": 4}, "shout"])
    answers = sorted(r["messages"][-1]["content"] for r in bundle.train)
    assert answers == ["GOOD MORNING", "HELLO THERE"]
    skipped = next(iter(bundle.stats["sources"].values()))["skipped"]
    assert skipped == {"dropped by transform 'drop_short' from plugin 'tx'": 1}


def test_a_transform_returning_another_kind_is_a_located_error(tmp_path):
    with pytest.raises(DataError, match=r"inline rows\[0\]: transform 'broken' from plugin 'tx' returned dict without "
                                        r"messages: a transform returns a messages record"):
        load(tmp_path, ["broken"])


def test_validate_checks_transform_names_and_options(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('[recipe]\nname = "r"\n[model]\nname = "org/m"\n[[data]]\nsource = "inline"\n'
                    'rows = [{prompt = "a", completion = "b"}]\n'
                    'transforms = ["shuot", {name = "drop_short", min_char = 3}]\n[strategy]\nname = "instruction"\n')
    out = [p.format() for p in validate_file(path, host())]
    assert out[0].startswith(f"{path}:8:1: data[0].transforms[0]: unknown transform 'shuot'; did you mean \"shout\"?")
    assert out[1].startswith(f"{path}:8:1: data[0].transforms[1].min_char: unknown key 'min_char'; "
                             "did you mean \"min_chars\"?")
    assert len(out) == 2
