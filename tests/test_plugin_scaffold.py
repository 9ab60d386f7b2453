"""``sftkit plugin new``: the package it writes installs, conforms and passes its own tests (which run
its shipped recipe with --smoke on a tiny model)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from sftkit.commands.plugin import plugin

REPO = Path(__file__).resolve().parents[1]


def test_new_plugin_installs_and_its_tests_pass(tmp_path):
    result = CliRunner().invoke(plugin, ["new", "demo", "-o", str(tmp_path / "demo"),
                                         "--with", "source,evaluator,reward,formatter,command,hooks"])
    assert result.exit_code == 0, result.output
    pyproject = (tmp_path / "demo" / "pyproject.toml").read_text()
    assert '[project.entry-points.sftkit]\ndemo = "sftkit_demo.plugin"' in pyproject
    assert 'license = "Apache-2.0"' in pyproject  # the SPDX form: no setuptools deprecation banner
    site = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
                              "--target", str(site), str(tmp_path / "demo")], capture_output=True, text=True,
                             timeout=300)
    assert install.returncode == 0, install.stderr
    assert "License classifiers are deprecated" not in install.stderr + install.stdout
    assert "project.license` as a TOML table is deprecated" not in install.stderr + install.stdout
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}
    tests = subprocess.run([sys.executable, "-m", "pytest", str(tmp_path / "demo"), "-q", "-p", "no:cacheprovider"],
                           capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-2000:]
    assert "5 passed" in tests.stdout  # conformance, recipe with --smoke, source, reward, command: none skipped


def test_new_refuses_bad_names_kinds_and_existing_directories(tmp_path):
    from sftkit.errors import UsageError

    def refused(*args):
        result = CliRunner().invoke(plugin, ["new", *args])
        assert isinstance(result.exception, UsageError) and result.exception.exit_code == 2
        return str(result.exception)

    assert refused("My-Plugin", "-o", str(tmp_path / "x")) == (
        "plugin name 'My-Plugin' is not a Python identifier in lower case — e.g. my_plugin")
    assert refused("ok", "--with", "source,strategyy", "-o", str(tmp_path / "y")).startswith(
        "--with: unknown component kind(s) 'strategyy'")
    (tmp_path / "z").mkdir()
    (tmp_path / "z" / "keep.txt").write_text("mine")
    assert "already exists and is not empty" in refused("ok", "-o", str(tmp_path / "z"))
    assert (tmp_path / "z" / "keep.txt").read_text() == "mine" and not (tmp_path / "x").exists()


def test_new_accepts_the_distribution_name_and_its_readme_follows_output(tmp_path):
    for given in ("sftkit-sentiment-pro", "sentiment-pro", "sentiment_pro"):
        target = tmp_path / given / "pkg"
        result = CliRunner().invoke(plugin, ["new", given, "-o", str(target)])
        assert result.exit_code == 0, result.output
        pyproject = (target / "pyproject.toml").read_text()
        assert 'name = "sftkit-sentiment-pro"' in pyproject  # never sftkit-sftkit-...
        assert '[project.entry-points.sftkit]\nsentiment_pro = "sftkit_sentiment_pro.plugin"' in pyproject
        assert (target / "src" / "sftkit_sentiment_pro" / "plugin.py").exists()
        readme = (target / "README.md").read_text()
        assert f"pip install -e {target} " in readme and f"pytest {target} " in readme  # the directory written
        assert "](http" not in readme  # no placeholder links
