"""``[training] compile = true``: the model trains compiled (torch.compile, inductor) on the CPU with
the same loss as eager; validated without torch; one line when no C++ compiler is there."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_run import make_recipe, run  # noqa: E402


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from sftkit.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def _one_step(tmp_path, tiny_dir, **training):
    recipe = make_recipe(tmp_path, tiny_dir, dataset={"eval_fraction": 0},
                         training={"max_steps": 1, "precision": "fp32", **training})
    out = run(recipe, output=tmp_path / "run")
    train = json.loads((out.run_dir / "metrics.json").read_text())["train"]
    loss = [json.loads(x)["loss"] for x in (out.run_dir / "train_log.jsonl").read_text().splitlines()
            if "loss" in json.loads(x)]
    return train, loss


def test_compile_is_validated_without_torch(tmp_path, tiny_dir):
    recipe = make_recipe(tmp_path, tiny_dir, training={"compile": "yes"})
    code = ("import sys; from sftkit.cli import cli\n"
            f"try: cli(['validate', {str(recipe)!r}])\n"
            "except SystemExit as e: print('exit', e.code)\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "training.compile: expected true or false" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "False"


@pytest.mark.skipif(not any(shutil.which(c) for c in ("g++", "c++", "clang++")),
                    reason="torch.compile (inductor) builds its CPU kernels with a C++ compiler: none on PATH")
def test_a_tiny_model_trains_compiled_with_the_eager_loss(tmp_path, tiny_dir):
    import torch._dynamo.utils

    (tmp_path / "eager").mkdir()
    (tmp_path / "compiled").mkdir()
    eager, eager_loss = _one_step(tmp_path / "eager", tiny_dir)
    torch._dynamo.utils.counters.clear()
    compiled, compiled_loss = _one_step(tmp_path / "compiled", tiny_dir, compile=True)
    assert eager["compile"] is False and compiled["compile"] is True
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 1  # it did compile
    assert compiled["chunked_loss"]["used"] is True  # the decoder hook works in the compiled graph
    assert compiled_loss == pytest.approx(eager_loss, rel=1e-4) and len(compiled_loss) == 1


def test_no_cpp_compiler_is_one_line_before_training(tmp_path, tiny_dir, monkeypatch):
    from sftkit.errors import SftkitError

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("CXX", raising=False)
    with pytest.raises(SftkitError, match=r"\[training\] compile: compile = true needs a C\+\+ compiler"):
        _one_step(tmp_path, tiny_dir, compile=True)
    assert not (tmp_path / "run" / "COMPLETE").exists()
