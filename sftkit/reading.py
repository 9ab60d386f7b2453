"""Read a recipe: TOML, ``extends`` merged, ``${ENV}`` substituted, ``--set`` applied; nothing checked.

The first step of the straight line read (here) -> check (:mod:`sftkit.validate`) -> resolve
(:mod:`sftkit.recipe`: defaults filled, typed slices from :mod:`sftkit.config`). Every problem is collected as a :class:`sftkit.errors.Problem` with the file, line and column where
the TOML has a position for it, so ``sftkit validate`` can report all of them at once.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .errors import Problem, SftkitError, dotted, shorten  # noqa: F401  (dotted: re-exported)
from .tomlpos import find_position, key_positions

ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
SECRET_NAME_RE = re.compile(r"(token|secret|passw(or)?d|api[_-]?key|credential|auth)", re.I)
REDACTED = "***redacted***"


@dataclass
class Source:
    """Where the values of a merged recipe came from: file -> key positions."""

    origins: dict = field(default_factory=dict)  # path tuple -> file
    positions: dict = field(default_factory=dict)  # file -> {path: (line, col)}

    def locate(self, path: tuple, default_file: str | None) -> tuple[str | None, int | None, int | None]:
        path = tuple(path)
        probe = path
        while probe:
            f = self.origins.get(probe)
            if f is not None:
                pos = find_position(self.positions.get(f, {}), path)
                return f, (pos[0] if pos else None), (pos[1] if pos else None)
            probe = probe[:-1]
        pos = find_position(self.positions.get(default_file, {}), path) if default_file else None
        return default_file, (pos[0] if pos else None), (pos[1] if pos else None)


@dataclass
class Recipe:
    """A loaded recipe. ``data`` is resolved: extends merged, env substituted, defaults filled."""

    data: dict
    path: Path | None
    base_dir: Path
    source: Source = field(default_factory=Source)
    secrets: set = field(default_factory=set)  # key paths whose values came from secret-looking env vars

    @property
    def name(self) -> str:
        return str(self.data.get("recipe", {}).get("name", "recipe"))

    @property
    def config(self):
        """The typed slices of ``data`` (:class:`sftkit.config.Config`)."""
        from .config import resolve

        return resolve(self.data)


# --------------------------------------------------------------------------- reading

def read_toml(path: Path, problems: list[Problem]) -> tuple[dict | None, str | None]:
    """Parse one TOML file; on failure add a located problem and return (None, text)."""
    from .paths import not_a_regular_file

    shown = str(path)
    try:
        why = not_a_regular_file(Path(path), MAX_RECIPE_BYTES)
        if why:
            problems.append(Problem(why, file=shown, hint="point at a recipe file (.toml)"))
            return None, None
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        problems.append(Problem("file not found", file=shown, hint="check the path"))
        return None, None
    except IsADirectoryError:
        problems.append(Problem("is a directory, not a recipe file", file=shown))
        return None, None
    except OSError as exc:
        problems.append(Problem(f"cannot read file: {exc.strerror}", file=shown))
        return None, None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        problems.append(Problem(f"not valid UTF-8 (byte 0x{raw[exc.start]:02x})", file=shown, line=line, col=col,
                                hint="TOML files must be UTF-8: re-save the file as UTF-8"))
        return None, None
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.strip() or all(not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines()):
        problems.append(Problem("empty recipe", file=shown, line=1,
                                hint="add at least [recipe], [model], [[data]] and [strategy]; `sftkit init` writes a starting recipe"))
        return None, text
    try:
        data = tomllib.loads(text)
    except RecursionError:
        data = None
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
        line = int(m.group(1)) if m else getattr(exc, "lineno", None)
        col = int(m.group(2)) if m else getattr(exc, "colno", None)
        msg = re.sub(r"\s*\(at line \d+, column \d+\)", "", msg)
        msg = re.sub(r"\s*\(at end of document\)", " at end of document", msg)
        if msg.startswith("Cannot overwrite a value") or "Cannot declare" in msg:
            msg = f"duplicate key or table ({msg})"
            hint = "each key may appear once per table; remove or rename the repeated one"
        else:
            msg = f"malformed TOML: {msg[:1].lower() + msg[1:]}"
            hint = "fix the TOML syntax at that position"
        problems.append(Problem(msg, file=shown, line=line, col=col, hint=hint))
        return None, text
    if data is None or _depth(data) > MAX_DEPTH:
        problems.append(Problem(f"values nested more than {MAX_DEPTH} levels deep", file=shown,
                                hint="a recipe needs only a few levels of tables and arrays"))
        return None, text
    return data, text


MAX_RECIPE_BYTES = 4 << 20
MAX_DEPTH = 32


def _depth(data) -> int:
    """How deeply tables and arrays nest in ``data`` (iteratively: no recursion limit to hit)."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        node, d = stack.pop()
        if isinstance(node, (dict, list)):
            deepest = max(deepest, d)
            if d <= MAX_DEPTH:
                stack.extend((v, d + 1) for v in (node.values() if isinstance(node, dict) else node))
    return deepest


# --------------------------------------------------------------------------- extends

def _record_origins(data, path: tuple, file: str, origins: dict) -> None:
    origins[path] = file
    if isinstance(data, dict):
        for k, v in data.items():
            _record_origins(v, path + (k,), file, origins)
    elif isinstance(data, list):
        for i, v in enumerate(data):
            _record_origins(v, path + (i,), file, origins)


def deep_merge(base: dict, over: dict) -> dict:
    """Tables merge key by key; any other value (arrays included) in ``over`` replaces the base's."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _find_parent(ref: str, base_dir: Path, host) -> Path | None:
    from .paths import PACKAGE_SCHEME, resolve_path

    if ref.startswith(PACKAGE_SCHEME) or ref.endswith(".toml") or "/" in ref or os.sep in ref:
        return resolve_path(ref, base_dir)
    if host is not None:
        comp = host.registry.find("recipes", ref)
        if comp is not None:
            target = comp.factory if isinstance(comp.factory, str) else str(comp.factory)
            return resolve_path(target, None)
    return None


def _load_with_extends(path: Path, problems: list[Problem], source: Source, host, stack: tuple) -> dict | None:
    resolved = Path(path).resolve()
    shown = str(path)
    if resolved in stack:
        chain = " -> ".join(str(p) for p in (*stack, resolved))
        problems.append(Problem(f"extends cycle: {chain}", file=shown, path="recipe.extends",
                                hint="remove one of the extends links"))
        return None
    data, text = read_toml(path, problems)
    if data is None:
        return None
    source.positions[shown] = key_positions(text)
    own_origins: dict = {}
    _record_origins(data, (), shown, own_origins)
    ref = data.get("recipe", {}).get("extends") if isinstance(data.get("recipe"), dict) else None
    if ref is None:
        source.origins.update(own_origins)
        return data
    if not isinstance(ref, str):
        source.origins.update(own_origins)
        return data  # the schema reports the wrong type
    line, col = find_position(source.positions[shown], ("recipe", "extends")) or (None, None)
    try:
        parent_path = _find_parent(ref, Path(path).parent, host)
        found = parent_path is not None and parent_path.exists()
    except SftkitError as exc:  # package://... of a package that is not installed
        problems.append(Problem(f"extends {shorten(repr(ref))}: {shorten(exc.message)}", file=shown, line=line,
                                col=col, path="recipe.extends", hint=exc.hint and shorten(exc.hint)))
        return None
    except (OSError, ValueError) as exc:  # a name or path too long for the file system, a NUL byte
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        problems.append(Problem(f"extends {shorten(repr(ref))}: cannot be used: {why}", file=shown, line=line,
                                col=col, path="recipe.extends", hint="fix the path"))
        return None
    if not found:
        names = host.registry.names("recipes") if host is not None else []
        from .errors import did_you_mean

        hint = did_you_mean(ref, names) or (f"give a path relative to this file, package://..., or a shipped recipe name ({', '.join(names) or 'none installed'})")
        problems.append(Problem(f"extends {shorten(repr(ref))}: no such recipe file or shipped recipe"
                                + (f" (looked at {shorten(str(parent_path))})" if parent_path else ""),
                                file=shown, line=line, col=col, path="recipe.extends", hint=hint))
        return None
    parent = _load_with_extends(parent_path, problems, source, host, stack + (resolved,))
    if parent is None:
        return None
    parent = _rebase_parent(parent, Path(parent_path).parent, Path(path).parent, host)
    merged = deep_merge(parent, data)  # the child's keys win
    merged.setdefault("recipe", {}).pop("extends", None)
    for p, f in own_origins.items():
        source.origins[p] = f
    return merged


def _rebase_parent(parent: dict, parent_dir: Path, child_dir: Path, host) -> dict:
    """The parent with its relative file paths made absolute against the parent's folder, so they keep
    pointing where the parent meant when a recipe elsewhere extends it. File options are the ones
    the schema marks ``x-sftkit-path`` (in each component's schema and in the core tables, nested
    ones too), plus a local ``[model] name``."""
    if parent_dir.resolve() == child_dir.resolve():
        return parent
    from .core_schema import COMPONENT_TABLES, TOP_LEVEL
    from .paths import PACKAGE_SCHEME
    from .schema import component_of, component_tables, path_options

    def absolute(value: str) -> str:
        if value.startswith((PACKAGE_SCHEME, "~")) or "${" in value or os.path.isabs(value):
            return value
        return str((parent_dir / value).resolve())

    parent = copy.deepcopy(parent)
    if host is not None:
        for table, _path, item in component_tables(parent):
            comp = component_of(table, item, host.registry)
            for key_path, value in list(path_options(comp.schema if comp else None, item)):
                apply_override(item, key_path, absolute(value))
    for name, schema in TOP_LEVEL.items():
        if name not in COMPONENT_TABLES and isinstance(parent.get(name), dict):
            for key_path, value in list(path_options(schema, parent[name])):
                apply_override(parent[name], key_path, absolute(value))
    model = parent.get("model")
    if isinstance(model, dict) and isinstance(model.get("name"), str):
        from .modeling.loaders import reads_own_reference
        from .models import describe_model_source

        if reads_own_reference(model) and describe_model_source(model, parent_dir).kind != "hub":
            model["name"] = absolute(model["name"])
    return parent


# --------------------------------------------------------------------------- env vars and overrides

def substitute_env(data, problems: list[Problem], locate, secrets: set, path: tuple = ()):
    """Replace ``${VAR}`` / ``${VAR:-default}`` in strings; undefined variables are problems."""
    if isinstance(data, dict):
        return {k: substitute_env(v, problems, locate, secrets, path + (k,)) for k, v in data.items()}
    if isinstance(data, list):
        return [substitute_env(v, problems, locate, secrets, path + (i,)) for i, v in enumerate(data)]
    if not isinstance(data, str) or "${" not in data:
        return data

    def repl(m):
        name, default = m.group(1), m.group(2)
        if name in os.environ:
            from .redaction import register

            if SECRET_NAME_RE.search(name):
                secrets.add(path)
            register(os.environ[name])  # by value, whatever the name: redacted in all output
            return os.environ[name]
        if default is not None:
            return default
        f, line, col = locate(path)
        problems.append(Problem(f"environment variable ${{{name}}} is not set", file=f, line=line, col=col,
                                path=dotted(path), hint=f"export {name}=... or write ${{{name}:-default}}"))
        return m.group(0)

    return ENV_RE.sub(repl, data)


def parse_override(text: str) -> tuple[tuple, object]:
    """``"training.max_steps=2"`` -> (("training", "max_steps"), 2). Values are TOML literals, else strings."""
    from .errors import UsageError

    key, sep, value = text.partition("=")
    key = key.strip()
    shown = shorten(repr(text))
    if not sep or not key:
        raise UsageError(f"--set {shown}: expected KEY=VALUE, e.g. --set training.max_steps=2")
    path: list = []
    for part in key.split("."):
        m = re.fullmatch(r"([A-Za-z0-9_-]+)((?:\[\d+\])*)", part)
        if not m:
            raise UsageError(f"--set {shown}: bad key {shorten(repr(key))} (use dotted keys like data[0].path or "
                             "data.0.path)")
        path.append(int(m.group(1)) if m.group(1).isdigit() else m.group(1))
        path.extend(int(i) for i in re.findall(r"\[(\d+)\]", m.group(2)))
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value
    except RecursionError:
        parsed = None
    if parsed is None or len(path) + _depth(parsed) > MAX_DEPTH:
        raise UsageError(f"--set {shown}: key and value nested more than {MAX_DEPTH} levels deep",
                         hint="a recipe needs only a few levels of tables and arrays")
    return tuple(path), parsed


def apply_override(data: dict, path: tuple, value) -> None:
    from .errors import UsageError

    node = data
    for i, p in enumerate(path[:-1]):
        nxt = path[i + 1]
        if isinstance(p, int):
            if not isinstance(node, list) or p >= len(node):
                raise UsageError(f"--set {dotted(path)}: there is no {dotted(path[:i + 1])} in the recipe")
            node = node[p]
        else:
            if not isinstance(node, dict):
                raise UsageError(f"--set {dotted(path)}: {dotted(path[:i])} is not a table")
            node = node.setdefault(p, [] if isinstance(nxt, int) else {})
    last = path[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last >= len(node):
            raise UsageError(f"--set {dotted(path)}: index {last} is out of range")
        node[last] = value
    else:
        if not isinstance(node, dict):
            raise UsageError(f"--set {dotted(path)}: {dotted(path[:-1])} is not a table")
        node[last] = value


# --------------------------------------------------------------------------- public API

def read_recipe(path, overrides=(), *, host=None) -> tuple[Recipe | None, list[Problem]]:
    """Read, merge, substitute and override; do not validate. Returns (recipe or None, problems)."""
    path = Path(path)
    problems: list[Problem] = []
    source = Source()
    data = _load_with_extends(path, problems, source, host, ())
    if data is None:
        return None, problems
    shown = str(path)
    secrets: set = set()
    data = substitute_env(data, problems, lambda p: source.locate(p, shown), secrets)
    for text in overrides:
        key, value = parse_override(text)
        apply_override(data, key, value)
        source.origins[key] = "--set"
    return Recipe(data=data, path=path, base_dir=path.parent, source=source, secrets=secrets), problems


def recipe_hash(data: dict) -> str:
    """sha256 of the canonical JSON of a resolved recipe."""
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def redact(data: dict, secrets: set) -> dict:
    """A copy with secret-looking keys and values from secret env vars replaced."""

    def walk(node, path):
        if isinstance(node, dict):
            return {k: (REDACTED if (SECRET_NAME_RE.search(str(k)) and isinstance(v, str)) or (path + (k,)) in secrets
                        else walk(v, path + (k,))) for k, v in node.items()}
        if isinstance(node, list):
            return [REDACTED if (path + (i,)) in secrets else walk(v, path + (i,)) for i, v in enumerate(node)]
        return node

    return walk(data, ())
