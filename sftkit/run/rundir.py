"""The run directory's life cycle: claim it, refuse to clobber, mark it complete last.

A directory sftkit started holds ``.sftkit-run`` (JSON: recipe name and hash, start time) from the
first moment; ``COMPLETE`` is written last, so a directory without it is an unfinished run. A
finished run is only replaced with ``--overwrite``; a directory holding anything else is never
touched.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from sftkit.errors import SftkitError

MARKER = ".sftkit-run"
COMPLETE = "COMPLETE"


def state(run_dir: Path) -> str:
    """``"absent"``, ``"empty"``, ``"complete"``, ``"unfinished"`` or ``"foreign"``."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        return "absent"
    if not run_dir.is_dir():
        return "foreign"
    if not any(run_dir.iterdir()):
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
        if child.name == MARKER:
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
    (run_dir / MARKER).write_text(json.dumps(data, indent=2), encoding="utf-8")


def mark_complete(run_dir: Path, summary: dict | None = None) -> None:
    """Write ``COMPLETE`` (last step of a run)."""
    body = {"finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **(summary or {})}
    (Path(run_dir) / COMPLETE).write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")


def unmark_complete(run_dir: Path) -> None:
    (Path(run_dir) / COMPLETE).unlink(missing_ok=True)
