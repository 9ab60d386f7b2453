"""Issue 12, run directory: one process at a time (the refusal names the holder), stale locks taken
over, --resume never trains past max_steps and skips truncated checkpoints, changed data refused,
Ctrl-C / SIGTERM stop with the way to continue, storage errors in one line, no report of an
unfinished run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tomli_w

from sftkit.errors import SftkitError
from sftkit.run import rundir

SFTKIT = [sys.executable, "-c", "from sftkit.cli import main; main()"]


def _env(**extra):
    env = dict(os.environ, SFTKIT_NO_PROGRESS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    from sftkit.tiny import save_tiny_model

    tmp_path = tmp_path_factory.mktemp("safety")
    model = save_tiny_model(tmp_path / "tiny")
    rows = [{"prompt": f"What is {i} plus {i}?", "completion": f"It is {2 * i}."} for i in range(16)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = {
        "recipe": {"name": "safety", "seed": 3},
        "model": {"name": model},
        "data": [{"source": "jsonl", "path": "train.jsonl"}],
        "template": {"formatter": "chatml"},
        "strategy": {"name": "instruction"},
        "training": {"max_steps": 6, "per_device_train_batch_size": 4, "learning_rate": 1e-3,
                     "save_steps": 3, "logging_steps": 1, "max_length": 64},
        "output": {"report": False, "keep_checkpoints": True},  # copies of a finished run resume from them
    }
    path = tmp_path / "recipe.toml"
    path.write_text(tomli_w.dumps(data))
    return path


@pytest.fixture(scope="module")
def finished(recipe):
    """One uninterrupted run: the reference for every resumed one."""
    from sftkit.run import run

    out = recipe.parent / "straight"
    run(recipe, output=out)
    return out


def _weights(run_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(run_dir / "model" / "model.safetensors"))


def _same_weights(a: Path, b: Path) -> bool:
    import torch

    wa, wb = _weights(a), _weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def _killed_after_training(finished: Path, dest: Path) -> Path:
    """``finished`` as it was when killed after the final checkpoint, before the model and COMPLETE."""
    shutil.copytree(finished, dest, ignore=shutil.ignore_patterns(rundir.LOCK))
    for name in ("COMPLETE", "metrics.json", "data_stats.json"):
        (dest / name).unlink(missing_ok=True)
    shutil.rmtree(dest / "model")
    return dest


def test_a_second_process_is_refused_with_the_holders_pid_and_a_dead_holder_is_stale(recipe, tmp_path):
    from sftkit.run import run

    out = tmp_path / "busy"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom sftkit.run import rundir\n"
                               f"rundir.lock({str(out)!r}, 'sftkit run other.toml')\nprint('locked', flush=True)\n"
                               "time.sleep(600)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        for kw in ({}, {"overwrite": True}, {"resume": True}):
            with pytest.raises(SftkitError, match=rf"another sftkit process \(pid {holder.pid}, sftkit run "
                                                  r"other.toml, since .*\) is using this run directory"):
                run(recipe, output=out, **kw)
    finally:
        holder.kill()
        holder.wait()
    # the kernel released the dead holder's lock: the next run takes the directory over
    outcome = run(recipe, output=out)
    assert (out / "COMPLETE").exists() and outcome.metrics["train"]["steps"] == 6
    assert not (out / rundir.LOCK).exists()  # released at the end


def test_lock_is_exclusive_in_one_process_and_released(tmp_path):
    first = rundir.lock(tmp_path / "d")
    with pytest.raises(SftkitError, match=rf"pid {os.getpid()}"):
        rundir.lock(tmp_path / "d")
    first.release()
    assert not (tmp_path / "d").exists()  # created for the lock, empty: removed again
    with rundir.lock(tmp_path / "d"):
        assert rundir.state(tmp_path / "d") == "empty"  # the lock file alone is no run


def test_resume_after_training_finished_takes_no_extra_step(recipe, finished, tmp_path):
    from sftkit.run import run

    killed = _killed_after_training(finished, tmp_path / "killed")
    messages = []
    for attempt in range(2):  # a second resume (after another kill) changes nothing either
        outcome = run(recipe, output=killed, resume=True, console=messages.append)
        assert outcome.metrics["train"]["steps"] == 6
        assert _same_weights(killed, finished)
        (killed / "COMPLETE").unlink()
    assert any("without another step" in m for m in messages)
    steps = [e["step"] for e in map(json.loads, (killed / "train_log.jsonl").read_text().splitlines()) if "loss" in e]
    assert steps == list(range(1, 7))


def test_truncated_checkpoint_is_skipped_with_a_warning(recipe, finished, tmp_path):
    from sftkit.run import run

    killed = _killed_after_training(finished, tmp_path / "truncated")
    state = killed / "checkpoints" / "checkpoint-6" / "trainer_state.json"
    state.write_text(state.read_text()[:40])
    messages = []
    outcome = run(recipe, output=killed, resume=True, console=messages.append)
    assert any("skipping checkpoint-6: trainer_state.json is unreadable or truncated" in m for m in messages)
    assert outcome.metrics["train"]["resumed_from"].endswith("checkpoint-3")
    assert outcome.metrics["train"]["steps"] == 6 and _same_weights(killed, finished)


def test_changed_data_is_refused_on_resume_unless_allowed(recipe, finished, tmp_path):
    from sftkit.run import run

    work = tmp_path / "work"
    shutil.copytree(recipe.parent, work, ignore=shutil.ignore_patterns("straight", "killed", "truncated", "busy"))
    killed = _killed_after_training(finished, work / "run")
    lock_before = (killed / "sftkit.lock.json").read_text()
    with open(work / "train.jsonl", "a") as f:
        f.write(json.dumps({"prompt": "new", "completion": "row"}) + "\n")
    with pytest.raises(SftkitError, match=r"the data changed since this run started \(data\[0\].path\).*"
                                          r"--allow-data-change"):
        run(work / "recipe.toml", output=killed, resume=True)
    assert (killed / "sftkit.lock.json").read_text() == lock_before  # the record is not rewritten
    outcome = run(work / "recipe.toml", output=killed, resume=True, allow_data_change=True)
    assert outcome.claimed == "resumed"
    assert json.loads((killed / "sftkit.lock.json").read_text())["data_changed_on_resume"] == ["data[0].path"]


def test_report_of_an_unfinished_run_says_so(finished, tmp_path):
    killed = _killed_after_training(finished, tmp_path / "unfinished")
    res = subprocess.run([*SFTKIT, "report", str(killed)], capture_output=True, text=True, env=_env())
    assert res.returncode == 1
    assert res.stderr.strip().startswith("error: ") and "this run is unfinished" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and not (killed / "report.html").exists()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_and_sigterm_stop_with_the_step_and_how_to_continue(recipe, tmp_path, sig):
    out = tmp_path / f"stopped-{sig.name}"
    proc = subprocess.Popen([*SFTKIT, "run", str(recipe), "--output", str(out)], cwd=tmp_path,
                            env=_env(SFTKIT_STEP_SLEEP="0.5"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # a suite started in the background (CI) ignores SIGINT, and the child would inherit it
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    marker = out / "checkpoints" / "checkpoint-3" / "trainer_state.json"
    deadline = time.time() + 240
    while not marker.exists():
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and "stopped at step " in last, err[-2000:]
    assert f"continue with `sftkit run {recipe} --output {out} --resume`" in last
    assert "Traceback" not in err and not (out / "COMPLETE").exists() and not (out / rundir.LOCK).exists()


def test_storage_errors_are_one_line():
    from sftkit.errors import storage_error

    full = storage_error(OSError(28, "No space left on device", "/runs/x/model/model.safetensors"))
    assert "no space left" in str(full) and "/runs/x/model/model.safetensors" in str(full)
    assert "--resume" in str(full)

    class SafetensorError(Exception):  # what safetensors raises, with the OS error only in its text
        pass

    try:
        try:
            raise SafetensorError("Error while serializing: IoError(Os { code: 30, kind: ReadOnlyFilesystem })")
        except SafetensorError as exc:
            raise RuntimeError("saving failed") from exc
    except RuntimeError as wrapped:
        assert "read-only" in str(storage_error(wrapped))
    assert storage_error(ValueError("something else")) is None


def test_nan_weights_are_a_health_error_and_a_failed_run(recipe, tmp_path, monkeypatch):
    import torch

    from sftkit.reporting import health
    from sftkit.run import run
    from sftkit.strategies import trainer

    fit = trainer.fit

    def diverging_fit(run_ctx, *args, **kwargs):  # as a too-high learning rate leaves them (validate now
        result = fit(run_ctx, *args, **kwargs)   # refuses learning_rate > 10, so poison the weights here)
        with torch.no_grad():
            next(result.model.parameters()).fill_(float("nan"))
        return result

    monkeypatch.setattr(trainer, "fit", diverging_fit)
    out = tmp_path / "nan"
    with pytest.raises(SftkitError, match=r"training diverged: \d+ weight tensor\(s\) hold NaN/inf.*"
                                          r"lower training.learning_rate"):
        run(recipe, output=out)
    assert not (out / "COMPLETE").exists() and rundir.state(out) == "unfinished"
    train = json.loads((out / "metrics.json").read_text())["train"]
    assert train["nonfinite_tensors"]
    assert [f["code"] for f in health.analyze([], train_metrics=train)] == ["nan_weights"]


def test_full_disk_and_read_only_directory_are_one_line_errors(recipe, tmp_path):
    """Both on small tmpfs mounts in a private mount namespace (user namespaces, no root needed)."""
    if not shutil.which("unshare") or subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"],
                                                     capture_output=True).returncode != 0:
        pytest.skip("no user namespaces to mount a small file system in")
    full, ro = tmp_path / "full", tmp_path / "ro"
    full.mkdir()
    ro.mkdir()
    sftkit = " ".join(f"'{a}'" for a in SFTKIT)
    script = (f"mount -t tmpfs -o size=300k tmpfs {full} && mount -t tmpfs -o ro tmpfs {ro} && "
              f"{sftkit} run {recipe} --output {full}/run; echo rc=$?; ls {full}/run; "
              f"{sftkit} run {recipe} --output {ro}/run; echo rc=$?")
    res = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script], cwd=tmp_path,
                         capture_output=True, text=True, env=_env(), timeout=600)
    out = res.stdout + res.stderr
    assert "Traceback" not in out, out[-3000:]
    errors = [ln for ln in out.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 2 and out.count("rc=1") == 2, out[-3000:]
    assert "no space left on the device" in errors[0] and "Read-only file system" in errors[1]
    assert "COMPLETE" not in res.stdout.split("rc=1")[1]  # the full disk's run was not marked finished


EVAL_ITEMS = 'eval=[{name = "contains", items = [{prompt = "Hi", expected = "x"}], max_new_tokens = 2}]'


def test_eval_of_a_model_in_an_unfinished_run_says_so(recipe, finished, tmp_path):
    from sftkit.run import evaluate as evaluate_model

    unfinished = tmp_path / "unfinished-eval"
    shutil.copytree(finished, unfinished, ignore=shutil.ignore_patterns(rundir.LOCK))
    (unfinished / "COMPLETE").unlink()
    said = []
    evaluate_model(recipe, unfinished / "model", output=tmp_path / "eval-out", console=said.append,
                   overrides=[EVAL_ITEMS])
    assert any("is an unfinished run (no COMPLETE file)" in m and "--resume" in m for m in said), said
    said.clear()
    evaluate_model(recipe, finished / "model", output=tmp_path / "eval-out2", console=said.append,
                   overrides=[EVAL_ITEMS])
    assert not any("unfinished" in m for m in said)
