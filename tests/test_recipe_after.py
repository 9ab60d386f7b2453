"""``[recipe] after``: a recipe that builds on earlier steps validates with located notes naming the
command to run first (everything else still checked), and ``sftkit run`` refuses it in one line."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from sftkit.cli import cli, load_plugin_commands

RECIPES = Path(__file__).resolve().parent.parent / "sftkit" / "recipes"

EARLIER = """
[recipe]
name = "first"
[model]
name = "sshleifer/tiny-gpt2"
[[data]]
source = "jsonl"
path = "train.jsonl"
[strategy]
name = "instruction"
[output]
dir = "runs/{recipe.name}"
"""

LATER = """
[recipe]
name = "second"
after = ["run first.toml"]
[model]
name = "runs/first/model"
[[data]]
source = "jsonl"
path = "train.jsonl"
[strategy]
name = "instruction"
"""


def _cli(*args):
    load_plugin_commands()
    return CliRunner().invoke(cli, list(args))


def test_shipped_recipes_validate_with_notes_for_the_feedback_loop():
    res = _cli("validate", "--format", "json", str(RECIPES))
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    feedback = next(f for f in doc["files"] if f["file"].endswith("feedback.toml"))
    assert feedback["valid"] and not feedback["problems"] and {p["level"] for p in feedback["warnings"]} == {"note"}
    hints = {p["path"]: p["hint"] for p in feedback["warnings"]}
    assert hints["model.name"].endswith("quickstart.toml` first") and "sftkit run " in hints["model.name"]
    assert "sftkit arena " in hints["data[0].path"]
    assert all(p["line"] for p in feedback["warnings"])  # located
    github = _cli("validate", "--format", "github", str(RECIPES / "feedback.toml"))
    assert github.exit_code == 0 and github.output.count("::notice file=") == 2


def _write(tmp_path, later=LATER):
    (tmp_path / "first.toml").write_text(EARLIER)
    (tmp_path / "second.toml").write_text(later)
    (tmp_path / "train.jsonl").write_text('{"prompt": "a", "completion": "b"}\n')
    return tmp_path / "second.toml"


def test_missing_earlier_run_is_a_note_and_everything_else_is_still_checked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recipe = _write(tmp_path)
    res = _cli("validate", str(recipe))
    assert res.exit_code == 0, res.output
    assert "model.name: note: 'runs/first/model' does not exist yet" in res.output
    assert "run `sftkit run first.toml` first" in res.output and "1 recipe(s) valid, 1 note(s)" in res.output
    broken = _write(tmp_path, LATER.replace('path = "train.jsonl"', 'path = "trian.jsonl"'))
    res = _cli("validate", str(broken))
    assert res.exit_code == 1 and "data[0].path: file not found" in res.output  # a typo stays an error
    (tmp_path / "runs" / "first" / "model").mkdir(parents=True)  # done: no note any more
    res = _cli("validate", str(_write(tmp_path)))
    assert "note:" not in res.output


def test_after_naming_nothing_is_a_problem(tmp_path):
    recipe = _write(tmp_path, LATER.replace('"run first.toml"', '"run nosuch"'))
    res = _cli("validate", str(recipe))
    assert res.exit_code == 1 and "recipe.after: [recipe] after: no recipe 'nosuch'" in res.output
    recipe = _write(tmp_path, LATER.replace('"run first.toml"', '"train first.toml"'))
    res = _cli("validate", str(recipe))
    assert res.exit_code == 1 and "recipe.after" in res.output


def test_run_refuses_in_one_line_until_the_earlier_step_is_done(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recipe = _write(tmp_path)
    res = _cli("run", str(recipe))
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and "run first: `sftkit run first.toml`" in lines[0] and "Traceback" not in res.output
    res = _cli("run", str(RECIPES / "feedback.toml"))
    assert res.exit_code == 2 and "quickstart.toml`" in res.output and "sftkit arena " in res.output
