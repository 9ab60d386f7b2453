"""Input record formats are components: a plugin adds one (``sftkit_register_formats``) and recipes
name it in ``[[data]] format``, validated, detected and loaded like sftkit's own."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
import chatlog_plugin  # noqa: E402

from sftkit import hookimpl  # noqa: E402
from sftkit.errors import DataError, PluginError  # noqa: E402
from sftkit.plugins import make_host  # noqa: E402
from sftkit.schema import composed_schema  # noqa: E402
from sftkit.validate import validate_file  # noqa: E402

ROWS = [{"input": "Hi", "output": "Hello there"}, {"input": "Bye", "output": "See you"}]
BUILTIN = ["alpaca", "classification", "labeled", "messages", "preference", "prompt_completion", "sharegpt", "text"]


class Broken:
    @hookimpl
    def sftkit_register_formats(self, register):
        register("raises_log", lambda row: {"messages": [{"role": "user", "content": row["question"]}]},
                 emits="messages", fields=["input"])
        register("wrong_kind", lambda row: {"text": row["input"]}, emits="messages", fields=["input"])


class Greedy:
    """A format asking for a high priority on fields a built-in format already reads."""

    @hookimpl
    def sftkit_register_formats(self, register):
        register("greedy", lambda row: {"text": row["prompt"]}, emits="text", fields=["prompt", "completion"],
                 detect=1000)


def host(*plugins):
    return make_host(entry_points=False, extra=(("chatlog", chatlog_plugin), *plugins))


def load(tmp_path, rows, the_host=None, **entry):
    from sftkit.data import load_data

    recipe = {"recipe": {"name": "t", "seed": 1}, "dataset": {"shuffle": False, "dedupe": False},
              "data": [{"source": "inline", "rows": rows, **entry}]}
    return load_data(recipe, tmp_path, host=the_host or host())


def recipe(tmp_path, fmt: str, strategy: str = "instruction"):
    path = tmp_path / "r.toml"
    path.write_text('[recipe]\nname = "r"\n[model]\nname = "org/m"\n[[data]]\nsource = "inline"\n'
                    'rows = [{input = "Hi", output = "Hello"}]\n'
                    f'format = "{fmt}"\n[strategy]\nname = "{strategy}"\n', encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SFTKIT_CACHE", str(tmp_path / "cache"))


def test_the_example_plugin_conforms():
    from sftkit.testing import check_plugin

    check_plugin(chatlog_plugin)


def test_builtin_formats_are_registered_like_a_plugins():
    registry = host().registry
    assert [n for n in registry.names("formats") if n != "openai_chat_log"] == BUILTIN
    assert all(registry.is_builtin(registry.find("formats", n)) for n in BUILTIN)
    assert not registry.is_builtin(registry.find("formats", "openai_chat_log"))


def test_a_plugin_format_validates_and_loads(tmp_path):
    assert validate_file(recipe(tmp_path, "openai_chat_log"), host()) == []
    bundle = load(tmp_path, ROWS, format="openai_chat_log")
    assert bundle.kind == "messages"
    assert bundle.stats["sources"]["inline"]["format"] == "openai_chat_log"
    assert bundle.train[0]["messages"] == [{"role": "user", "content": "Hi"},
                                           {"role": "assistant", "content": "Hello there"}]
    assert validate_file(recipe(tmp_path, "chatlog:openai_chat_log"), host()) == []  # plugin:name too


def test_auto_detection_picks_a_plugin_format_after_sftkits_own(tmp_path):
    assert load(tmp_path, ROWS).stats["sources"]["inline"]["format"] == "openai_chat_log"
    pairs = [{"prompt": "Hi", "completion": "Hello"}, {"prompt": "Yo", "completion": "Hey"}]
    loaded = load(tmp_path, pairs, the_host=host(("greedy", Greedy())))  # its detect=1000 does not win
    assert loaded.stats["sources"]["inline"]["format"] == "prompt_completion"


def test_a_misspelled_format_gets_did_you_mean(tmp_path):
    path = recipe(tmp_path, "openai_chat_lgo")
    out = [p.format() for p in validate_file(path, host())]
    assert len(out) == 1
    assert out[0].startswith(f"{path}:8:1: data[0].format: unknown format 'openai_chat_lgo'; "
                             "did you mean \"openai_chat_log\"?")
    out = [p.format() for p in validate_file(recipe(tmp_path, "alpacca"), host())]
    assert "unknown format 'alpacca'; did you mean \"alpaca\"?" in out[0]


def test_validate_knows_the_kind_a_plugin_format_gives(tmp_path):
    out = [p.format() for p in validate_file(recipe(tmp_path, "openai_chat_log", "classification"), host())]
    assert len(out) == 1 and "trains on classification data, but this entry is messages data" in out[0]


def test_schema_lists_the_registered_formats():
    schema = composed_schema(host().registry)
    enum = schema["properties"]["data"]["items"]["properties"]["format"]["enum"]
    assert enum[0] == "auto" and set(BUILTIN) | {"openai_chat_log"} == set(enum[1:])


def test_a_bad_row_of_a_plugin_format_is_located_or_skipped(tmp_path):
    rows = [*ROWS, {"input": "", "output": "x"}]
    with pytest.raises(DataError, match=r'inline rows\[2\]: field "input" must be non-empty text'):
        load(tmp_path, rows, format="openai_chat_log")
    bundle = load(tmp_path, rows, format="openai_chat_log", on_error="skip")
    assert bundle.stats["sources"]["inline"]["skipped"] == {'empty "input"': 1}


@pytest.mark.parametrize("fmt, message", [
    ("raises_log", "inline rows[0]: format 'raises_log' from plugin 'broken' failed on this row: KeyError: 'question'"),
    ("wrong_kind", "inline rows[0]: format 'wrong_kind' from plugin 'broken' returned a record without 'messages'"),
])
def test_a_failing_plugin_format_is_one_line_naming_the_plugin(tmp_path, fmt, message):
    for on_error in ("error", "skip"):  # the plugin's fault, never a skipped row
        with pytest.raises(PluginError) as err:
            load(tmp_path, ROWS, the_host=host(("broken", Broken())), format=fmt, on_error=on_error)
        assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_a_missing_field_names_the_plugin_formats_fields(tmp_path):
    with pytest.raises(DataError, match=r'format openai_chat_log needs field\(s\) "output" \(did you mean "outptu"'):
        load(tmp_path, [{"input": "Hi", "outptu": "Hello"}], format="openai_chat_log")


@pytest.mark.parametrize("meta, problem", [
    ({"fields": ["input"]}, "emits= is required"),
    ({"emits": "chat", "fields": ["input"]}, "emits='chat' is not a data kind"),
    ({"emits": "messages"}, "fields= must be a non-empty list"),
    ({"emits": "messages", "fields": ["input"], "detect": "high"}, "detect='high' must be a number"),
    ({"emits": "messages", "fields": ["input"], "priority": 3}, "unknown registration keyword(s) priority"),
])
def test_a_malformed_format_registration_fails_the_plugin(meta, problem):
    class Bad:
        @hookimpl
        def sftkit_register_formats(self, register):
            register("bad_log", lambda row: row, **meta)

    the_host = make_host(entry_points=False, extra=(("bad", Bad()),))
    info = next(p for p in the_host.plugins if p.name == "bad")
    assert info.error is not None and problem in info.error and "format 'bad_log'" in info.error
    assert the_host.registry.find("formats", "bad_log") is None
