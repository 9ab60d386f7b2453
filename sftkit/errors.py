"""Errors a user can cause: each one is a one-line message with where it happened and how to fix it."""

from __future__ import annotations

from dataclasses import dataclass, field

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2


@dataclass
class Problem:
    """One problem found in a recipe (or its data): what, where, how to fix."""

    message: str
    file: str | None = None
    line: int | None = None
    col: int | None = None
    path: str = ""  # dotted key path inside the recipe, e.g. "training.learning_rate"
    hint: str | None = None

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
        return " ".join(parts)

    def as_dict(self) -> dict:
        return {
            "file": self.file,
            "line": self.line,
            "col": self.col,
            "path": self.path,
            "message": self.message,
            "hint": self.hint,
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
        return text


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
