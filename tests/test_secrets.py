"""Issue 12, secrets: every value taken from the environment is redacted by value, whatever the
variable's name, in every file of the run directory and every message; trust_remote_code inherited
through extends is reported by validate."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import tomli_w

SECRET = "pg-8f3Kq9ZxW2vLbT7n"  # a database password in a variable whose name says nothing
SFTKIT = [sys.executable, "-c", "from sftkit.cli import main; main()"]


def _sftkit(*args, cwd, **env):
    return subprocess.run([*SFTKIT, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          env=dict(os.environ, SFTKIT_NO_PROGRESS="1", HF_HUB_OFFLINE="1", **env))


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    from sftkit.tiny import save_tiny_model

    tmp = tmp_path_factory.mktemp("secrets")
    model = save_tiny_model(tmp / "tiny")
    rows = [{"prompt": f"What is {i} plus {i}?", "completion": f"It is {2 * i}."} for i in range(12)]
    (tmp / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = {
        "recipe": {"name": "secrets", "seed": 1, "description": "for ${DB_CONN}"},
        "model": {"name": model},
        "data": [{"source": "jsonl", "path": "train.jsonl", "name": "rows-${DB_CONN}"}],
        "template": {"formatter": "chatml"},
        "strategy": {"name": "instruction"},
        "training": {"max_steps": 2, "per_device_train_batch_size": 4, "max_length": 64, "logging_steps": 1},
        "eval": [{"name": "contains", "label": "check ${DB_CONN}",
                  "items": [{"prompt": "Say ${DB_CONN} twice", "expected": "${DB_CONN}"}], "max_new_tokens": 4}],
    }
    path = tmp / "recipe.toml"
    path.write_text(tomli_w.dumps(data))
    return path


def test_a_secret_reaches_no_file_of_the_run_and_no_message(recipe):
    out = recipe.parent / "run"
    env = {"DB_CONN": SECRET}
    run = _sftkit("run", recipe, "--output", out, cwd=recipe.parent, **env)
    assert run.returncode in (0, 3), run.stderr[-3000:]
    assert (out / "COMPLETE").exists() and (out / "report.html").exists()
    leaks = [str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert leaks == []
    assert "***redacted***" in (out / "recipe.toml").read_text()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["eval"][0]["label"] == "check ***redacted***"  # the label was substituted, then hidden
    outputs = [run.stdout + run.stderr]
    missing = recipe.parent / "missing.toml"  # a message that names the value: file not found
    missing.write_text(recipe.read_text().replace('path = "train.jsonl"', 'path = "${DB_CONN}.jsonl"'))
    for args in (("validate", recipe), ("resolve", recipe), ("report", out), ("validate", missing)):
        res = _sftkit(*args, cwd=recipe.parent, **env)
        outputs.append(res.stdout + res.stderr)
    assert "file not found: '***redacted***.jsonl'" in outputs[-1]  # a message naming the value
    assert not [o for o in outputs if SECRET in o]
    shown = _sftkit("resolve", recipe, "--show-secrets", cwd=recipe.parent, **env)
    assert SECRET in shown.stdout  # asked for explicitly


def test_scrub_covers_escaped_forms():
    from sftkit import redaction

    redaction.register('a"b<c>&d-secret')
    text = json.dumps({"x": 'a"b<c>&d-secret'}) + " " + __import__("html").escape('a"b<c>&d-secret')
    assert "secret" not in redaction.scrub(text)
    redaction.register("ab")  # too short to be a secret: left alone
    assert redaction.scrub("abc") == "abc"


def test_inherited_trust_remote_code_is_reported(tmp_path):
    from click.testing import CliRunner

    from sftkit.cli import cli

    (tmp_path / "x.jsonl").write_text('{"prompt": "a", "completion": "b"}\n')
    (tmp_path / "parent.toml").write_text('[recipe]\nname = "p"\n[model]\nname = "m"\ntrust_remote_code = true\n')
    child = tmp_path / "child.toml"
    child.write_text('[recipe]\nname = "c"\nextends = "parent.toml"\n[[data]]\nsource = "jsonl"\npath = "x.jsonl"\n'
                     '[strategy]\nname = "instruction"\n')
    res = CliRunner().invoke(cli, ["validate", str(child)])
    assert res.exit_code == 1
    assert "model.trust_remote_code: trust_remote_code = true is inherited from" in res.output
    assert "parent.toml" in res.output
    ok = CliRunner().invoke(cli, ["validate", str(child), "--set", "model.trust_remote_code=true"])
    assert ok.exit_code == 0, ok.output
    child.write_text(child.read_text().replace('name = "c"\n', 'name = "c"\n') + "[model]\ntrust_remote_code = true\n")
    assert CliRunner().invoke(cli, ["validate", str(child)]).exit_code == 0
