"""Shared test set-up: never reach the Hugging Face hub; fresh plugin host per test."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest


@pytest.fixture(autouse=True)
def _own_base_eval_cache(tmp_path_factory, monkeypatch):
    """Each test its own cache of base-model evaluations: no test reuses another's results."""
    monkeypatch.setenv("SFTKIT_BASE_EVAL_CACHE", str(tmp_path_factory.mktemp("base-eval-cache")))


@pytest.fixture(autouse=True)
def _fresh_host():
    from sftkit.plugins import reset_host

    reset_host()
    yield
    reset_host()


@pytest.fixture(autouse=True)
def _forget_secrets():
    """Values a test substituted from the environment are secrets for that test only."""
    yield
    from sftkit import redaction

    redaction._values.clear()
    redaction.show_secrets(False)


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from sftkit.tiny import tiny_tokenizer as make

    return make()


@pytest.fixture
def open_tmp():
    """A directory every user can enter (pytest's tmp_path sits below a root-only directory): for
    tests that run sftkit or a sandboxed program as an unprivileged user."""
    import shutil
    import tempfile
    from pathlib import Path

    path = tempfile.mkdtemp(prefix="sftkit-test-")
    os.chmod(path, 0o755)
    yield Path(path)
    shutil.rmtree(path, ignore_errors=True)
