"""Named components (sources, formats, formatters, strategies, evaluators, rewards, recipes, transforms,
model loaders) and where they came from."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import PluginError, did_you_mean

BUILTIN_PREFIX = "sftkit"  # how recipes address built-in components explicitly: "sftkit:name"

KINDS = ("sources", "formats", "formatters", "strategies", "evaluators", "rewards", "recipes", "transforms",
         "model_loaders")

# How a recipe names each kind, for messages: (kind, table, key)
KIND_KEYS = {
    "sources": ("data", "source"),
    "formats": ("data", "format"),
    "formatters": ("template", "formatter"),
    "strategies": ("strategy", "name"),
    "evaluators": ("eval", "name"),
    "rewards": ("reward", "name"),
    "recipes": ("recipe", "extends"),
    "transforms": ("data", "transforms"),
    "model_loaders": ("model", "loader"),
}

SINGULAR = {"sources": "source", "formats": "format", "formatters": "formatter", "strategies": "strategy",
            "evaluators": "evaluator", "rewards": "reward", "recipes": "recipe", "transforms": "transform",
            "model_loaders": "model loader"}


def import_object(spec: str) -> Any:
    """Import ``"package.module:attr"`` (attr may be dotted) and return the object."""
    module_name, _, attr = spec.partition(":")
    obj = importlib.import_module(module_name)
    for part in filter(None, attr.split(".")):
        obj = getattr(obj, part)
    return obj


@dataclass
class Component:
    """A registered component: its name, lazy factory, option schema, docs and origin plugin."""

    kind: str
    name: str
    factory: Any  # a callable, or a "module:attr" string
    schema: dict | None = None
    doc: str = ""
    origin: str = "?"
    check: Any = None
    meta: dict = field(default_factory=dict)

    def load(self) -> Callable:
        """Return the factory, importing it if it was registered lazily. Errors name the plugin."""
        if isinstance(self.factory, str):
            try:
                self.factory = import_object(self.factory)
            except Exception as exc:  # the plugin's own error, with the plugin named
                raise PluginError(
                    f"{SINGULAR[self.kind]} {self.name!r} from plugin {self.origin!r} could not be "
                    f"imported ({self.factory}): {type(exc).__name__}: {exc}",
                    hint="reinstall or fix that plugin, or pick another component",
                ) from exc
        return self.factory

    def create(self, *args, **kwargs) -> Any:
        """Call the factory; an exception inside it is reported with the plugin named."""
        factory = self.load()
        try:
            return factory(*args, **kwargs)
        except Exception as exc:
            from .errors import SftkitError

            if isinstance(exc, SftkitError):
                raise
            raise PluginError(
                f"{SINGULAR[self.kind]} {self.name!r} from plugin {self.origin!r} failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    def load_check(self) -> Callable | None:
        if isinstance(self.check, str):
            self.check = import_object(self.check)
        return self.check

    @property
    def factory_spec(self) -> str:
        f = self.factory
        if isinstance(f, str):
            return f
        return f"{getattr(f, '__module__', '?')}:{getattr(f, '__qualname__', repr(f))}"


class Registry:
    """All components by kind and name, filled plugin by plugin (see :func:`sftkit.plugins.make_host`).

    A name registered by two plugins is *clashed*: neither component answers to the bare name (the
    recipe using it gets a message naming both plugins), and each stays reachable as
    ``"plugin:name"`` (``"sftkit:name"`` for built-ins), so only recipes that use the name are affected.
    A built-in's name never clashes: installing a plugin must not change what a recipe that does not
    use it means, so the built-in keeps the bare name and the plugin's component is *shadowed*,
    reachable only as ``"plugin:name"`` (:func:`shadow_note` says so when the plugin loads).
    """

    def __init__(self) -> None:
        self._items: dict[str, dict[str, Component]] = {k: {} for k in KINDS}
        self._qualified: dict[str, dict[str, Component]] = {k: {} for k in KINDS}
        self.clashes: dict[str, dict[str, list[str]]] = {k: {} for k in KINDS}  # kind -> name -> plugins
        self.shadowed: dict[str, dict[str, list[str]]] = {k: {} for k in KINDS}  # kind -> built-in name -> plugins
        self._builtin: dict[str, set[str]] = {k: set() for k in KINDS}  # names built-ins registered

    @staticmethod
    def staging(kind: str, origin: str, into: list, *, check_schemas: bool = True) -> Callable[..., None]:
        """The ``register`` callback handed to one plugin's hook: checks each registration (option
        schemas against JSON Schema when ``check_schemas``) and appends the component to ``into``
        (added to a registry only once the whole plugin loaded)."""

        def register(name: str, factory: Any, *, schema: dict | None = None, doc: str = "",
                     check: Any = None, **meta: Any) -> None:
            what = SINGULAR[kind]
            if not isinstance(name, str) or not name or ":" in name:
                raise PluginError(f"invalid {what} name {name!r}: use a non-empty string without ':'")
            if any(c.kind == kind and c.name == name for c in into):
                raise PluginError(f"registered {what} {name!r} twice")
            if schema is not None:
                problem = schema_problem(schema, full=check_schemas)
                if problem:
                    raise PluginError(f"the option schema of {what} {name!r} is not valid: {problem}")
            problem = meta_problem(meta) or (format_problem(factory, meta) if kind == "formats" else None)
            if problem:
                raise PluginError(f"{what} {name!r}: {problem}")
            if check_schemas and kind != "recipes":  # third-party lazy paths (a recipe's is a file): a typo fails the plugin now, not after training
                for label, spec in (("factory", factory), ("check", check), ("match", meta.get("match"))):
                    problem = lazy_path_problem(spec) if isinstance(spec, str) else None
                    if problem:
                        raise PluginError(f"{what} {name!r}: {label} {spec!r} {problem}")
            into.append(Component(kind, name, factory, schema, doc or "", origin, check, meta))

        return register

    def add(self, comp: Component, prefix: str) -> None:
        """Add a component of a plugin that loaded; ``prefix`` addresses it as ``prefix:name``."""
        self._qualified[comp.kind][f"{prefix}:{comp.name}"] = comp
        if prefix == BUILTIN_PREFIX:
            self._builtin[comp.kind].add(comp.name)
            taken = self._items[comp.kind].get(comp.name)
            if taken is not None and taken.origin != comp.origin:  # a plugin got there first: the built-in wins
                self.shadowed[comp.kind].setdefault(comp.name, []).append(taken.origin)
            self._items[comp.kind][comp.name] = comp
            return
        if comp.name in self._builtin[comp.kind]:
            self.shadowed[comp.kind].setdefault(comp.name, []).append(comp.origin)
            return
        clash = self.clashes[comp.kind].get(comp.name)
        if clash is not None:
            clash.append(comp.origin)
            return
        existing = self._items[comp.kind].pop(comp.name, None)
        if existing is not None:
            self.clashes[comp.kind][comp.name] = [existing.origin, comp.origin]
            return
        self._items[comp.kind][comp.name] = comp

    def names(self, kind: str) -> list[str]:
        return sorted(self._items[kind])

    def qualified_names(self, kind: str) -> list[str]:
        """Every component of ``kind`` as ``plugin:name``."""
        return sorted(self._qualified[kind])

    def addresses(self, kind: str) -> list[tuple[str, Component]]:
        """``(name, component)`` for every name a recipe can use without a prefix, plus
        ``plugin:name`` for the components whose bare name clashed (what editors should offer)."""
        out = [(n, self._items[kind][n]) for n in self.names(kind)]
        out += [(q, c) for q, c in sorted(self._qualified[kind].items())
                if c.name in self.clashes[kind] or (c.name in self.shadowed[kind] and c is not self._items[kind].get(c.name))]
        return out

    def all(self, kind: str) -> list[Component]:
        return [self._items[kind][n] for n in self.names(kind)]

    def in_order(self, kind: str) -> list[Component]:
        """The components a bare name reaches, in the order they were registered (built-ins first)."""
        return list(self._items[kind].values())

    def is_builtin(self, comp: Component) -> bool:
        """Whether ``comp`` is one of sftkit's own components."""
        return self._qualified[comp.kind].get(f"{BUILTIN_PREFIX}:{comp.name}") is comp

    def find(self, kind: str, name: str) -> Component | None:
        """The component ``name`` (or ``plugin:name``) names, or None (unknown or clashed)."""
        if ":" in name:
            return self._qualified[kind].get(name)
        return self._items[kind].get(name)

    def get(self, kind: str, name: str) -> Component:
        """Return the component or raise a one-line error listing what exists (with "did you mean")."""
        comp = self.find(kind, name)
        if comp is None:
            raise PluginError(unknown_component_message(self, kind, name))
        return comp

    def by_origin(self, origin: str) -> list[Component]:
        return [c for kind in KINDS for c in self._qualified[kind].values() if c.origin == origin]


def meta_problem(meta: dict) -> str | None:
    """Why registration metadata sftkit reads (``emits``, ``accepts``) is malformed, or None."""
    from .records import KINDS as DATA_KINDS

    emits = meta.get("emits")
    if emits is not None and emits not in DATA_KINDS:
        return f"emits={emits!r} is not a data kind (one of: {', '.join(DATA_KINDS)})"
    accepts = meta.get("accepts")
    if accepts is not None and (isinstance(accepts, str) or not all(a in DATA_KINDS for a in accepts)):
        return f"accepts={accepts!r} must be a list of data kinds (from: {', '.join(DATA_KINDS)})"
    if "rewards" in meta and not isinstance(meta["rewards"], bool):
        return f"rewards={meta['rewards']!r} must be true (the strategy trains on [[reward]] tables) or false"
    if "reads" in meta:
        from .rewards.base import reads_problem

        problem = reads_problem(meta["reads"])
        if problem:
            return problem
    starter = meta.get("starter")
    if starter is not None and (not isinstance(starter, dict) or set(starter) - {"model", "rows", "template", "rewards"}
                                or not all(isinstance(r, dict) for r in starter.get("rows") or [])
                                or not all(isinstance(r, dict) for r in starter.get("rewards") or [])):
        return ("starter= must be a dict with optional model (str), rows (a list of row dicts), template (bool) "
                "and rewards (a list of [[reward]] tables)")
    return None


def format_problem(convert: Any, meta: dict) -> str | None:
    """Why a record format's registration (``sftkit_register_formats``) is malformed, or None."""
    if not (callable(convert) or isinstance(convert, str)):
        return f"the converter must be a callable (row) -> record or a \"module:attr\" string, got {type(convert).__name__}"
    if meta.get("emits") is None:
        return "emits= is required: the canonical kind of the records its converter returns"
    fields = meta.get("fields")

    def names(value: Any) -> bool:
        return isinstance(value, str) and bool(value)

    if (not isinstance(fields, (list, tuple)) or not fields
            or not all(names(f) or (isinstance(f, (list, tuple)) and f and all(map(names, f))) for f in fields)):
        return ("fields= must be a non-empty list of the fields a row needs (each a name, or a list of "
                "alternative names)")
    optional = meta.get("optional", ())
    if not isinstance(optional, (list, tuple)) or not all(map(names, optional)):
        return "optional= must be a list of field names"
    detect = meta.get("detect")
    if detect is not None and (isinstance(detect, bool) or not isinstance(detect, (int, float))):
        return f"detect={detect!r} must be a number (the priority of auto-detection, higher first) or None"
    match = meta.get("match")
    if match is not None and not (callable(match) or isinstance(match, str)):
        return "match= must be a callable (columns, first_row) -> bool or a \"module:attr\" string"
    unknown = sorted(set(meta) - {"emits", "fields", "optional", "detect", "match"})
    if unknown:
        return f"unknown registration keyword(s) {', '.join(unknown)} (a format takes emits, fields, optional, detect, match)"
    return None


def schema_problem(schema: Any, *, full: bool = True) -> str | None:
    """Why ``schema`` cannot be a component's option schema (a JSON Schema object), or None;
    ``full=False`` checks only the shape (built-ins, whose schemas the test suite checks)."""
    if not isinstance(schema, dict) or schema.get("type", "object") != "object":
        return 'it must be a JSON Schema object ({"type": "object", "properties": {...}})'
    if not full:
        return None
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError, ValidationError

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = ".".join(str(p) for p in exc.path)
        return exc.message + (f" (at {where})" if where else "")
    stray = [k for k in schema if k not in SCHEMA_KEYWORDS and not k.startswith(("$", "x-"))]
    if stray:
        return (f"unknown keyword(s) {', '.join(map(repr, stray))} at its top level: options go under \"properties\" "
                f'({{"type": "object", "properties": {{"{stray[0]}": {{...}}}}}})')
    for key, prop in (schema.get("properties") or {}).items():
        if isinstance(prop, dict) and "default" in prop:
            try:
                Draft202012Validator(prop).validate(prop["default"])
            except ValidationError as exc:
                return f"the default of option {key!r} ({prop['default']!r}) violates its own schema: {exc.message}"
    return None


# JSON Schema (2020-12) keywords an option schema may have at its top level (besides "$..." and "x-...")
SCHEMA_KEYWORDS = frozenset((
    "type", "properties", "required", "additionalProperties", "patternProperties", "propertyNames",
    "unevaluatedProperties", "dependentRequired", "dependentSchemas", "dependencies", "minProperties",
    "maxProperties", "allOf", "anyOf", "oneOf", "not", "if", "then", "else", "enum", "const", "definitions",
    "title", "description", "default", "examples", "deprecated", "readOnly", "writeOnly", "format",
))


def lazy_path_problem(spec: str) -> str | None:
    """Why the lazy ``"module:attr"`` path ``spec`` cannot be imported, found without importing the
    module (which may import heavy libraries): the module is located on ``sys.path`` and its source
    read for a top-level ``attr``. None when it looks importable (or cannot be told without importing)."""
    import ast
    import sys

    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        return 'is not a "module:attr" string'
    head = attr.split(".")[0]
    module = sys.modules.get(module_name)
    names: set[str]
    if module is not None:
        if hasattr(module, head):
            return None
        names = set(dir(module))
    else:
        found = _find_spec(module_name)
        if found is None:
            return f"names module {module_name!r}, which is not installed (a typo?)"
        origin = getattr(found, "origin", None)
        if not (isinstance(origin, str) and origin.endswith(".py")):
            return None
        try:
            tree = ast.parse(open(origin, encoding="utf-8").read(), origin)
        except (OSError, SyntaxError, ValueError):
            return None  # importing it reports that, naming the plugin
        defined = _top_level_names(tree.body)
        if defined is None:  # star imports or a module __getattr__: only importing can tell
            return None
        names = defined
        if head in names or (found.submodule_search_locations and _find_spec(f"{module_name}.{head}")):
            return None
    hint = did_you_mean(head, sorted(names))
    return f"names no {head!r} in module {module_name!r}" + (f"; {hint}" if hint else "")


def _find_spec(name: str):
    """The import spec of module ``name`` without importing it or its parent packages, or None."""
    import importlib.machinery
    import importlib.util
    import sys

    parts = name.split(".")
    try:
        spec = importlib.util.find_spec(parts[0])
        for i in range(1, len(parts)):
            if spec is None:
                return None
            full = ".".join(parts[: i + 1])
            if full in sys.modules:
                spec = sys.modules[full].__spec__
                continue
            locations = spec.submodule_search_locations
            if locations is None:
                return None
            spec = importlib.machinery.PathFinder.find_spec(full, list(locations))
    except (ImportError, ValueError):
        return None
    return spec


def _top_level_names(body: list) -> set[str] | None:
    """Names a module's top-level statements define (into if/try/with blocks); None when it cannot
    be told (``from x import *``, a module ``__getattr__``)."""
    import ast

    names: set[str] = set()
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if node.name == "__getattr__":
                return None
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name == "*":
                    return None
                names.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
            for block in ("body", "orelse", "finalbody"):
                inner = _top_level_names(getattr(node, block, []) or [])
                if inner is None:
                    return None
                names |= inner
            for handler in getattr(node, "handlers", []):
                inner = _top_level_names(handler.body)
                if inner is None:
                    return None
                names |= inner
    return names


def shadow_notes(registry: Registry) -> list[str]:
    """One note per plugin component whose name is a built-in's: the bare name keeps meaning the
    built-in, the plugin's is reachable as ``plugin:name``."""
    out = []
    for kind in KINDS:
        for name, origins in sorted(registry.shadowed[kind].items()):
            for origin in origins:
                address = next((q for q, c in registry._qualified[kind].items() if c.name == name and c.origin == origin),
                               f"{origin}:{name}")
                out.append(f"plugin {origin!r} registers {SINGULAR[kind]} {name!r}, a built-in name: recipes' bare "
                           f"{name!r} keeps meaning sftkit's; write {address!r} to use the plugin's (renaming it "
                           "avoids the prefix)")
    return out


def clash_message(registry: Registry, kind: str, name: str) -> str | None:
    """The message for a name two plugins registered, or None."""
    origins = registry.clashes[kind].get(name)
    if not origins:
        return None
    what = SINGULAR[kind]
    addresses = [q for q, c in registry._qualified[kind].items() if c.name == name]
    return (f"{what} {name!r} is registered by plugins {' and '.join(repr(o) for o in origins)}, so the bare name "
            f"is disabled; write {' or '.join(repr(a) for a in sorted(addresses))} to pick one, or disable one "
            f"plugin with SFTKIT_DISABLE_PLUGINS")


def unknown_component_message(registry: Registry, kind: str, name: str) -> str:
    """Why ``name`` names no component: clashed, or unknown with a "did you mean" and what exists."""
    clash = clash_message(registry, kind, name)
    if clash:
        return clash
    names = registry.names(kind)
    msg = f"unknown {SINGULAR[kind]} {name!r}"
    hint = did_you_mean(name, registry.qualified_names(kind) if ":" in name else names)
    if hint:
        msg += f"; {hint}"
    msg += f" (available: {', '.join(names) or 'none'}; `sftkit plugins` lists installed plugins)"
    return msg
