"""Issue 12, fuzz: the shipped recipes and data files, mutated at random (seeded, so a failure
reproduces), never give a traceback or a hang: every bad input is a one-line problem.

Recipes are mutated as values (NaN, huge numbers, wrong types, special files, deep nesting,
unset variables, deleted and unknown keys) and as text (cut, duplicated or corrupted bytes), then
validated in-process. Data files are cut, corrupted, made ragged, re-encoded or gzipped (whole or
truncated) and loaded in a child process, so even a native crash (SIGABRT) is caught as a failure.
About a minute in all; each case has its own time limit.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from sftkit.cli import cli

RECIPES = Path(__file__).resolve().parents[1] / "sftkit" / "recipes"
SEED = int(os.environ.get("SFTKIT_FUZZ_SEED", "12"))
RECIPE_CASES = int(os.environ.get("SFTKIT_FUZZ_RECIPES", "240"))
DATA_CASES = int(os.environ.get("SFTKIT_FUZZ_DATA", "36"))
CASE_SECONDS = 20

NASTY = [float("nan"), float("inf"), float("-inf"), 1e308, -1e308, -1, 0, 2**31, 2**63 - 1, 2**63, 2**70, -(2**64),
         0.5, 1e-320, "", " ", "x" * 300, "é\u202e\u0000", "${SFTKIT_FUZZ_UNSET}", "/dev/zero", "/dev/null",
         "../../../../etc/passwd", "package://torch.nn/x", "package://no_such_pkg/x", True, False, [], {},
         [[[[[[]]]]]], {"a": {"b": {"c": 1}}}, [1, "a", None] and [1, "a"], 12.0, "nan", "1e999"]


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


def _paths(node, prefix=()):
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, prefix + (i,))
    return out


def _set(node, path, value, rng):
    for p in path[:-1]:
        node = node[p]
    last = path[-1]
    action = rng.random()
    if action < 0.12 and isinstance(node, dict):
        del node[last]
    elif action < 0.2 and isinstance(node, dict):
        node[last + "_fuzz"] = value  # an unknown key
    else:
        node[last] = value


def _mutate_value(data: dict, rng: random.Random) -> dict:
    import copy

    data = copy.deepcopy(data)
    for _ in range(rng.randint(1, 3)):
        paths = _paths(data)
        if not paths:
            break
        _set(data, rng.choice(paths), copy.deepcopy(rng.choice(NASTY)), rng)
    return data


def _mutate_text(text: str, rng: random.Random) -> str:
    raw = bytearray(text.encode())
    kind = rng.randrange(5)
    if kind == 0:
        return raw[: rng.randrange(len(raw))].decode("utf-8", "replace")
    if kind == 1:
        lines = text.splitlines()
        i = rng.randrange(len(lines))
        return "\n".join(lines[: i + 1] + lines[i:])  # a duplicated line (key or table)
    if kind == 2:
        for _ in range(rng.randint(1, 8)):
            raw[rng.randrange(len(raw))] = rng.choice(b'[]{}"=\n#\\.,\x00\xff')
        return raw.decode("utf-8", "replace")
    if kind == 3:
        return text.replace("[", "[[", 1) + "\n[[" * rng.randint(1, 40)
    return "x = " + "[" * rng.randint(30, 5000) + "]" * rng.randint(0, 5000) + "\n" + text


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    work = tmp_path_factory.mktemp("fuzz")
    shutil.copytree(RECIPES, work / "recipes")
    return work / "recipes"


def test_mutated_recipes_never_crash_validate(workdir, monkeypatch):
    import tomli_w
    import tomllib

    monkeypatch.setenv("SFTKIT_CACHE", str(workdir.parent / "cache"))
    originals = {p.name: p.read_text() for p in sorted(workdir.glob("*.toml"))}
    parsed = {name: tomllib.loads(text) for name, text in originals.items()}
    rng = random.Random(SEED)
    runner = CliRunner()
    old = signal.signal(signal.SIGALRM, _alarm)
    failures = []
    try:
        for case in range(RECIPE_CASES):
            name = rng.choice(sorted(originals))
            if rng.random() < 0.6:
                try:
                    text = tomli_w.dumps(_mutate_value(parsed[name], rng))
                except (TypeError, ValueError):  # a value TOML cannot hold: mutate the text instead
                    text = _mutate_text(originals[name], rng)
            else:
                text = _mutate_text(originals[name], rng)
            target = workdir / f"fuzz_{case}.toml"
            target.write_text(text, encoding="utf-8")
            signal.alarm(CASE_SECONDS)
            try:
                result = runner.invoke(cli, ["validate", str(target)])
            except Hang:
                failures.append((case, name, "hang"))
                continue
            finally:
                signal.alarm(0)
                target.unlink()
            if result.exception is not None and not isinstance(result.exception, SystemExit):
                failures.append((case, name, f"{type(result.exception).__name__}: {result.exception}"))
            elif "Traceback" in result.output or result.exit_code not in (0, 1, 2):
                failures.append((case, name, result.output[-500:]))
    finally:
        signal.signal(signal.SIGALRM, old)
    assert not failures, failures[:5]


DATA_DRIVER = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from sftkit.data import load_data
    from sftkit.errors import SftkitError
    for case in json.loads(sys.argv[1]):
        recipe = {"data": [{"source": case["source"], "path": case["path"]}], "strategy": {"name": case["strategy"]}}
        try:
            load_data(recipe, Path(case["dir"]))
            print("OK", case["path"], flush=True)
        except SftkitError as exc:
            text = str(exc)
            print(("ONELINE " if "\\n" not in text else "MULTILINE ") + case["path"], flush=True)
""")


def _mutate_bytes(raw: bytes, rng: random.Random) -> tuple[bytes, str]:
    import gzip

    kind = rng.randrange(8)
    if kind == 0:
        return raw[: rng.randrange(1, len(raw))], ".jsonl"
    if kind == 1:
        b = bytearray(raw)
        for _ in range(rng.randint(1, 20)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        return bytes(b), ".jsonl"
    if kind == 2:
        return gzip.compress(raw)[: rng.randrange(10, 200)], ".jsonl.gz"
    if kind == 3:
        return b"\x1f\x8b\x08\x00" + bytes(rng.randrange(256) for _ in range(64)), ".jsonl.gz"
    if kind == 4:  # a ragged CSV
        lines = [",".join(["a", "b", "c"][: rng.randint(1, 3)] + ["x"] * rng.randint(0, 4)) for _ in range(40)]
        return ("prompt,completion\n" + "\n".join(lines) + "\n").encode(), ".csv"
    if kind == 5:
        return raw.decode("utf-8").encode("utf-16"), ".jsonl"
    if kind == 6:
        return b"\n".join([raw.splitlines()[0], b'{"prompt": ' + b"[" * 5000]), ".jsonl"
    return b"", ".jsonl"


def test_mutated_data_files_never_crash_loading(tmp_path):
    rng = random.Random(SEED + 1)
    sources = [("instruction/train.jsonl", "instruction"), ("tone/pairs.jsonl", "tone"),
               ("classification/tickets.jsonl", "classification"), ("quickstart/train.jsonl", "instruction")]
    cases = []
    for i in range(DATA_CASES):
        rel, strategy = rng.choice(sources)
        data, suffix = _mutate_bytes((RECIPES / "data" / rel).read_bytes(), rng)
        name = f"case{i}{suffix}"
        (tmp_path / name).write_bytes(data)
        cases.append({"path": name, "dir": str(tmp_path), "strategy": strategy,
                      "source": "csv" if suffix == ".csv" else "jsonl"})
    env = dict(os.environ, SFTKIT_CACHE=str(tmp_path / "cache"), HF_DATASETS_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-c", DATA_DRIVER, json.dumps(cases)], capture_output=True, text=True,
                          timeout=CASE_SECONDS * 6, env=env)
    assert proc.returncode == 0, (proc.returncode, proc.stdout[-1000:], proc.stderr[-3000:])
    verdicts = proc.stdout.split()
    assert verdicts.count("MULTILINE") == 0, proc.stdout
    assert len([v for v in verdicts if v in ("OK", "ONELINE")]) == len(cases), proc.stdout
