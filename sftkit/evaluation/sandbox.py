"""OS isolation for one untrusted Python process: namespaces from ``unshare`` (util-linux), no root.

The command is ``[setpriv to nobody when sftkit runs as root] unshare --user --map-root-user --mount
--pid --net --ipc --uts --fork --kill-child python -I -S <init>``. The init (trusted code, :data:`INIT`)
runs as root of the new user namespace and, before any untrusted code exists:

- builds a new root on a small tmpfs: read-only binds of ``/usr``, ``/lib*``, ``/bin``, ``/sbin``,
  the interpreter's prefix and the job directory (at ``/sandbox``), plus ``/etc/ld.so.cache`` and
  ``/etc/localtime``; ``/dev`` holds only null, zero, random, urandom and a private ``/dev/shm``
  tmpfs; ``/tmp`` (cwd and HOME) is a private tmpfs of a few MB. No ``/proc``, ``/sys``, ``/home``,
  ``/root``, ``/run``, ``/var`` or project directory exists in it, and the installed-package
  directories (site- and dist-packages, where a problem set's reference solutions may sit) are
  empty: ``python -I -S`` never imports from them;
- ``pivot_root``\\s into it and detaches the old root, so nothing outside is reachable by any path;
- enters a second user namespace as uid/gid 65534, so the ``exec`` of the runner drops every
  capability (the mounts belong to the first namespace: they cannot be changed or undone), sets
  ``no_new_privs`` and execs the runner.

What this gives: the untrusted code sees a read-only system and a private scratch space that
vanishes with the process (both tmpfs are size-capped and live only in the mount namespace); it
has no network (only a down loopback), no view of other processes (its own PID namespace: it cannot
signal or trace sftkit), no SysV IPC or abstract sockets shared with the host, and no file of the
user. When sftkit runs as root the whole sandbox runs as user ``nobody`` (when an interpreter that
user can execute exists), so the kernel's per-user process limit applies and even a kernel
namespace bug leaves it unprivileged. Not defended: kernel exploits; CPU time and memory beyond the
rlimits the runner sets (``RLIMIT_CPU``, ``RLIMIT_AS``, ``RLIMIT_FSIZE``, ``RLIMIT_NPROC``); tmpfs pages
count against the machine's memory up to their caps.

Requires unprivileged user namespaces (stock Debian, Ubuntu, Fedora, Arch; not in a Docker container
with the default seccomp profile). :func:`availability` says whether they work here and why not.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from functools import lru_cache

NOBODY = 65534
TMP_MB = 32
SHM_MB = 8

INIT = r'''
import ctypes, json, os, platform, sys
cfg = json.loads(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 8, 32, 4096, 16384, 1 << 18
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 1024, 2048, 1 << 21
def ok(rc, what):
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, "sandbox setup: %s: %s" % (what, os.strerror(err)))
def mount(src, dst, fstype, flags, data=None):
    enc = lambda s: s.encode() if s is not None else None
    ok(libc.mount(enc(src), enc(dst), enc(fstype), ctypes.c_ulong(flags), enc(data)), "mount " + dst)
def locked_flags(path):
    # flags of the source mount that a user namespace may not clear on a bind remount
    f = os.statvfs(path).f_flag
    out = 0
    for st, ms in ((1, MS_RDONLY), (2, MS_NOSUID), (4, MS_NODEV), (8, MS_NOEXEC), (1024, MS_NOATIME),
                   (2048, MS_NODIRATIME), (4096, MS_RELATIME)):
        if f & st:
            out |= ms
    return out
def bind(src, dst, readonly=True, rec=True):
    mount(src, dst, None, MS_BIND | (MS_REC if rec else 0))
    if readonly:
        mount(None, dst, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | locked_flags(src))
def place(src, new):
    dst = new + src
    if os.path.islink(src):
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if not os.path.lexists(dst):
            os.symlink(os.readlink(src), dst)
        return
    if os.path.isdir(src):
        os.makedirs(dst, exist_ok=True)
    elif os.path.exists(src):
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        open(dst, "a").close()
    else:
        return
    bind(src, dst)
mount(None, "/", None, MS_REC | MS_PRIVATE)
new = cfg["root"]
mount("sftkit", new, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
for path in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc/ld.so.cache",
             "/etc/localtime", *cfg["ro"]):
    if not os.path.lexists(new + path):
        place(path, new)
for path in cfg["hide"]:  # installed packages (a problem set's answer key among them): never imported under -S
    if os.path.isdir(new + path) and not os.path.islink(new + path):
        mount("hidden", new + path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=0555")
os.makedirs(new + "/sandbox")
bind(cfg["job"], new + "/sandbox", rec=False)
os.makedirs(new + "/dev/shm")
for dev in ("null", "zero", "random", "urandom"):
    open(new + "/dev/" + dev, "a").close()
    bind("/dev/" + dev, new + "/dev/" + dev, readonly=False)
mount("shm", new + "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=%dm,mode=0700" % cfg["shm_mb"])
os.makedirs(new + "/tmp")
mount("tmp", new + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=%dm,mode=0700" % cfg["tmp_mb"])
os.makedirs(new + "/.old")
nr = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217, "i686": 217, "armv7l": 218}
ok(libc.syscall(nr[platform.machine()], new.encode(), (new + "/.old").encode()), "pivot_root")
os.chdir("/")
proc = os.open("/.old/proc/self", os.O_RDONLY | os.O_DIRECTORY)
ok(libc.umount2(b"/.old", 2), "umount old root")
os.rmdir("/.old")
mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
ok(libc.unshare(0x10000000), "unshare user namespace")
for name, text in (("setgroups", "deny"), ("uid_map", "65534 0 1"), ("gid_map", "65534 0 1")):
    fd = os.open(name, os.O_WRONLY, dir_fd=proc)
    os.write(fd, text.encode())
    os.close(fd)
os.close(proc)
ok(libc.prctl(38, 1, 0, 0, 0), "no_new_privs")
os.chdir("/tmp")
os.execve(cfg["argv"][0], cfg["argv"], cfg["env"])
'''


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
    """Python 3 interpreters to run sandboxed code with, sftkit's own first (real paths, no venv)."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    found = [getattr(sys, "_base_executable", "") or "", sys.executable]
    for directory in ("/usr/bin", "/usr/local/bin", "/bin"):
        found += [os.path.join(directory, version), os.path.join(directory, "python3")]
    real = [os.path.realpath(p) for p in found if p and os.path.exists(p)]
    return list(dict.fromkeys(real))


def usable_python(as_nobody: bool) -> str:
    """An interpreter for a plain (unsandboxed) helper process; one user nobody can run if asked."""
    found = [p for p in _interpreters() if not as_nobody or _world_executable(p)]
    if not found:
        raise OSError("no Python interpreter that user nobody can execute")
    return found[0]


def _prefix(python: str) -> str:
    """The installation prefix of ``python`` (``/usr`` for ``/usr/bin/python3.11``)."""
    return os.path.dirname(os.path.dirname(os.path.realpath(python)))


def package_dirs(roots: list[str]) -> list[str]:
    """The installed-package directories under ``/usr`` and ``roots`` (site- and dist-packages):
    hidden in the sandbox, whose ``python -I -S`` never imports from them."""
    import glob

    found = ["/usr/lib/python3/dist-packages"]
    for root in ("/usr", "/usr/local", *roots):
        for lib in ("lib", "lib64"):
            found += glob.glob(f"{root}/{lib}/python3*/site-packages") + glob.glob(f"{root}/{lib}/python3*/dist-packages")
    return sorted({p for p in found if os.path.isdir(p) and not os.path.islink(p)})


class Sandbox:
    """How to start a Python process isolated (:meth:`command`); ``as_nobody`` when sftkit is root."""

    def __init__(self, python: str, as_nobody: bool):
        self.python = python
        self.as_nobody = as_nobody

    def command(self, job: str, share: str, script: str, args: list[str], env: dict[str, str]) -> list[str]:
        """The command line running ``/sandbox/<script> args`` isolated, ``job/<share>`` mounted
        read-only at ``/sandbox``; ``job`` must contain an empty directory ``root`` (the new root's
        mount point), and nothing else of ``job`` is visible inside."""
        prefix = _prefix(self.python)
        ro = [] if prefix in ("/usr", "/") or prefix.startswith("/usr/") else [prefix]
        cfg = {"root": os.path.join(job, "root"), "job": os.path.join(job, share), "ro": ro, "hide": package_dirs(ro),
               "tmp_mb": TMP_MB, "shm_mb": SHM_MB,
               "argv": [self.python, "-I", "-S", "/sandbox/" + script, *args], "env": env}
        head = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"] if self.as_nobody else []
        return [*head, "unshare", "--user", "--map-root-user", "--mount", "--pid", "--net", "--ipc", "--uts",
                "--fork", "--kill-child", "--", self.python, "-I", "-S", "-c", INIT, json.dumps(cfg)]


def _try(sandbox: Sandbox) -> str | None:
    """None when ``sandbox`` runs a probe that sees only its own view; else why not."""
    import tempfile

    job = tempfile.mkdtemp(prefix="sftkit-probe-")
    try:
        os.mkdir(os.path.join(job, "root"))
        os.mkdir(os.path.join(job, "share"))
        with open(os.path.join(job, "share", "probe.py"), "w") as f:
            f.write("import os\nassert os.getuid() == 65534 and os.getcwd() == '/tmp'\n"
                    "assert os.listdir('/sandbox') == ['probe.py'] and not os.path.exists('/proc/1')\n"
                    "print('ok')\n")
        if sandbox.as_nobody:
            for path in (job, os.path.join(job, "share"), os.path.join(job, "share", "probe.py")):
                os.chmod(path, 0o755)
        cmd = sandbox.command(job, "share", "probe.py", [], {"PATH": "/usr/bin:/bin"})
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=30, cwd="/")
        except (OSError, subprocess.SubprocessError) as exc:
            return str(exc)
        if proc.returncode == 0 and proc.stdout.strip() == b"ok":
            return None
        lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        return lines[-1][:300] if lines else f"exit code {proc.returncode}"
    finally:
        shutil.rmtree(job, ignore_errors=True)


@lru_cache(maxsize=1)
def availability() -> tuple[Sandbox | None, str]:
    """(a working :class:`Sandbox`, "") or (None, why namespaces cannot be used here)."""
    if not sys.platform.startswith("linux"):
        return None, "code sandboxing needs Linux namespaces"
    if not shutil.which("unshare"):
        return None, "the unshare command (util-linux) is not installed"
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    reasons = []
    candidates = _interpreters()
    if root and shutil.which("setpriv"):
        for python in (p for p in candidates if _world_executable(p)):
            sandbox = Sandbox(python, as_nobody=True)
            why = _try(sandbox)
            if why is None:
                return sandbox, ""
            reasons.append(why)
    for python in candidates[:1]:
        sandbox = Sandbox(python, as_nobody=False)
        why = _try(sandbox)
        if why is None:
            return sandbox, ""
        reasons.append(why)
    return None, f"user namespaces are not usable here ({reasons[-1] if reasons else 'no interpreter'})"
