"""Named components (sources, formatters, strategies, evaluators, recipes) and where they came from."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import PluginError, did_you_mean

KINDS = ("sources", "formatters", "strategies", "evaluators", "recipes")

# How a recipe names each kind, for messages: (kind, table, key)
KIND_KEYS = {
    "sources": ("data", "source"),
    "formatters": ("template", "formatter"),
    "strategies": ("strategy", "name"),
    "evaluators": ("eval", "name"),
    "recipes": ("recipe", "extends"),
}

SINGULAR = {"sources": "source", "formatters": "formatter", "strategies": "strategy",
            "evaluators": "evaluator", "recipes": "recipe"}


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
    """All components by kind and name. Filled by calling the plugins' registration hooks."""

    def __init__(self) -> None:
        self._items: dict[str, dict[str, Component]] = {k: {} for k in KINDS}
        self.errors: list[str] = []  # duplicates and bad registrations, reported by commands

    def registrar(self, kind: str, origin: str) -> Callable[..., None]:
        """Return the ``register`` callback handed to one plugin's hook for one kind."""

        def register(name: str, factory: Any, *, schema: dict | None = None, doc: str = "",
                     check: Any = None, **meta: Any) -> None:
            if not isinstance(name, str) or not name:
                raise PluginError(f"plugin {origin!r} registered a {SINGULAR[kind]} without a name")
            existing = self._items[kind].get(name)
            if existing is not None:
                raise PluginError(
                    f"{SINGULAR[kind]} {name!r} is registered twice: by plugin {existing.origin!r} "
                    f"and by plugin {origin!r}",
                    hint=f"uninstall or disable one of them (SFTKIT_DISABLE_PLUGINS={origin})",
                )
            if schema is not None and (not isinstance(schema, dict) or schema.get("type", "object") != "object"):
                raise PluginError(f"plugin {origin!r}: schema of {SINGULAR[kind]} {name!r} must be a JSON Schema object")
            self._items[kind][name] = Component(kind, name, factory, schema, doc or "", origin, check, meta)

        return register

    def names(self, kind: str) -> list[str]:
        return sorted(self._items[kind])

    def all(self, kind: str) -> list[Component]:
        return [self._items[kind][n] for n in self.names(kind)]

    def find(self, kind: str, name: str) -> Component | None:
        return self._items[kind].get(name)

    def get(self, kind: str, name: str) -> Component:
        """Return the component or raise a one-line error listing what exists (with "did you mean")."""
        comp = self._items[kind].get(name)
        if comp is None:
            raise PluginError(unknown_component_message(self, kind, name))
        return comp

    def by_origin(self, origin: str) -> list[Component]:
        return [c for kind in KINDS for c in self._items[kind].values() if c.origin == origin]


def unknown_component_message(registry: Registry, kind: str, name: str) -> str:
    names = registry.names(kind)
    msg = f"unknown {SINGULAR[kind]} {name!r}"
    hint = did_you_mean(name, names)
    if hint:
        msg += f"; {hint}"
    msg += f" (available: {', '.join(names) or 'none'}; `sftkit plugins` lists installed plugins)"
    return msg
