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


@pytest.fixture(scope="session")
def quickstart_run(tmp_path_factory):
    """The shipped quickstart recipe run once on the real SmolLM2, shortened (2 steps; the gated evaluation
    on the 6 items a gate needs, the other on 2), for the real-model tests that read a run directory."""
    from click.testing import CliRunner

    from sftkit.commands.run import run

    recipe = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "sftkit", "recipes",
                          "quickstart.toml")
    out = tmp_path_factory.mktemp("quickstart-run") / "quickstart"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SFTKIT_NO_PROGRESS", "1")
        mp.setenv("SFTKIT_BASE_EVAL_CACHE", str(tmp_path_factory.mktemp("quickstart-base-eval")))
        res = CliRunner().invoke(run, [recipe, "--output", str(out), "--set", "training.max_steps=2",
                                       "--set", "eval.0.limit=6", "--set", "eval.1.limit=2",
                                       "--set", "eval.0.min=0"])
    assert res.exit_code == 0, res.output[-3000:]
    return out
