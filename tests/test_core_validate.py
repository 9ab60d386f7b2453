"""sftkit validate: every bad input gets a located one-line message, all problems at once."""

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
import demo_plugin  # noqa: E402

from sftkit import plugins  # noqa: E402
from sftkit.cli import cli  # noqa: E402

GOOD = """\
[recipe]
name = "good"

[model]
name = "org/some-model"

[[data]]
source = "demo_file"
path = "train.jsonl"

[strategy]
name = "demo_sft"

[training]
max_steps = 3
learning_rate = 1e-4
"""


@pytest.fixture
def demo_host():
    plugins._HOST = plugins.make_host(builtins=False, entry_points=False, extra=(("demo", demo_plugin),))
    yield plugins._HOST


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    (tmp_path / "train.jsonl").write_text('{"prompt": "hi", "completion": "hello"}\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(*args):
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_good_recipe_is_valid(demo_host, workdir):
    write(workdir / "r.toml", GOOD)
    code, out = run("validate", "r.toml")
    assert code == 0, out
    assert "1 recipe(s) valid" in out


def test_reports_all_problems_with_positions(demo_host, workdir):
    text = GOOD.replace('name = "good"', 'name = "good"\nseeed = 3').replace("learning_rate = 1e-4", "learning_rate = -1\nmax_steps2 = 1")
    write(workdir / "r.toml", text)
    code, out = run("validate", "r.toml")
    assert code == 1
    assert 'r.toml:3:1: recipe.seeed: unknown key \'seeed\'; did you mean "seed"?' in out
    assert "training.learning_rate: must be > 0, got -1" in out
    assert "training.max_steps2: unknown key" in out
    assert "3 problem(s) in 1 of 1 recipe(s)" in out
    assert "Traceback" not in out


def test_malformed_toml_line_and_column(demo_host, workdir):
    write(workdir / "r.toml", GOOD.replace('name = "demo_sft"', 'name = "demo_sft'))
    code, out = run("validate", "r.toml")
    assert code == 1
    assert "r.toml:12:" in out and "malformed TOML" in out


def test_duplicate_keys(demo_host, workdir):
    write(workdir / "r.toml", GOOD.replace("max_steps = 3", "max_steps = 3\nmax_steps = 4"))
    code, out = run("validate", "r.toml")
    assert code == 1
    assert "r.toml:16:" in out and "duplicate key" in out


def test_non_utf8_bytes(demo_host, workdir):
    (workdir / "r.toml").write_bytes(GOOD.encode().replace(b'"good"', b'"g\xe9od"'))
    code, out = run("validate", "r.toml")
    assert code == 1
    assert "r.toml:2:" in out and "not valid UTF-8" in out


def test_empty_file(demo_host, workdir):
    write(workdir / "r.toml", "# only a comment\n")
    code, out = run("validate", "r.toml")
    assert code == 1 and "empty recipe" in out


def test_directory_without_recipes(demo_host, workdir):
    (workdir / "empty").mkdir()
    code, out = run("validate", "empty")
    assert code == 1 and "no recipes" in out


def test_directory_is_searched_recursively(demo_host, workdir):
    (workdir / "a" / "b").mkdir(parents=True)
    write(workdir / "a" / "one.toml", GOOD.replace("train.jsonl", "../train.jsonl"))
    write(workdir / "a" / "b" / "two.toml", GOOD.replace("train.jsonl", "../../train.jsonl").replace("max_steps = 3", "max_steps = 0"))
    code, out = run("validate", "a")
    assert code == 1
    assert "two.toml" in out and "training.max_steps: must be >= 1, got 0" in out
    assert "1 problem(s) in 1 of 2 recipe(s)" in out


def test_wrong_types_and_unknown_keys_inside_component_table(demo_host, workdir):
    text = GOOD.replace('path = "train.jsonl"', 'path = "train.jsonl"\nencodng = "latin-1"\noptions = {depth = 1, width = 2}')
    text = text.replace("max_steps = 3", 'max_steps = "three"')
    write(workdir / "r.toml", text)
    code, out = run("validate", "r.toml")
    assert code == 1
    assert "data[0].encodng: unknown key 'encodng'; did you mean \"encoding\"?" in out
    assert "data[0].options.width: unknown key 'width'" in out
    assert "training.max_steps: expected an integer, got a string 'three'" in out


def test_unknown_component_and_missing_file(demo_host, workdir):
    text = GOOD.replace('source = "demo_file"', 'source = "demo_fil"').replace('name = "demo_sft"', 'name = "demo_sft"')
    text += '\n[[data]]\nsource = "demo_file"\npath = "missing.jsonl"\n'
    write(workdir / "r.toml", text)
    code, out = run("validate", "r.toml")
    assert code == 1
    assert "r.toml:8:1: data[0].source: unknown source 'demo_fil'; did you mean \"demo_file\"?" in out
    assert "data[1].path: file not found: 'missing.jsonl'" in out


def test_missing_required_sections(demo_host, workdir):
    write(workdir / "r.toml", '[recipe]\nname = "x"\n')
    code, out = run("validate", "r.toml")
    assert code == 1
    for key in ("model", "data", "strategy"):
        assert f"missing required key '{key}'" in out


def test_extends_merges_and_detects_cycles(demo_host, workdir):
    write(workdir / "base.toml", GOOD)
    write(workdir / "child.toml", '[recipe]\nname = "child"\nextends = "base.toml"\n[training]\nmax_steps = 7\n')
    code, out = run("resolve", "child.toml")
    assert code == 0, out
    assert 'name = "child"' in out and "max_steps = 7" in out and "learning_rate = 0.0001" in out
    write(workdir / "a.toml", '[recipe]\nname = "a"\nextends = "b.toml"\n')
    write(workdir / "b.toml", '[recipe]\nname = "b"\nextends = "a.toml"\n')
    code, out = run("validate", "a.toml")
    assert code == 1 and "extends cycle" in out


def test_problem_in_parent_points_at_parent(demo_host, workdir):
    write(workdir / "base.toml", GOOD.replace("learning_rate = 1e-4", "learning_rate = -5"))
    write(workdir / "child.toml", '[recipe]\nname = "child"\nextends = "base.toml"\n')
    code, out = run("validate", "child.toml")
    assert code == 1
    assert "base.toml:16:1: training.learning_rate: must be > 0" in out


def test_env_vars(demo_host, workdir, monkeypatch):
    write(workdir / "r.toml", GOOD.replace('"train.jsonl"', '"${DATA_FILE}"') + '\n[output]\ndir = "${OUT_DIR:-runs/x}"\n')
    code, out = run("validate", "r.toml")
    assert code == 1 and "environment variable ${DATA_FILE} is not set" in out and "r.toml:9:1" in out
    monkeypatch.setenv("DATA_FILE", "train.jsonl")
    code, out = run("resolve", "r.toml")
    assert code == 0, out
    # every value from the environment is redacted by value (issue 12), whatever the name
    assert 'path = "***redacted***"' in out and 'dir = "runs/x"' in out and "train.jsonl" not in out
    code, out = run("resolve", "--show-secrets", "r.toml")
    assert 'path = "train.jsonl"' in out


def test_resolve_redacts_secrets(demo_host, workdir, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_supersecret")
    write(workdir / "r.toml", GOOD.replace('name = "org/some-model"', 'name = "org/some-model"\nrevision = "${HF_TOKEN}"'))
    code, out = run("resolve", "r.toml")
    assert code == 0, out
    assert "hf_supersecret" not in out and "redacted" in out
    code, out = run("resolve", "--show-secrets", "r.toml")
    assert "hf_supersecret" in out


def test_set_overrides(demo_host, workdir):
    write(workdir / "r.toml", GOOD)
    code, out = run("resolve", "r.toml", "--set", "training.max_steps=2", "--set", "data[0].path=train.jsonl")
    assert code == 0, out
    assert "max_steps = 2" in out
    code, out = run("validate", "r.toml", "--set", "training.learning_rate=-1")
    assert code == 1 and "must be > 0" in out


def test_requires(demo_host, workdir):
    write(workdir / "r.toml", GOOD.replace('name = "good"', 'name = "good"\nrequires = ["pluggy>=1.0", "pluggy>=999", "sftkit-not-installed-xyz"]'))
    code, out = run("validate", "r.toml")
    assert code == 1
    assert "requires 'pluggy>=999', but version" in out
    assert "requires 'sftkit-not-installed-xyz', which is not installed" in out
    assert "'pluggy>=1.0'" not in out


def test_cross_field_strategy_does_not_fit_data(demo_host, workdir):
    write(workdir / "r.toml", GOOD.replace('name = "demo_sft"', 'name = "demo_classify"'))
    code, out = run("validate", "r.toml")
    assert code == 1
    assert "data[0]: strategy 'demo_classify' trains on classification data, but this entry is messages data; its fields: prompt, completion" in out


def test_component_check_callable(demo_host, workdir):
    write(workdir / "r.toml", GOOD.replace('name = "demo_sft"', 'name = "demo_sft"\nepochs_hint = 50'))
    code, out = run("validate", "r.toml")
    assert code == 1 and "strategy.epochs_hint: epochs_hint above 10 is too many" in out


def test_json_and_github_formats(demo_host, workdir):
    write(workdir / "r.toml", GOOD.replace("max_steps = 3", "max_steps = -3"))
    code, out = run("validate", "--format", "json", "r.toml")
    assert code == 1
    doc = json.loads(out)
    assert doc["valid"] is False
    prob = doc["files"][0]["problems"][0]
    assert prob["path"] == "training.max_steps" and prob["line"] == 15 and prob["col"] == 1
    code, out = run("validate", "--format", "github", "r.toml")
    assert code == 1
    assert out.startswith("::error file=r.toml,line=15,col=1,title=sftkit validate::training.max_steps: must be >= 1")


def test_usage_errors_exit_2(demo_host, workdir):
    code, _ = run("validate", "does-not-exist.toml")
    assert code == 2
    code, _ = run("validate")
    assert code == 2
    write(workdir / "r.toml", GOOD)
    code, out = run("validate", "r.toml", "--set", "no-equals-sign")
    assert code == 2 and "expected KEY=VALUE" in out


def test_component_whole_object_rules_apply(workdir):
    from sftkit import hookimpl

    class OneOf:
        @hookimpl
        def sftkit_register_sources(self, register):
            register("either", "json:loads", schema={
                "type": "object", "properties": {"id": {"type": "string"}, "path": {"type": "string"}},
                "additionalProperties": False, "oneOf": [{"required": ["id"]}, {"required": ["path"]}]})

        @hookimpl
        def sftkit_register_strategies(self, register):
            register("s", "json:loads")

    plugins._HOST = plugins.make_host(builtins=False, entry_points=False, extra=(("oneof", OneOf()),))
    write(workdir / "r.toml", '[recipe]\nname = "x"\n[model]\nname = "org/m"\n[[data]]\nsource = "either"\n'
                              '[strategy]\nname = "s"\n')
    code, out = run("validate", "r.toml")
    assert code == 1 and "data[0]: needs exactly one of: id, path" in out
    write(workdir / "r.toml", '[recipe]\nname = "x"\n[model]\nname = "org/m"\n[[data]]\nsource = "either"\nid = "a"\n'
                              '[strategy]\nname = "s"\n')
    code, out = run("validate", "r.toml")
    assert code == 0, out


def test_local_model_that_does_not_exist(demo_host, workdir):
    plugins._HOST = plugins.make_host(entry_points=False, extra=(("demo", demo_plugin),))  # the default
    # model loader, a built-in, owns this check
    write(workdir / "r.toml", GOOD.replace('name = "org/some-model"', 'name = "./models/missing"'))
    code, out = run("validate", "r.toml")
    assert code == 1
    assert "r.toml:5:1: model.name: model './models/missing' not found: looked for the directory" in out
    write(workdir / "r.toml", GOOD.replace('name = "org/some-model"', 'name = "weights.gguf"'))
    code, out = run("validate", "r.toml")
    assert code == 1 and "looked for the file" in out


def test_extends_from_another_folder_keeps_parent_paths_and_checks_nested_ones(demo_host, workdir):
    (workdir / "base" / "data").mkdir(parents=True)
    (workdir / "base" / "data" / "rows.jsonl").write_text('{"prompt": "a", "completion": "b"}\n', encoding="utf-8")
    (workdir / "base" / "data" / "lookup.txt").write_text("x\n", encoding="utf-8")
    write(workdir / "base" / "base.toml", GOOD.replace('path = "train.jsonl"',
                                                      'path = "data/rows.jsonl"\noptions = {lookup = "data/lookup.txt"}'))
    write(workdir / "child.toml", '[recipe]\nname = "child"\nextends = "base/base.toml"\n')
    code, out = run("validate", "child.toml")
    assert code == 0, out
    code, out = run("resolve", "child.toml")
    assert str(workdir / "base" / "data" / "lookup.txt") in out and str(workdir / "base" / "data" / "rows.jsonl") in out
    (workdir / "base" / "data" / "lookup.txt").unlink()
    code, out = run("validate", "child.toml")
    assert code == 1
    assert "base.toml:10:" in out and "data[0].options.lookup: file not found" in out


def test_a_malformed_first_data_line_is_no_traceback(tmp_path):
    """validate peeks at a JSON-lines file's first row; a broken row means 'fields unknown', not a crash."""
    from sftkit.detect import peek_fields

    bad = tmp_path / "train.jsonl"
    bad.write_text('{"messages": [oops\n', encoding="utf-8")
    assert peek_fields({"source": "jsonl", "path": "train.jsonl"}, bad) is None
    good = tmp_path / "good.jsonl"
    good.write_text('{"prompt": "a", "completion": "b"}\n', encoding="utf-8")
    assert peek_fields({"source": "jsonl", "columns": {"prompt": "prompt"}}, good) == ["prompt", "completion"]
