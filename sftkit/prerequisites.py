"""``[recipe] after``: the earlier steps a recipe builds on (a run, an arena round), and what they make.

A recipe that reads another run's model or the arena's votes declares the steps that make them::

    [recipe]
    after = ["run quickstart", "arena quickstart"]   # a bare "quickstart" means "run quickstart"

Each entry is an sftkit command on a recipe (a shipped recipe's name or a file relative to this
one). Its product lies in the folder the steps are run from, which is where this recipe is meant to
sit (relative paths are relative to the recipe file): ``run R`` makes R's ``[output] dir``,
``arena R`` the arena's folder. While a product is missing, ``sftkit validate`` reports each path
under it as a note naming the command to run first (everything else is still checked), and ``sftkit
run`` refuses in one line (:func:`refuse_if_missing`). Light: never imports the training stack.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import Problem, UsageError

ARENA_DIR = "arena"  # `sftkit arena --dir` default: where a round's votes go
VERBS = ("run", "arena")


@dataclass(frozen=True)
class Step:
    """One earlier step: the command that makes it and the folder it makes (resolved)."""

    command: str
    makes: Path


def _recipe_file(ref: str, base_dir: Path, host) -> Path | None:
    for path in (base_dir / ref, base_dir / f"{ref}.toml"):  # a file beside this recipe (a copy of a shipped one)
        if path.expanduser().is_file():
            return path.expanduser()
    if host is None:
        from .plugins import get_host

        host = get_host()
    comp = host.registry.find("recipes", ref)
    if comp is not None and isinstance(comp.factory, str):
        from .paths import resolve_path

        return resolve_path(comp.factory, None)
    return None


def _output_dir(recipe_file: Path, host) -> str:
    """The earlier recipe's ``[output] dir`` (``extends`` merged), as ``sftkit run`` names it."""
    from .config import resolve
    from .reading import read_recipe

    earlier, _ = read_recipe(recipe_file, host=host)
    config = resolve(earlier.data if earlier is not None else {})
    return str(config.output.dir).replace("{recipe.name}", str(config.name or recipe_file.stem)).rstrip("/") or "."


def shown_path(path: Path) -> str:
    """``path`` relative to the working directory when it lies under it, else absolute."""
    path = Path(os.path.abspath(path))
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def steps(data: dict, base_dir: Path, host=None) -> list[Step]:
    """The steps ``[recipe] after`` declares; raises :class:`UsageError` for an entry that names no
    known command or recipe."""
    out = []
    for entry in ((data.get("recipe") or {}).get("after") or []):
        verb, _, ref = str(entry).strip().partition(" ")
        if not ref:
            verb, ref = "run", verb
        ref = ref.strip()
        if verb not in VERBS:
            raise UsageError(f"[recipe] after: {entry!r} is not an earlier step",
                             hint="write RECIPE or COMMAND RECIPE, COMMAND one of: " + ", ".join(VERBS))
        recipe_file = _recipe_file(ref, Path(base_dir), host)
        if recipe_file is None:
            raise UsageError(f"[recipe] after: no recipe {ref!r} (neither a file beside this recipe nor a shipped one)",
                             hint="name a shipped recipe (`sftkit recipes list`) or a recipe file")
        makes = _output_dir(recipe_file, host) if verb == "run" else ARENA_DIR
        shown = shown_path(recipe_file)
        if verb == "run" and Path(shown).is_absolute():
            shown = ref  # `sftkit run` takes a shipped recipe's name too
        out.append(Step(f"sftkit {verb} {shown}", Path(os.path.abspath(Path(base_dir) / makes))))
    return out


def missing(data: dict, base_dir: Path, host=None) -> list[Step]:
    """The declared steps whose product does not exist yet."""
    return [s for s in steps(data, base_dir, host) if not s.makes.exists()]


def _value_at(data, path: str):
    from .reading import parse_override

    try:
        keys, _ = parse_override(f"{path}=0")
    except Exception:
        return None
    node = data
    for key in keys:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def awaiting(problems: list[Problem], data: dict, base_dir: Path, host=None) -> list[Problem]:
    """``problems`` with each one about a path an undone earlier step makes turned into a note that
    names the command to run first; an ``after`` entry that names nothing is a problem of its own."""
    try:
        todo = missing(data, base_dir, host)
    except UsageError as err:
        return [*problems, Problem(err.message, path="recipe.after", hint=err.hint)]
    if not todo:
        return problems
    out = []
    for p in problems:
        value = _value_at(data, p.path) if p.path else None
        where = (Path(base_dir) / value).resolve() if isinstance(value, str) and value else None
        step = next((s for s in todo if where is not None and where.is_relative_to(s.makes.resolve())), None)
        if step is None:
            out.append(p)
            continue
        out.append(Problem(f"{value!r} does not exist yet: an earlier step makes it ([recipe] after)", file=p.file,
                           line=p.line, col=p.col, path=p.path, hint=f"run `{step.command}` first", level="note"))
    return out


def refuse_if_missing(data: dict, base_dir: Path, where: str, host=None) -> None:
    """Raise a one-line :class:`UsageError` (exit 2) naming the commands to run first, if any."""
    todo = missing(data, base_dir, host)
    if todo:
        raise UsageError(f"this recipe builds on earlier steps not done yet ({', '.join(shown_path(s.makes) for s in todo)} "
                         "missing)", where=where, hint="run first: " + "; ".join(f"`{s.command}`" for s in todo))
