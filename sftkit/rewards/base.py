"""What a reward is: the :class:`Reward` base class a reward (built-in or plugin) extends, how its
registration is declared on the class, and :class:`RewardError`.

A reward scores sampled completions during training (the ``reasoning`` strategy): for each
completion one float, or None when it does not apply to that row (a code reward on a row without
tests). It is registered through the hook ``sftkit_register_rewards(register)`` as
``register(name, factory, schema=..., doc=..., check=..., reads=...)``; the factory is called as
``factory(options)`` with the ``[[reward]]`` table's own options (``name``, ``weight`` and
``label`` removed, schema defaults filled) and returns a :class:`Reward`. Light: imports nothing heavy.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from ..errors import PluginError

# What ``reads`` may be: the row columns a reward needs, each a column name or a list of alternative
# names (any one present will do), or a callable ``reads(options) -> that list`` (the columns
# depend on the options, e.g. ``expected_field``).
Reads = Sequence[Any] | Callable[[dict], Sequence[Any]]


class RewardError(PluginError):
    """A reward failed while scoring (raised, returned NaN / inf / a non-number / the wrong number
    of scores): one line naming the reward and the plugin that registered it."""


class Reward:
    """A reward component. Subclass it, set ``name``, implement :meth:`score`.

    What sftkit's own rewards register is declared on the class, beside the code, as for
    evaluators (:func:`registration`): ``doc``, ``option_schema``, ``check`` and ``reads``.
    """

    name: str = ""
    doc: str = ""
    option_schema: dict | None = None  # JSON Schema of its own options (``type: object``)
    check: Any = None  # check(options, ctx) -> [Problem], run by ``sftkit validate`` (light)
    reads: Reads = ()  # the row columns it needs (see :data:`Reads`)

    def __init__(self, options: dict | None = None):
        self.options = dict(options or {})

    def opt(self, key: str, default: Any = None) -> Any:
        value = self.options.get(key)
        return default if value is None else value

    def score(self, prompts: list, completions: list[str], rows: list[dict], step: int) -> list[float | None]:
        """One float per completion (None = not applicable to this row). ``prompts[i]`` is the
        conversation (list of ``{"role", "content"}``) completion i answered; ``rows[i]`` is the data
        row it came from (all its columns, e.g. ``"expected"``, ``"tests"``, ``"entry_point"``;
        ``"truncated"`` is True when the completion was cut at the length limit); ``step`` the
        optimizer step."""
        raise NotImplementedError  # pragma: no cover - interface


def registration(cls: type[Reward]) -> dict:
    """What sftkit registers for a reward class: its option schema, doc, check and ``reads``."""
    return {"schema": cls.option_schema, "doc": cls.doc, "check": cls.check, "reads": cls.reads}


def reads_problem(reads: Any) -> str | None:
    """Why ``reads`` registration metadata is malformed, or None."""
    if reads is None or callable(reads):
        return None
    if isinstance(reads, (str, bytes)) or not isinstance(reads, (list, tuple)):
        return f"reads={reads!r} must be a list of column names (or a callable options -> list)"
    for entry in reads:
        alts = entry if isinstance(entry, (list, tuple)) else [entry]
        if not alts or not all(isinstance(a, str) and a for a in alts):
            return (f"reads entry {entry!r} must be a column name or a list of alternative column names")
    return None


def columns_read(reads: Any, options: dict) -> list[tuple[str, ...]]:
    """The columns a reward with these options reads, each as a tuple of alternatives."""
    found = reads(options) if callable(reads) else reads
    return [tuple(e) if isinstance(e, (list, tuple)) else (e,) for e in (found or [])]


def missing_columns(reads: Any, options: dict, columns) -> list[tuple[str, ...]]:
    """The entries of ``reads`` none of whose alternatives is among ``columns``."""
    have = set(columns)
    return [alts for alts in columns_read(reads, options) if not have & set(alts)]


def describe(alts: tuple[str, ...]) -> str:
    return repr(alts[0]) if len(alts) == 1 else " or ".join(map(repr, alts))
