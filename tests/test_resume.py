"""``sftkit run --resume``: a run killed with SIGKILL mid-training and resumed from its last checkpoint
ends with exactly the weights of an uninterrupted run (CPU, same seed)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tomli_w

SFTKIT = [sys.executable, "-c", "from sftkit.cli import main; main()"]


def _env(**extra):
    env = dict(os.environ, SFTKIT_NO_PROGRESS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env.update(extra)
    return env


@pytest.fixture
def recipe(tmp_path):
    from sftkit.tiny import save_tiny_model

    model = save_tiny_model(tmp_path / "tiny")
    rows = [{"prompt": f"What is {i} plus {i}?" + " please" * (i % 7), "completion": f"It is {2 * i}." + " Thanks." * (i % 4)}
            for i in range(24)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = {
        "recipe": {"name": "resume", "seed": 11},
        "model": {"name": model},
        "data": [{"source": "jsonl", "path": "train.jsonl"}],
        "template": {"formatter": "chatml"},
        "strategy": {"name": "instruction"},
        # 12 steps over 24 rows in batches of 4: two epochs, so the resumed run crosses an epoch boundary
        "training": {"max_steps": 12, "per_device_train_batch_size": 4, "learning_rate": 1e-3,
                     "save_steps": 3, "logging_steps": 1, "max_length": 96, "warmup_ratio": 0.2},
        "output": {"report": False},
    }
    path = tmp_path / "recipe.toml"
    path.write_text(tomli_w.dumps(data))
    return path


def _weights(run_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(run_dir / "model" / "model.safetensors"))


def test_killed_run_resumes_to_identical_weights(recipe, tmp_path):
    import torch

    killed = tmp_path / "killed"
    proc = subprocess.Popen([*SFTKIT, "run", str(recipe), "--output", str(killed)], cwd=tmp_path,
                            env=_env(SFTKIT_STEP_SLEEP="0.4"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    marker = killed / "checkpoints" / "checkpoint-6" / "trainer_state.json"
    deadline = time.time() + 240
    while not marker.exists():
        assert proc.poll() is None, f"run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "COMPLETE").exists()  # an interrupted run never passes for a finished one
    assert not (killed / "model").exists()

    from sftkit.errors import SftkitError
    from sftkit.run import run

    with pytest.raises(SftkitError, match="--resume"):  # a plain run does not clobber it
        run(recipe, output=killed)

    res = subprocess.run([*SFTKIT, "run", str(recipe), "--output", str(killed), "--resume"], cwd=tmp_path,
                         env=_env(), capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "resuming from" in res.stderr
    assert (killed / "COMPLETE").exists()

    straight = tmp_path / "straight"
    run(recipe, output=straight)  # uninterrupted, in process

    a, b = _weights(killed), _weights(straight)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    resumed = json.loads((killed / "metrics.json").read_text())["train"]
    assert resumed["steps"] == 12 and resumed["resumed_from"].endswith(("checkpoint-6", "checkpoint-9"))
    # the log is complete and has no duplicated steps after the resume
    steps = [e["step"] for e in map(json.loads, (killed / "train_log.jsonl").read_text().splitlines()) if "loss" in e]
    assert steps == list(range(1, 13))
