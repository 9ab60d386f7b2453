"""The plugin manager: builtins first, then the ``sftkit`` entry points, loaded one at a time.

A plugin that fails to import (or implements a hook that does not exist) is recorded with the
reason and skipped, so commands that do not need it keep working; a recipe that needs it gets the
plugin's own error. ``SFTKIT_DISABLE_PLUGINS=a,b`` blocks plugins by entry-point or distribution
name; ``SFTKIT_LOAD_PLUGINS=a,b`` loads only those third-party plugins (builtins always load).
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from typing import Any

import pluggy

from . import hookspecs
from .errors import PluginError, did_you_mean
from .registry import KINDS, Registry

BUILTIN_PLUGINS = (
    "sftkit.builtin.sources",
    "sftkit.builtin.formatters",
    "sftkit.builtin.strategies",
    "sftkit.builtin.evaluators",
    "sftkit.builtin.recipes",
    "sftkit.builtin.commands",
)

ENTRY_POINT_GROUP = "sftkit"


@dataclass
class PluginInfo:
    """What ``sftkit plugins`` shows for one plugin."""

    name: str
    module: str
    dist: str | None = None
    version: str | None = None
    builtin: bool = False
    hooks: list[str] = field(default_factory=list)
    error: str | None = None  # why it failed to load, or None


@dataclass
class Host:
    """A plugin manager together with the registry it filled and what went wrong while loading."""

    pm: pluggy.PluginManager
    registry: Registry
    plugins: list[PluginInfo]

    @property
    def failures(self) -> list[PluginInfo]:
        return [p for p in self.plugins if p.error]

    def failure_note(self) -> str:
        """A suffix for "unknown component" messages: the plugins that failed to load, and why."""
        fails = self.failures
        if not fails:
            return ""
        return " — note: " + "; ".join(f"plugin {p.name!r} failed to load: {p.error}" for p in fails)

    def dist_versions(self) -> dict[str, str]:
        return {p.dist.lower(): p.version for p in self.plugins if p.dist and p.version}


def _env_list(var: str) -> set[str] | None:
    raw = os.environ.get(var)
    if raw is None:
        return None
    return {x.strip().lower() for x in raw.split(",") if x.strip()}


def _unknown_hooks(pm: pluggy.PluginManager, plugin: Any) -> list[str]:
    bad = []
    for caller in pm.get_hookcallers(plugin) or []:
        if not caller.has_spec():
            bad.append(caller.name)
    return bad


def _register_checked(pm: pluggy.PluginManager, plugin: Any, info: PluginInfo) -> bool:
    try:
        pm.register(plugin, name=info.name)
    except Exception as exc:  # pluggy validation errors (wrong arguments for a hook)
        info.error = f"{type(exc).__name__}: {exc}"
        return False
    bad = _unknown_hooks(pm, plugin)
    if bad:
        pm.unregister(plugin)
        specs = [n for n in dir(hookspecs) if n.startswith("sftkit_")]
        parts = []
        for name in bad:
            hint = did_you_mean(name, specs)
            parts.append(f"{name!r}" + (f" ({hint})" if hint else ""))
        info.error = "implements unknown hook " + ", ".join(parts)
        return False
    info.hooks = sorted(c.name for c in pm.get_hookcallers(plugin) or [])
    return True


def make_host(*, builtins: bool = True, entry_points: bool = True, extra: tuple = ()) -> Host:
    """Build a plugin manager and fill the component registry.

    ``extra`` holds ``(name, plugin_object)`` pairs registered after the entry points (tests use it
    to load a plugin under test in isolation).
    """
    pm = pluggy.PluginManager("sftkit")
    pm.add_hookspecs(hookspecs)
    infos: list[PluginInfo] = []
    disabled = _env_list("SFTKIT_DISABLE_PLUGINS") or set()
    allowed = _env_list("SFTKIT_LOAD_PLUGINS")

    if builtins:
        from . import __version__

        for mod_name in BUILTIN_PLUGINS:
            info = PluginInfo(name=mod_name, module=mod_name, dist="sftkit", version=__version__, builtin=True)
            infos.append(info)
            try:
                module = importlib.import_module(mod_name)
            except Exception as exc:
                info.error = f"{type(exc).__name__}: {exc}"
                continue
            _register_checked(pm, module, info)

    if entry_points:
        from importlib.metadata import entry_points as _eps

        for ep in sorted(_eps(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            dist = getattr(ep, "dist", None)
            dist_name = dist.metadata["Name"] if dist is not None else None
            names = {ep.name.lower(), (dist_name or "").lower()}
            if names & disabled:
                continue
            if allowed is not None and not (names & allowed):
                continue
            info = PluginInfo(name=ep.name, module=ep.value, dist=dist_name,
                              version=dist.version if dist is not None else None)
            infos.append(info)
            try:
                plugin = ep.load()
            except Exception as exc:
                info.error = f"{type(exc).__name__}: {exc}"
                continue
            _register_checked(pm, plugin, info)

    for name, plugin in extra:
        info = PluginInfo(name=name, module=getattr(plugin, "__name__", repr(plugin)))
        infos.append(info)
        _register_checked(pm, plugin, info)

    registry = Registry()
    by_name = {i.name: i for i in infos}
    for kind in KINDS:
        caller = getattr(pm.hook, f"sftkit_register_{kind}")
        for impl in caller.get_hookimpls():
            info = by_name.get(impl.plugin_name)
            try:
                impl.function(register=registry.registrar(kind, impl.plugin_name))
            except PluginError as exc:
                registry.errors.append(str(exc))
            except Exception as exc:
                msg = f"plugin {impl.plugin_name!r} raised in sftkit_register_{kind}: {type(exc).__name__}: {exc}"
                registry.errors.append(msg)
                if info is not None and not info.error:
                    info.error = msg
    return Host(pm=pm, registry=registry, plugins=infos)


_HOST: Host | None = None


def get_host() -> Host:
    """The process-wide host (built on first use)."""
    global _HOST
    if _HOST is None:
        _HOST = make_host()
    return _HOST


def reset_host() -> None:
    """Forget the process-wide host (tests, and after changing SFTKIT_* variables)."""
    global _HOST
    _HOST = None
