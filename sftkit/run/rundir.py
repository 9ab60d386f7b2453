"""The run directory's life cycle: lock it, claim it, refuse to clobber, mark it complete last.

One process at a time: :func:`lock` takes an exclusive ``flock`` on ``.sftkit-lock`` inside the
directory for the whole run and writes the holder's pid and command into it. The kernel drops the
lock when its process dies, so a lock left by a killed run is stale by construction (detected, not
guessed from the pid) and the next run takes it over. A directory sftkit started holds
``.sftkit-run`` (JSON: recipe name and hash, start time) from the first moment; ``COMPLETE`` is
written last, so a directory without it is an unfinished run. A finished run is only replaced
with ``--overwrite``; a directory holding anything else is never touched. Where the directory is
(:func:`path_for`) and whether the file system can hold it (:func:`path_problem`) are decided here
too, for ``sftkit run`` and ``sftkit validate`` alike.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

from sftkit.errors import SftkitError, shorten

MARKER = ".sftkit-run"
COMPLETE = "COMPLETE"
LOCK = ".sftkit-lock"

NAME_MAX = 255  # bytes in one name of a path (ext4, xfs, btrfs, tmpfs, APFS, NTFS)
PATH_MAX = 4096  # bytes in a whole path (Linux)
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
ROOM = 256  # bytes kept for what a run writes inside its directory (checkpoints/checkpoint-N/..., logs/...)


def path_for(output_dir: str, recipe_name: str, *, smoke: bool = False) -> Path:
    """The run directory ``[output] dir`` names: ``{recipe.name}`` substituted, ``~`` expanded, and
    for ``--smoke`` the smoke policy's own directory beside it."""
    import os

    from .smoke import SUFFIX, run_dir

    text = str(output_dir).replace("{recipe.name}", str(recipe_name))
    real = Path(text.rstrip("/") or ".").expanduser()
    if not smoke:
        return real
    if not real.name:  # "." (the current directory): its smoke run goes beside it, by its own name
        real = Path(os.path.abspath(real))
    return run_dir(real) if real.name else real / SUFFIX.lstrip("-")


def path_problem(run_dir: Path) -> str | None:
    """Why the file system cannot hold ``run_dir`` and the files a run writes in it, said of "the
    run directory" (a control character, a name over :data:`NAME_MAX` bytes, a path over
    :data:`PATH_MAX` less :data:`ROOM` bytes once made absolute), or None."""
    import os

    text = str(run_dir)
    bad = CONTROL_CHARS.search(text)
    if bad:
        return f"has a control character ({bad.group()!r})"
    try:
        longest = max((len(os.fsencode(part)) for part in Path(text).parts), default=0)
        whole = len(os.fsencode(os.path.abspath(text)))
    except UnicodeEncodeError:
        return "has a character the file system cannot encode"
    if longest > NAME_MAX:
        return f"has a name of {longest} bytes; file systems allow {NAME_MAX}"
    if whole > PATH_MAX - ROOM:
        return (f"is {whole} bytes long; at most {PATH_MAX - ROOM} leave room for the files a run writes in it "
                f"(paths are limited to {PATH_MAX} bytes)")
    return None


def usable(run_dir: Path) -> Path:
    """``run_dir``, or a one-line :class:`SftkitError` saying why the file system cannot hold it."""
    why = path_problem(run_dir)
    if why:
        raise SftkitError(f"the run directory {why}", where=shorten(str(run_dir), 200),
                          hint="choose a shorter directory, without control characters, with --output or "
                               "[output] dir (or a shorter [recipe] name)")
    return Path(run_dir)


class RunLock:
    """An exclusive lock on a run directory, held until :meth:`release` (or the process ends)."""

    def __init__(self, run_dir: Path, fd: int, created_dir: bool):
        self.run_dir, self.fd, self.created_dir = Path(run_dir), fd, created_dir

    def release(self) -> None:
        """Unlock; remove the lock file, and the directory when the run created it and left it empty."""
        if self.fd < 0:
            return
        import os

        try:
            os.unlink(self.run_dir / LOCK)
        except OSError:
            pass
        os.close(self.fd)
        self.fd = -1
        if self.created_dir:
            try:
                self.run_dir.rmdir()
            except OSError:
                pass

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def lock(run_dir: Path, command: str = "sftkit run") -> RunLock:
    """Take the run directory's lock (creating the directory if needed) or raise a one-line error
    naming the process that holds it."""
    import errno
    import fcntl
    import os

    run_dir = Path(run_dir)
    where = str(run_dir)
    usable(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise SftkitError("the output path is a file, not a directory", where=where,
                          hint="choose another directory with --output or [output] dir")
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SftkitError(f"cannot create the run directory: {exc.strerror}", where=where,
                          hint="choose a writable directory with --output") from None
    path = run_dir / LOCK
    for _ in range(20):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise SftkitError(f"cannot write in the run directory: {exc.strerror}", where=where,
                              hint="choose a writable directory with --output") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise SftkitError(f"cannot lock the run directory: {exc.strerror}", where=where) from None
            holder = _holder(path)
            raise SftkitError(f"another sftkit process ({holder}) is using this run directory", where=where,
                              hint="wait for it to finish or stop it, or write elsewhere with --output")
        try:  # the file may have been released (unlinked) between our open and our lock: retry
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except OSError:
            same = False
        if not same:
            os.close(fd)
            continue
        info = {"pid": os.getpid(), "command": command,
                "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps(info) + "\n").encode())
        return RunLock(run_dir, fd, created)
    raise SftkitError("could not take the run directory's lock (it keeps changing)", where=where)


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return f"pid {int(info['pid'])}, {info.get('command', 'sftkit')}, since {info.get('started', '?')}"
    except (OSError, ValueError, KeyError, TypeError):
        return "pid unknown"


def _entries(run_dir: Path) -> list[Path]:
    return [p for p in run_dir.iterdir() if p.name != LOCK]


def state(run_dir: Path) -> str:
    """``"absent"``, ``"empty"``, ``"complete"``, ``"unfinished"`` or ``"foreign"``."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        return "absent"
    if not run_dir.is_dir():
        return "foreign"
    if not _entries(run_dir):
        return "empty"
    if not (run_dir / MARKER).is_file():
        return "foreign"
    return "complete" if (run_dir / COMPLETE).is_file() else "unfinished"


def read_marker(run_dir: Path) -> dict:
    try:
        return json.loads((Path(run_dir) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def claim(run_dir: Path, *, recipe_name: str, recipe_hash: str, overwrite: bool = False,
          resume: bool = False, dry_run: bool = False) -> str:
    """Prepare ``run_dir`` for a run and return what happened: ``"new"``, ``"overwritten"`` or
    ``"resumed"``. Raises a one-line :class:`SftkitError` when the directory must not be used.
    ``dry_run``: only check (nothing is written or removed)."""
    run_dir = Path(run_dir)
    st = state(run_dir)
    where = str(run_dir)
    if st == "foreign":
        raise SftkitError("the output directory holds files that are not an sftkit run; refusing to write there",
                          where=where, hint="choose another directory with --output or [output] dir")
    if resume:
        if st in ("absent", "empty"):
            raise SftkitError("nothing to resume: no run was started in this directory", where=where,
                              hint="run without --resume")
        if st == "complete":
            raise SftkitError("this run already finished; nothing to resume", where=where,
                              hint="pass --overwrite to train again")
        old = read_marker(run_dir).get("recipe_hash")
        if old and old != recipe_hash:
            raise SftkitError("the recipe changed since this run started, so it cannot be resumed", where=where,
                              hint="resume with the same recipe and --set values, or pass --overwrite")
        if not dry_run:
            _write_marker(run_dir, recipe_name, recipe_hash, resumed=True)
        return "resumed"
    outcome = "new"
    if st == "complete" and not overwrite:
        raise SftkitError("a finished run is already in the output directory", where=where,
                          hint="pass --overwrite to replace it, or --output DIR to write elsewhere")
    if st == "unfinished" and not overwrite:
        raise SftkitError("an unfinished run is in the output directory", where=where,
                          hint="pass --resume to continue it, or --overwrite to start again")
    if st in ("complete", "unfinished"):
        outcome = "overwritten"
    if dry_run:
        return outcome
    if outcome == "overwritten":
        _clear(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_marker(run_dir, recipe_name, recipe_hash)
    return outcome


def _clear(run_dir: Path) -> None:
    # remove COMPLETE first, so an interrupted clean-up never leaves a "finished" half-run
    (run_dir / COMPLETE).unlink(missing_ok=True)
    for child in run_dir.iterdir():
        if child.name in (MARKER, LOCK):
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def discard(run_dir: Path, *, remove_dir: bool) -> None:
    """Remove what a run that failed before training wrote (the marker included), so the next run
    starts clean; ``remove_dir`` also removes the (then empty) directory."""
    run_dir = Path(run_dir)
    if state(run_dir) != "unfinished":
        return
    _clear(run_dir)
    (run_dir / MARKER).unlink(missing_ok=True)
    if remove_dir:
        try:
            run_dir.rmdir()
        except OSError:
            pass


def _write_marker(run_dir: Path, name: str, recipe_hash: str, resumed: bool = False) -> None:
    data = read_marker(run_dir) if resumed else {}
    data.update({"recipe": name, "recipe_hash": recipe_hash})
    data.setdefault("started", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    if resumed:
        data["resumed"] = data.get("resumed", 0) + 1
    from sftkit.redaction import scrub

    (run_dir / MARKER).write_text(scrub(json.dumps(data, indent=2)), encoding="utf-8")


def mark_complete(run_dir: Path, summary: dict | None = None) -> None:
    """Write ``COMPLETE`` (last step of a run)."""
    from sftkit.redaction import scrub

    body = {"finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **(summary or {})}
    (Path(run_dir) / COMPLETE).write_text(scrub(json.dumps(body, indent=2)) + "\n", encoding="utf-8")


def unmark_complete(run_dir: Path) -> None:
    (Path(run_dir) / COMPLETE).unlink(missing_ok=True)
