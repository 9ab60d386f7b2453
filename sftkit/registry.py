"""Named components (sources, formatters, strategies, evaluators, recipes, transforms, model loaders) and where
they came from."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import PluginError, did_you_mean

KINDS = ("sources", "formatters", "strategies", "evaluators", "recipes", "transforms", "model_loaders")

# How a recipe names each kind, for messages: (kind, table, key)
KIND_KEYS = {
    "sources": ("data", "source"),
    "formatters": ("template", "formatter"),
    "strategies": ("strategy", "name"),
    "evaluators": ("eval", "name"),
    "recipes": ("recipe", "extends"),
    "transforms": ("data", "transforms"),
    "model_loaders": ("model", "loader"),
}

SINGULAR = {"sources": "source", "formatters": "formatter", "strategies": "strategy",
            "evaluators": "evaluator", "recipes": "recipe", "transforms": "transform",
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
    """

    def __init__(self) -> None:
        self._items: dict[str, dict[str, Component]] = {k: {} for k in KINDS}
        self._qualified: dict[str, dict[str, Component]] = {k: {} for k in KINDS}
        self.clashes: dict[str, dict[str, list[str]]] = {k: {} for k in KINDS}  # kind -> name -> plugins

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
            problem = meta_problem(meta)
            if problem:
                raise PluginError(f"{what} {name!r}: {problem}")
            into.append(Component(kind, name, factory, schema, doc or "", origin, check, meta))

        return register

    def add(self, comp: Component, prefix: str) -> None:
        """Add a component of a plugin that loaded; ``prefix`` addresses it as ``prefix:name``."""
        self._qualified[comp.kind][f"{prefix}:{comp.name}"] = comp
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
        out += [(q, c) for q, c in sorted(self._qualified[kind].items()) if c.name in self.clashes[kind]]
        return out

    def all(self, kind: str) -> list[Component]:
        return [self._items[kind][n] for n in self.names(kind)]

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
    starter = meta.get("starter")
    if starter is not None and (not isinstance(starter, dict) or set(starter) - {"model", "rows", "template"}
                                or not all(isinstance(r, dict) for r in starter.get("rows") or [])):
        return "starter= must be a dict with optional model (str), rows (a list of row dicts) and template (bool)"
    return None


def schema_problem(schema: Any, *, full: bool = True) -> str | None:
    """Why ``schema`` cannot be a component's option schema (a JSON Schema object), or None;
    ``full=False`` checks only the shape (built-ins, whose schemas the test suite checks)."""
    if not isinstance(schema, dict) or schema.get("type", "object") != "object":
        return 'it must be a JSON Schema object ({"type": "object", "properties": {...}})'
    if not full:
        return None
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = ".".join(str(p) for p in exc.path)
        return exc.message + (f" (at {where})" if where else "")
    return None


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
