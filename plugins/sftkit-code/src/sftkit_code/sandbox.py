"""Run untrusted Python in a separate, resource-limited process.

Each program runs with ``python -I`` (isolated mode: no user site, no PYTHON* variables) in a fresh
temporary directory, with an empty environment, no stdin, and POSIX limits on CPU time, memory,
file size and open files; the whole process group is killed at the wall-clock timeout. This is a
guard against accidents (infinite loops, memory blow-ups, stray files), not a security boundary:
run untrusted models in a container.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

MEMORY_BYTES = 1 << 30  # 1 GiB address space
FILE_BYTES = 16 << 20


@dataclass
class ExecResult:
    passed: bool
    status: str  # "passed", "failed", "timeout"
    detail: str = ""


def _limits(timeout: float):
    def apply():  # runs in the child before exec
        import resource

        os.setsid()
        cpu = max(1, int(timeout) + 1)
        for res, value in ((resource.RLIMIT_CPU, cpu), (resource.RLIMIT_AS, MEMORY_BYTES),
                           (resource.RLIMIT_FSIZE, FILE_BYTES), (resource.RLIMIT_NOFILE, 64),
                           (getattr(resource, "RLIMIT_CORE", None), 0)):
            if res is None:
                continue
            try:
                resource.setrlimit(res, (value, value))
            except (ValueError, OSError):
                pass

    return apply if os.name == "posix" else None


def run_program(program: str, timeout: float = 5.0) -> ExecResult:
    """Run ``program``; passed when it exits 0 within ``timeout`` seconds."""
    with tempfile.TemporaryDirectory(prefix="sftkit-code-") as tmp:
        script = os.path.join(tmp, "program.py")
        with open(script, "w", encoding="utf-8") as fh:
            fh.write(program)
        proc = subprocess.Popen(
            [sys.executable, "-I", "-B", script], cwd=tmp, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={"PATH": "/usr/bin:/bin", "HOME": tmp},
            preexec_fn=_limits(timeout),
        )
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError, AttributeError):
                proc.kill()
            proc.communicate()
            return ExecResult(False, "timeout", f"no result within {timeout:g} s")
    if proc.returncode == 0:
        return ExecResult(True, "passed")
    lines = err.decode("utf-8", "replace").strip().splitlines()
    return ExecResult(False, "failed", lines[-1][:300] if lines else f"exit code {proc.returncode}")


def run_many(programs: list[str], timeout: float = 5.0, workers: int | None = None) -> list[ExecResult]:
    """:func:`run_program` over many programs, a few at a time, results in order."""
    workers = workers or max(1, min(4, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda p: run_program(p, timeout), programs))
