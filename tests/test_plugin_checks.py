"""A component's ``check=`` as a plugin author expects it, and sources declaring the kind they emit."""

from __future__ import annotations

from pathlib import Path

from sftkit import hookimpl
from sftkit.errors import Problem
from sftkit.plugins import make_host
from sftkit.validate import validate_file

SEEN: list = []


def check_bounded(options, ctx):
    """Records what it was given; complains about a relative path and about another table."""
    SEEN.append((options, ctx.table_path))
    problems = []
    if options["rounds"] > options["limit"]:
        problems.append(Problem(f"rounds {options['rounds']} exceed limit {options['limit']}", path="rounds"))
    if options.get("whole_table"):
        problems.append(Problem("this table as a whole"))
    if options.get("elsewhere"):
        problems.append(Problem("max_length too small for this strategy", path="/training.max_length"))
    return problems


class CheckedPlugin:
    @hookimpl
    def sftkit_register_strategies(self, register):
        register("bounded", "json:loads", doc="x", accepts=["messages"], check=check_bounded,
                 schema={"type": "object", "additionalProperties": False, "properties": {
                     "rounds": {"type": "integer"}, "limit": {"type": "integer", "default": 4},
                     "whole_table": {"type": "boolean"}, "elsewhere": {"type": "boolean"}}})

    @hookimpl
    def sftkit_register_sources(self, register):
        register("notes", "json:loads", doc="x", emits="text",
                 schema={"type": "object", "properties": {"topic": {"type": "string"}}, "additionalProperties": False})
        register("pairs", "json:loads", doc="x", emits="messages", check=check_pairs,
                 schema={"type": "object", "properties": {"n": {"type": "integer"}}, "additionalProperties": False})


def check_pairs(options, ctx):
    return [Problem("n must be even", path="n")] if options.get("n", 0) % 2 else []


def host():
    return make_host(entry_points=False, extra=(("checked", CheckedPlugin()),))


def write(tmp_path: Path, data: str, strategy: str, training: str = "") -> Path:
    path = tmp_path / "r.toml"
    path.write_text(f'[recipe]\nname = "r"\n[model]\nname = "org/model"\n{data}\n[strategy]\n{strategy}\n{training}')
    return path


def messages(problems) -> list[str]:
    return [p.format() for p in problems]


def test_check_gets_the_factory_options_and_relative_paths_are_located(tmp_path):
    SEEN.clear()
    recipe = write(tmp_path, '[[data]]\nsource = "pairs"\nn = 2', 'name = "bounded"\nrounds = 9\nwhole_table = true')
    out = messages(validate_file(recipe, host()))
    assert out == [f"{recipe}:8:2: strategy: this table as a whole",
                   f"{recipe}:10:1: strategy.rounds: rounds 9 exceed limit 4"]
    # exactly the factory's options: no "name", the schema's default for "limit" filled
    assert SEEN == [({"rounds": 9, "whole_table": True, "limit": 4}, "strategy")]


def test_an_absolute_path_points_elsewhere(tmp_path):
    recipe = write(tmp_path, '[[data]]\nsource = "pairs"', 'name = "bounded"\nrounds = 1\nelsewhere = true',
                   "[training]\nmax_length = 8\n")
    assert messages(validate_file(recipe, host())) == [
        f"{recipe}:12:1: training.max_length: max_length too small for this strategy"]


def test_every_tables_check_runs_when_another_table_has_schema_problems(tmp_path):
    recipe = write(tmp_path, '[[data]]\nsource = "pairs"\nn = 3\n[[data]]\nsource = "pairs"\nbogus = 1',
                   'name = "bounded"\nrounds = 9')
    out = messages(validate_file(recipe, host()))
    assert out[0] == f"{recipe}:7:1: data[0].n: n must be even"
    assert out[1].startswith(f"{recipe}:10:1: data[1].bogus: unknown key 'bogus'")
    assert out[2:] == [f"{recipe}:13:1: strategy.rounds: rounds 9 exceed limit 4"]


def test_a_source_declaring_its_kind_is_checked_against_the_strategy(tmp_path):
    recipe = write(tmp_path, '[[data]]\nsource = "notes"', 'name = "bounded"\nrounds = 1')
    out = messages(validate_file(recipe, host()))
    assert out == [f"{recipe}:5:3: data[0]: strategy 'bounded' trains on messages data, but this entry is text "
                   "data; source 'notes' from plugin 'checked' declares emits='text', rows of text (give data in one "
                   "of: messages, or set format explicitly)"]
    explicit = write(tmp_path, '[[data]]\nsource = "notes"\nformat = "prompt_completion"', 'name = "bounded"\nrounds = 1')
    assert validate_file(explicit, host()) == []  # an explicit format says what the rows are


def test_malformed_kind_metadata_fails_the_plugin():
    class BadMeta:
        @hookimpl
        def sftkit_register_sources(self, register):
            register("odd", "json:loads", emits="tabular")

    h = make_host(builtins=False, entry_points=False, extra=(("badmeta", BadMeta()),))
    assert h.problems() == ["plugin 'badmeta' failed to load: in sftkit_register_sources: source 'odd': "
                            "emits='tabular' is not a data kind (one of: messages, text, preference, labeled, "
                            "classification)"]


def test_init_uses_a_plugin_strategys_starter(tmp_path):
    from sftkit.starter import starter_recipe

    class Summarise:
        @hookimpl
        def sftkit_register_strategies(self, register):
            register("summarise", "json:loads", doc="x", accepts=["messages"],
                     starter={"model": "org/summariser", "rows": [{"prompt": "Summarise: a b c", "completion": "abc"}],
                              "template": False},
                     schema={"type": "object", "additionalProperties": False,
                             "properties": {"ratio": {"type": "number", "default": 0.2}}})

    h = make_host(entry_points=False, extra=(("summ", Summarise()),))
    text = starter_recipe("summarise", "mine", h)
    path = tmp_path / "mine.toml"
    path.write_text(text)
    assert 'name = "org/summariser"' in text and "Summarise: a b c" in text and "ratio = 0.2" in text
    assert "[template]" not in text
    assert validate_file(path, h) == []
