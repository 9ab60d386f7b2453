"""Errors a user can cause: each one is a one-line message with where it happened and how to fix it."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2


def dotted(path) -> str:
    """A key path as a recipe writes it: ``("data", 0, "path")`` -> ``data[0].path``."""
    out = ""
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out


def shorten(text: str, limit: int = 120) -> str:
    """``text`` cut to ``limit`` characters (``...`` at the end when cut), so a message stays one
    readable line however long the value it quotes."""
    text = str(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(text: str) -> str:
    """``text`` with every control character and line separator escaped as JSON escapes it (``\\n``,
    ``\\u001b``): a value quoted in a message can neither break it into lines nor drive the terminal
    (and a secret so escaped is still one of the forms redaction knows)."""
    return _UNPRINTABLE.sub(lambda m: json.dumps(m.group())[1:-1], text)


@dataclass
class Problem:
    """One problem found in a recipe (or its data): what, where, how to fix."""

    message: str
    file: str | None = None
    line: int | None = None
    col: int | None = None
    path: str = ""  # dotted key path inside the recipe, e.g. "training.learning_rate"
    hint: str | None = None
    level: str = "error"  # "note": the recipe is valid (an earlier step not done yet); validate says so apart

    def location(self) -> str:
        where = self.file or ""
        if self.file and self.line:
            where += f":{self.line}"
            if self.col:
                where += f":{self.col}"
        return where

    def format(self) -> str:
        parts = []
        loc = self.location()
        if loc:
            parts.append(f"{loc}:")
        if self.path:
            parts.append(f"{self.path}:")
        text = self.message
        if self.hint:
            text += f" ({self.hint})" if not self.hint.startswith("did you mean") else f"; {self.hint}"
        parts.append(text)
        return one_line(" ".join(parts))

    def as_dict(self) -> dict:
        return {
            "file": self.file,
            "line": self.line,
            "col": self.col,
            "path": self.path,
            "message": self.message,
            "hint": self.hint,
            "level": self.level,
        }


class SftkitError(Exception):
    """An error the user can fix. The CLI prints ``str(err)`` (one line) and exits with ``exit_code``."""

    exit_code = EXIT_INVALID

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None,
                 exit_code: int | None = None):
        self.message = message
        self.where = where
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code
        super().__init__(self.format())

    def format(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text += f" — {self.hint}"
        return one_line(text)


class RecipeError(SftkitError):
    """A recipe is invalid; carries every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        first = problems[0].format() if problems else "invalid recipe"
        more = f" (and {len(problems) - 1} more problem(s); run `sftkit validate` to list them)" if len(problems) > 1 else ""
        super().__init__(first + more)


class PluginError(SftkitError):
    """A plugin failed to load, registered something twice, or raised in a hook or factory."""


class DataError(SftkitError):
    """Data could not be read or converted: names file and line/row, the problem and the fields found."""


class UsageError(SftkitError):
    """The command line itself is wrong."""

    exit_code = EXIT_USAGE


class GateError(SftkitError):
    """An evaluation gate (min / max / max_regression) was violated."""

    exit_code = 3


def did_you_mean(word: str, options) -> str | None:
    """Return 'did you mean "x"?' for the closest option, or None."""
    import difflib

    options = [str(o) for o in options]
    close = difflib.get_close_matches(str(word), options, n=1, cutoff=0.6)
    return f'did you mean "{close[0]}"?' if close else None


STORAGE_ERRNOS = {28: "no space left on the device", 30: "the file system is read-only", 13: "permission denied",
                  122: "the disk quota is exceeded", 27: "a file is too large for the file system",
                  36: "a file name or path is too long for the file system",
                  20: "a part of the path is a file, not a directory"}


RUN_STORAGE_HINT = ("free space or choose a writable --output; the run was not marked finished (continue it "
                    "later with --resume)")
LONG_PATH_HINT = ("choose a shorter --output or [output] dir; the run was not marked finished (continue it later "
                  "with --resume)")


def storage_error(exc: BaseException, directory=None, hint: str = RUN_STORAGE_HINT) -> SftkitError | None:
    """A one-line error for a failed write (full disk, read-only or forbidden directory), also when
    a library reports it in its own exception type (safetensors' text, torch's "unexpected pos"
    with no space left in ``directory``), or None for anything else. ``hint`` says how to fix it
    for the command at hand (by default: a run's)."""
    import os
    import re

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        code = getattr(exc, "errno", None)
        if code is None:  # safetensors: "Error while serializing: IoError(Os { code: 28, ... })"
            m = re.search(r"\bOs \{ code: (\d+)", str(exc))
            code = int(m.group(1)) if m else None
        if code in STORAGE_ERRNOS:
            where = getattr(exc, "filename", None)
            return SftkitError(f"cannot write or read a file: {STORAGE_ERRNOS[code]}",
                               where=shorten(str(where), 200) if where else None,
                               hint=LONG_PATH_HINT if code == 36 and hint == RUN_STORAGE_HINT else hint)
        exc = exc.__cause__ or exc.__context__
    if directory is not None:
        try:
            st = os.statvfs(directory)
            full = st.f_bavail * st.f_frsize < (1 << 20)
        except OSError:
            full = False
        if full:
            return SftkitError(f"cannot write: {STORAGE_ERRNOS[28]}", where=str(directory), hint=hint)
    return None
