"""Built-in recipes (a plugin like any other): every ``sftkit/recipes/*.toml`` file.

Found by globbing the package directory when the hook runs, so a new recipe file needs no code
change. Reads each file with ``tomllib`` only (no heavy import): its ``[recipe] name`` is the
registered name (the file stem when missing) and its ``[recipe] description`` the doc.
"""

from __future__ import annotations

from pathlib import Path

from sftkit import hookimpl

RECIPES_DIR = Path(__file__).resolve().parent.parent / "recipes"


def recipe_header(path: Path) -> tuple[str, str]:
    """Return ``(name, description)`` of a recipe file; the stem and a note when it cannot be read."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, ValueError) as exc:
        return path.stem, f"(unreadable recipe file: {exc})"
    section = data.get("recipe") if isinstance(data.get("recipe"), dict) else {}
    name = section.get("name") if isinstance(section.get("name"), str) and section.get("name") else path.stem
    description = section.get("description") if isinstance(section.get("description"), str) else ""
    return name, description.strip()


def shipped_recipes(directory: Path | None = None) -> list[tuple[str, str, str]]:
    """``(name, package:// path, description)`` for every ``*.toml`` in ``directory`` (default: the
    ``sftkit/recipes`` folder), by file name."""
    found = []
    for path in sorted(Path(directory or RECIPES_DIR).glob("*.toml")):
        name, description = recipe_header(path)
        found.append((name, f"package://sftkit/recipes/{path.name}", description))
    return found


@hookimpl
def sftkit_register_recipes(register):
    seen: set[str] = set()
    for name, location, description in shipped_recipes():
        if name in seen:  # two files claiming one name: keep the first, do not break every command
            continue
        seen.add(name)
        register(name, location, doc=description)
