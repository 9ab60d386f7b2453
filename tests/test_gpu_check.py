"""scripts/gpu_check.sh --dry: every step of the prepared GPU check has its preconditions checked on a
machine without a GPU (CI), and a broken precondition is a failed step, not a silent pass."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STEPS = ["environment", "quickstart", "bench", "qlora", "distributed", "plan", "reasoning"]


def dry(tmp_path, *args, env=None):
    out = tmp_path / "gpu_check.json"
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--dry", "--output", str(out), *args],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PY": sys.executable, "PYTHONPATH": str(ROOT), **(env or {})})
    return proc, (json.loads(out.read_text()) if out.is_file() else None)


def test_dry_mode_checks_every_step_and_writes_one_json(tmp_path):
    proc, result = dry(tmp_path)
    assert result is not None, proc.stderr[-2000:]
    assert result["dry"] is True and list(result["steps"]) == STEPS
    for name, step in result["steps"].items():
        assert step["status"] in ("ok", "skipped"), (name, step)
        if step["status"] == "skipped":
            assert step["reason"], name
        elif name != "environment":
            assert step.get("ready") is True or all(v.get("ready") for v in step.values() if isinstance(v, dict)), (name, step)
    assert proc.returncode == 0, proc.stderr[-2000:]
    env = result["steps"]["environment"]
    assert "torch" in env and "cpu_flags" in env
    from sftkit.plugins import get_host

    if get_host().registry.find("strategies", "reasoning") is None:
        assert "not registered" in result["steps"]["reasoning"]["reason"]


def test_a_broken_precondition_fails_its_step_and_the_exit_code(tmp_path):
    proc, result = dry(tmp_path, "--only", "qlora", env={"SFTKIT_GPU_CHECK_MODEL": str(tmp_path / "no-such-model")})
    assert proc.returncode == 1
    assert list(result["steps"]) == ["environment", "qlora"]
    step = result["steps"]["qlora"]
    assert step["status"] == "failed" and "no-such-model" in step["error"] and "not found" in step["error"]


def test_an_unknown_step_is_refused():
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--dry", "--only", "nope"],
                          capture_output=True, text=True, env={**os.environ, "PY": sys.executable})
    assert proc.returncode == 2 and "unknown step(s) nope" in proc.stderr
