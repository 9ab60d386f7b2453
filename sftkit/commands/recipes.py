"""``sftkit recipes``: list, show and copy the recipes shipped by sftkit and by installed plugins.

A shipped recipe is registered through ``sftkit_register_recipes`` with a ``package://`` path (or a
plain path). ``copy`` writes an editable copy together with every file the recipe references
relative to itself (data, prompts, a parent recipe it ``extends`` by path), keeping their relative
layout so the copy needs no rewriting; ``package://`` paths and shipped-recipe names keep working
as they are.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import click

from sftkit.errors import SftkitError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass
class ShippedRecipe:
    """A registered recipe: name, the plugin (distribution) that ships it, description and file."""

    name: str
    plugin: str
    description: str
    location: str
    path: Path | None
    error: str | None = None


def _origin_label(host, origin: str) -> str:
    for info in host.plugins:
        if info.name == origin:
            return "sftkit" if info.builtin else (info.dist or info.name)
    return origin


def shipped_recipes(host=None) -> list[ShippedRecipe]:
    """Every registered recipe, sorted by name, with its file resolved (``error`` says why not)."""
    from sftkit.paths import resolve_path
    from sftkit.plugins import get_host

    host = host or get_host()
    out = []
    for comp in host.registry.all("recipes"):
        location = comp.factory if isinstance(comp.factory, (str, os.PathLike)) else None
        path, error = None, None
        if location is None:
            error = f"registered with a {type(comp.factory).__name__}, not a path"
        else:
            try:
                path = resolve_path(str(location), None)
                if not path.is_file():
                    error = f"file {path} does not exist"
            except SftkitError as exc:
                error = str(exc)
        out.append(ShippedRecipe(comp.name, _origin_label(host, comp.origin), comp.doc or "", str(location),
                                 path, error))
    return out


def find_recipe(name: str, host=None) -> ShippedRecipe:
    """The shipped recipe ``name``; an unknown name is a one-line error with "did you mean"."""
    from sftkit.plugins import get_host

    host = host or get_host()
    for recipe in shipped_recipes(host):
        if recipe.name == name:
            if recipe.error:
                raise SftkitError(f"recipe {name!r} from {recipe.plugin}: {recipe.error}",
                                  hint=f"reinstall {recipe.plugin}")
            return recipe
    raise SftkitError(host.missing_message("recipes", name))


# --------------------------------------------------------------------------- copying

def _is_local_ref(value: str) -> bool:
    return bool(value) and "://" not in value and "\n" not in value and len(value) < 400 \
        and not os.path.isabs(os.path.expanduser(value))


def _strings(node):
    if isinstance(node, dict):
        for v in node.values():
            yield from _strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v)
    elif isinstance(node, str):
        yield node


def referenced_files(recipe_file: Path) -> tuple[list[str], str | None]:
    """Relative paths (as written) of the existing files/dirs a recipe references, and its
    ``extends`` value when that is a relative path to another recipe file."""
    data = tomllib.loads(recipe_file.read_text(encoding="utf-8"))
    base = recipe_file.parent
    refs = []
    for value in _strings(data):
        if _is_local_ref(value) and value not in refs and (base / value).exists() \
                and (base / value).resolve() != recipe_file.resolve():
            refs.append(value)
    section = data.get("recipe") if isinstance(data.get("recipe"), dict) else {}
    parent = section.get("extends")
    if isinstance(parent, str) and _is_local_ref(parent) and (base / parent).is_file():
        refs = [r for r in refs if r != parent]
        return refs, parent
    return refs, None


def _plan(recipe_file: Path, dest_file: Path, plan: dict, rewrites: dict, seen: set) -> None:
    """Fill ``plan`` (source -> destination) for a recipe and what it references, recursively."""
    recipe_file = recipe_file.resolve()
    if recipe_file in seen:
        return
    seen.add(recipe_file)
    plan[recipe_file] = dest_file
    refs, parent = referenced_files(recipe_file)
    src_dir, dst_dir = recipe_file.parent, dest_file.parent
    for ref in refs + ([parent] if parent else []):
        src = (src_dir / ref).resolve()
        inside = src == src_dir or src_dir in src.parents
        if inside:
            dst = dst_dir / src.relative_to(src_dir)
        else:  # a path that leaves the recipe's folder: copy it beside the recipe and rewrite the value
            dst = dst_dir / "_external" / src.name
            rewrites.setdefault(recipe_file, {})[ref] = f"_external/{src.name}"
        if ref == parent:
            _plan(src, dst, plan, rewrites, seen)
        else:
            plan.setdefault(src, dst)


def _rewrite(text: str, mapping: dict) -> str:
    for old, new in mapping.items():
        for quote in ('"', "'"):
            text = text.replace(f"{quote}{old}{quote}", f"{quote}{new}{quote}")
    return text


def copy_recipe(name: str, dest, *, host=None, force: bool = False) -> list[Path]:
    """Copy the shipped recipe ``name`` (and its files) into ``dest``: a directory, or a ``.toml`` file
    name. Returns the written paths, the recipe first. Existing files are kept unless ``force``."""
    recipe = find_recipe(name, host)
    dest = Path(dest)
    if dest.suffix != ".toml" and dest.exists() and not dest.is_dir():
        raise SftkitError(f"{dest} is a file", hint="give a directory to copy into, or a .toml file name")
    dest_file = dest if dest.suffix == ".toml" else dest / recipe.path.name
    plan: dict[Path, Path] = {}
    rewrites: dict[Path, dict] = {}
    _plan(recipe.path, dest_file, plan, rewrites, set())
    clashes = [d for d in plan.values() if d.exists()]
    if clashes and not force:
        raise SftkitError(f"{clashes[0]} already exists" + (f" (and {len(clashes) - 1} more)" if len(clashes) > 1 else ""),
                          hint="choose another destination or pass --force to overwrite")
    written = []
    for src, dst in plan.items():
        try:
            _copy_one(src, dst, rewrites.get(src))
        except OSError as exc:
            raise SftkitError(f"cannot copy {src} to {dst}: {exc.strerror or exc}",
                              hint="check the destination is writable") from exc
        written.append(dst)
    return written


def _copy_one(src: Path, dst: Path, rewrite: dict | None) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, dst, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    elif rewrite:
        dst.write_text(_rewrite(src.read_text(encoding="utf-8"), rewrite), encoding="utf-8")
    else:
        shutil.copy2(src, dst)
    if dst.is_file() and not os.access(dst, os.W_OK):  # files from read-only installs stay editable
        dst.chmod(dst.stat().st_mode | 0o200)


# --------------------------------------------------------------------------- commands

@click.group()
def recipes():
    """List, show and copy recipes shipped by sftkit and installed plugins."""


@recipes.command("list")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def list_command(fmt):
    """Every shipped recipe: name, the plugin that ships it, description."""
    items = shipped_recipes()
    if fmt == "json":
        click.echo(json.dumps([{"name": r.name, "plugin": r.plugin, "description": r.description,
                                "location": r.location, "path": str(r.path) if r.path else None,
                                "error": r.error} for r in items], indent=2))
        return
    if not items:
        click.echo("no recipes installed")
        return
    w_name = max(len("NAME"), *(len(r.name) for r in items))
    w_plugin = max(len("PLUGIN"), *(len(r.plugin) for r in items))
    click.echo(f"{'NAME':<{w_name}}  {'PLUGIN':<{w_plugin}}  DESCRIPTION")
    for r in items:
        desc = r.description if not r.error else f"(broken: {r.error})"
        click.echo(f"{r.name:<{w_name}}  {r.plugin:<{w_plugin}}  {desc}")


@recipes.command("show")
@click.argument("name")
@click.option("--path", "path_only", is_flag=True, help="Print the recipe file's path only.")
def show_command(name, path_only):
    """Print a shipped recipe's TOML."""
    recipe = find_recipe(name)
    if path_only:
        click.echo(str(recipe.path))
        return
    click.echo(f"# {recipe.name} — shipped by {recipe.plugin} ({recipe.path})", err=True)
    click.echo(recipe.path.read_text(encoding="utf-8"), nl=False)


@recipes.command("copy")
@click.argument("name")
@click.argument("dest", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite existing files.")
def copy_command(name, dest, force):
    """Copy a shipped recipe and the files it references into DEST (a directory or a .toml path) for editing."""
    written = copy_recipe(name, dest, force=force)
    for path in written:
        click.echo(f"wrote {path}")
    click.echo(f"next: sftkit validate {written[0]}", err=True)
