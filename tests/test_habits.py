"""The habits that keep the code as designed run in CI before the tests (scripts/test.sh) and for
contributors before each commit (.pre-commit-config.yaml): ruff (lint, import order) on sftkit and
tests, mypy on the contract modules. Both are configured once, in pyproject.toml."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ci_and_pre_commit_run_the_same_checks_before_the_tests():
    script = (ROOT / "scripts" / "test.sh").read_text(encoding="utf-8")
    assert script.index("-m ruff check sftkit tests") < script.index("-m mypy") < script.index("-m pytest")
    hooks = (ROOT / ".pre-commit-config.yaml").read_text(encoding="utf-8")
    assert "python -m ruff check" in hooks and "python -m mypy" in hooks


@pytest.mark.skipif(importlib.util.find_spec("ruff") is None, reason="ruff is in the test extra")
def test_ruff_is_clean():
    proc = _run("ruff", "check", "sftkit", "tests")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-1000:]


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy is in the test extra")
def test_the_contract_modules_type_check():
    proc = _run("mypy")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-1000:]
