"""Issue 12, secrets: every value taken from the environment is redacted by value, whatever the
variable's name, in every file of the run directory and every message; trust_remote_code inherited
through extends is reported by validate. Issue 26: in every encoding (repr, JSON, HTML, URL, GitHub
annotations, cut short), and in no cache outside the run directory but the training data's."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import tomli_w

SECRET = "pg-8f3Kq9ZxW2vLbT7n"  # a database password in a variable whose name says nothing
# secrets with every character an encoding changes: quotes, backslash, HTML, %, space, newline, non-ASCII
NASTY = {"S_QUOTES": "it's \"quoted\" C:\\back\\slash", "S_HTML": "<b>Tom & Jerry</b> 100% sure",
         "S_LINES": "first line here\nsecond line here", "S_UNICODE": "päss-wörd-ünïcødé-日本",
         "S_LONG": "sk-" + "Zq8" * 30}
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


def test_a_secret_with_every_awkward_character_reaches_no_output_and_no_cache(recipe, tmp_path):
    """The same run with a secret that every encoding changes: the run directory, the messages, the
    report, ``sftkit resolve`` and the cache (the base evaluation is cacheable here: a local model)."""
    secret = "it's \"a\" C:\\x <b>&amp; 100% sûr\nline two 日本"
    env = {"DB_CONN": secret, "SFTKIT_CACHE": str(tmp_path / "cache"),
           "SFTKIT_BASE_EVAL_CACHE": str(tmp_path / "cache" / "base_eval")}
    out = tmp_path / "run"
    run = _sftkit("run", recipe, "--output", out, cwd=recipe.parent, **env)
    assert run.returncode in (0, 3), run.stderr[-3000:]
    assert (out / "report.html").exists() and (out / "report.md").exists() and (out / "train_log.jsonl").exists()
    texts = {"run output": run.stdout + run.stderr}
    for args in (("validate", recipe), ("resolve", recipe), ("report", out)):
        res = _sftkit(*args, cwd=recipe.parent, **env)
        texts[args[0]] = res.stdout + res.stderr
    for root in (out, tmp_path / "cache"):
        for path in (p for p in root.rglob("*") if p.is_file() and not p.name.endswith(".arrow")):
            texts[str(path.relative_to(tmp_path))] = path.name + path.read_bytes().decode("utf-8", "replace")
    assert "***redacted***" in (out / "recipe.toml").read_text()
    assert {name: _leaks(text, {"DB_CONN": secret}) for name, text in texts.items()} == {n: [] for n in texts}


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


def _encodings(secret: str) -> dict[str, str]:
    """Every form in which a secret could leak into text (each checked on its own)."""
    import html
    from urllib.parse import quote, quote_plus

    github = secret.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    forms = {"raw": secret, "repr": repr(secret)[1:-1], "ascii": ascii(secret)[1:-1],
             "json": json.dumps(secret)[1:-1], "json-utf8": json.dumps(secret, ensure_ascii=False)[1:-1],
             "json(repr)": json.dumps(repr(secret))[2:-2], "html": html.escape(secret),
             "html(repr)": html.escape(repr(secret))[6:-6], "url": quote(secret), "url+": quote_plus(secret),
             "github": github, "github(repr)": repr(secret)[1:-1].replace("%", "%25")}
    for i, line in enumerate(secret.splitlines()):
        forms[f"line {i}"] = line
    if len(secret) > 40:
        forms["first 20 characters"] = secret[:20]
    return {name: form for name, form in forms.items() if form}


def _leaks(text: str, secrets=NASTY) -> list[str]:
    return [f"{var} as {name}" for var, secret in secrets.items()
            for name, form in _encodings(secret).items() if form in text]


def test_validate_and_resolve_echo_no_secret_in_any_encoding(tmp_path):
    """A wrongly typed field quoted in the error (Python's repr), in every output format."""
    (tmp_path / "x.jsonl").write_text('{"prompt": "a", "completion": "b"}\n')
    wrong = {"max_steps": "${S_QUOTES}", "learning_rate": "${S_HTML}", "logging_steps": "${S_LINES}",
             "per_device_train_batch_size": "${S_UNICODE}", "gradient_accumulation_steps": "${S_LONG}"}
    (tmp_path / "r.toml").write_text(tomli_w.dumps({
        "recipe": {"name": "s"}, "model": {"name": "m"}, "data": [{"source": "jsonl", "path": "x.jsonl"}],
        "strategy": {"name": "instruction"}, "training": wrong}))
    outputs = {}
    for fmt in ("text", "json", "github"):
        res = _sftkit("validate", "r.toml", "--format", fmt, cwd=tmp_path, **NASTY)
        assert res.returncode == 1 and "***redacted***" in res.stdout, res.stdout + res.stderr
        outputs[fmt] = res.stdout + res.stderr
    res = _sftkit("resolve", "r.toml", cwd=tmp_path, **NASTY)
    outputs["resolve"] = res.stdout + res.stderr
    assert {fmt: _leaks(text) for fmt, text in outputs.items()} == {fmt: [] for fmt in outputs}


@pytest.fixture
def redaction(monkeypatch):
    """sftkit.redaction with no secret registered (and none left registered after the test)."""
    from sftkit import redaction

    monkeypatch.setattr(redaction, "_values", set())
    monkeypatch.setattr(redaction, "_raw", set(), raising=False)
    return redaction


def test_scrub_covers_repr_html_url_and_clipped_forms(redaction):
    import html
    from urllib.parse import quote

    for secret in NASTY.values():
        redaction.register(secret)
    for secret in NASTY.values():
        for text in (f"got {secret!r} here", json.dumps({"m": f"got {secret!r}"}), html.escape(repr(secret)),
                     f"?q={quote(secret)}", f"got {repr(secret)[:37]}...", f"…{secret[-12:]}"):
            assert _leaks(redaction.scrub(text), {"s": secret}) == [], text
    assert redaction.scrub("nothing... to hide…here") == "nothing... to hide…here"


def test_caches_keep_no_secret(redaction, tmp_path, monkeypatch):
    """Cache entries outside the run directory: the model cache's marker, the data cache's file names
    and the base-eval cache (results that hold a secret are not kept; metadata is redacted)."""
    from sftkit.api import EvalResult
    from sftkit.data.arrowcache import cached_dataset
    from sftkit.modeling.cache import write_entry
    from sftkit.run import base_cache

    monkeypatch.setenv("SFTKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SFTKIT_BASE_EVAL_CACHE", raising=False)
    secret = NASTY["S_UNICODE"]
    redaction.register(secret)
    write_entry("models", "d1", lambda tmp: None, {"source": f"/models/{secret}/m.gguf"})
    cached_dataset(f"{secret}.jsonl", "k1", lambda open_sink: {})
    clean = EvalResult(metrics={"accuracy": 1.0}, primary="accuracy", items=[{"score": 1.0, "prompt": "2+2?"}])
    base_cache.store("a" * 64, {"check": clean}, about={"model": f"/models/{secret}"})
    leaky = EvalResult(metrics={"accuracy": 1.0}, primary="accuracy",
                       items=[{"score": 1.0, "prompt": f"Say {secret}", "expected": secret}])
    base_cache.store("b" * 64, {f"check {secret}": leaky})
    files = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert [p for p in files if secret in str(p) or _leaks(p.read_bytes().decode("utf-8", "replace"),
                                                           {"s": secret})] == []
    assert base_cache.load("a" * 64)[0]["check"].metrics == {"accuracy": 1.0}  # no secret: still cached
    assert base_cache.load("b" * 64) is None


def test_each_holdout_table_keeps_no_secret(redaction, tmp_path):
    from types import SimpleNamespace

    from sftkit.reporting.holdout import run_each

    secret = NASTY["S_QUOTES"]
    redaction.register(secret)
    metrics = {"eval": [{"label": f"check {secret}", "primary": "accuracy", "base": 0.1, "tuned": 0.2}]}
    run_each("r.toml", [], {"dataset": {"holdout_clusters": ["a"]}}, tmp_path,
             lambda *a, **k: SimpleNamespace(metrics=metrics))
    for name in ("each_holdout.json", "each_holdout.md"):
        assert _leaks((tmp_path / name).read_text(), {"s": secret}) == [], name
