"""The plugin manager: builtins first, then the ``sftkit`` entry points, loaded one at a time.

Loading a plugin has stages: import, register with pluggy (hook names checked, hook wrappers
refused: every hook implementation is called on its own, isolated, see :func:`call_hook`), call its
registration hooks (components staged, option schemas checked), collect its commands. A plugin
that fails at any stage (``SystemExit`` and ``KeyboardInterrupt`` at import included) is removed
entirely: nothing it registered stays, and it is recorded with the reason, so commands and recipes
that do not need it keep working; a recipe that needs it gets the plugin's own error.

A component name two plugins register is disabled for both (see :class:`sftkit.registry.Registry`);
each stays reachable as ``plugin:name``. A plugin component named like a built-in leaves the bare
name to the built-in (installing a plugin never changes another recipe) and is reachable as
``plugin:name``, with a note (:meth:`Host.notes`). Commands likewise: every plugin command also answers to
``plugin:name`` (``sftkit medical:glossary``), the way to run one whose bare name two plugins add.
A plugin command may not replace one of sftkit's own (``validate``, ``run``, ...) nor have ``:`` in
its name: the plugin fails to load, named. ``SFTKIT_DISABLE_PLUGINS=a,b``
blocks plugins by entry-point or distribution name; ``SFTKIT_LOAD_PLUGINS=a,b`` loads only those
third-party plugins (builtins always load).
"""

from __future__ import annotations

import importlib
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import pluggy

from . import hookspecs
from .errors import PluginError, did_you_mean
from .registry import BUILTIN_PREFIX, KINDS, Registry, clash_message, shadow_notes, unknown_component_message

# the commands sftkit.cli defines itself: no plugin may replace them (make_host refuses the plugin).
# Declared here, below the CLI, so the host needs no CLI; tests/test_core_cli.py checks they agree.
CORE_COMMANDS = frozenset({"validate", "schema", "plugins", "init", "resolve"})

BUILTIN_PLUGINS = (
    "sftkit.builtin.sources",
    "sftkit.builtin.formats",
    "sftkit.builtin.formatters",
    "sftkit.builtin.strategies",
    "sftkit.builtin.evaluators",
    "sftkit.builtin.rewards",
    "sftkit.builtin.recipes",
    "sftkit.builtin.loaders",
    "sftkit.builtin.commands",
    "sftkit.builtin.arena",
)

# loaded by every host, one built without builtins too (tests of the core): sftkit reads every
# [[data]] table through a record format, so its own formats are the data model's vocabulary
ALWAYS_LOADED = ("sftkit.builtin.formats",)

ENTRY_POINT_GROUP = "sftkit"

LOAD_BUDGET_S = 1.0  # what loading third-party plugins may cost every sftkit command (validate, --help, ...)


@dataclass
class PluginInfo:
    """What ``sftkit plugins`` shows for one plugin."""

    name: str
    module: str
    dist: str | None = None
    version: str | None = None
    builtin: bool = False
    hooks: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    error: str | None = None  # why it failed to load, or None
    load_s: float = 0.0  # seconds spent importing and registering it

    @property
    def prefix(self) -> str:
        """How recipes address its components explicitly: ``prefix:name``."""
        return BUILTIN_PREFIX if self.builtin else self.name


@dataclass
class Host:
    """A plugin manager together with the registry it filled and what went wrong while loading."""

    pm: pluggy.PluginManager
    registry: Registry
    plugins: list[PluginInfo]
    commands: dict = field(default_factory=dict)  # name -> click command, from every loaded plugin
    command_clashes: dict = field(default_factory=dict)  # name -> [plugin names], disabled for all
    qualified_commands: dict = field(default_factory=dict)  # "plugin:name" -> click command, clashed or not

    @property
    def has_builtins(self) -> bool:
        """Whether sftkit's own components were loaded (hosts for tests of the core may leave them out)."""
        return any(p.builtin and p.module not in ALWAYS_LOADED for p in self.plugins)

    @property
    def failures(self) -> list[PluginInfo]:
        return [p for p in self.plugins if p.error]

    def problems(self) -> list[str]:
        """Every loading problem (failed plugins, clashing names), one line each."""
        out = [f"plugin {p.name!r} failed to load: {p.error}" for p in self.failures]
        out += [clash_message(self.registry, kind, name) for kind in KINDS for name in sorted(self.registry.clashes[kind])]
        for name, owners in sorted(self.command_clashes.items()):
            out.append(command_clash_message(name, owners))
        return out

    def notes(self) -> list[str]:
        """What loading changed without being an error, one line each (plugin components that a
        built-in's name shadows)."""
        return shadow_notes(self.registry)

    def missing_message(self, kind: str, name: str) -> str:
        """Why ``name`` names no component of ``kind``: a clash, or unknown (plus the plugins that failed)."""
        note = "" if name in self.registry.clashes[kind] else self.failure_note()
        return unknown_component_message(self.registry, kind, name) + note

    def failure_note(self) -> str:
        """A suffix for "unknown component" messages: the plugins that failed to load, and why."""
        fails = self.failures
        if not fails:
            return ""
        return " — note: " + "; ".join(f"plugin {p.name!r} failed to load: {p.error}" for p in fails)

    def dist_versions(self) -> dict[str, str]:
        return {p.dist.lower(): p.version for p in self.plugins if p.dist and p.version}


def slow_plugins_message(host: Host, budget_s: float = LOAD_BUDGET_S) -> str | None:
    """One line naming the third-party plugins that made loading plugins take over ``budget_s``
    seconds (slowest first), or None within the budget."""
    third = sorted((p for p in host.plugins if not p.builtin), key=lambda p: -p.load_s)
    total = sum(p.load_s for p in third)
    if total <= budget_s:
        return None
    named = ", ".join(f"{p.name!r} {p.load_s:.1f}s" for p in third[:3] if p.load_s >= 0.1 * total)
    return (f"loading plugins took {total:.1f}s, over the budget of {budget_s:g}s that every sftkit command pays: "
            f"{named} (a plugin importing torch or other heavy libraries at import time? move them into its "
            f"factories; `sftkit plugins --timings` shows each plugin's time)")


def command_clash_message(name: str, owners: list[str]) -> str:
    return (f"command {name!r} is added by plugins {' and '.join(repr(o) for o in owners)}, so it is disabled; "
            f"run {' or '.join(repr(f'{o}:{name}') for o in owners)}, or disable one plugin with "
            f"SFTKIT_DISABLE_PLUGINS")


def _env_list(var: str) -> set[str] | None:
    raw = os.environ.get(var)
    if raw is None:
        return None
    return {x.strip().lower() for x in raw.split(",") if x.strip()}


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"SystemExit({exc.code!r}) at import"
    if isinstance(exc, KeyboardInterrupt):
        return "KeyboardInterrupt at import"
    if isinstance(exc, PluginError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _register_checked(pm: pluggy.PluginManager, plugin: Any, info: PluginInfo) -> bool:
    try:
        pm.register(plugin, name=info.name)
    except Exception as exc:  # pluggy validation errors (wrong arguments for a hook), a name taken
        info.error = f"{type(exc).__name__}: {exc}"
        return False
    bad = [c.name for c in pm.get_hookcallers(plugin) or [] if not c.has_spec()]
    if bad:
        pm.unregister(plugin)
        specs = [n for n in dir(hookspecs) if n.startswith("sftkit_")]
        parts = []
        for name in bad:
            hint = did_you_mean(name, specs)
            parts.append(f"{name!r}" + (f" ({hint})" if hint else ""))
        info.error = "implements unknown hook " + ", ".join(parts)
        return False
    wrappers = sorted(c.name for c in pm.get_hookcallers(plugin) or [] for impl in c.get_hookimpls()
                      if impl.plugin is plugin and (impl.wrapper or impl.hookwrapper))
    if wrappers:
        pm.unregister(plugin)
        info.error = (f"implements {', '.join(map(repr, wrappers))} as a hook wrapper: refused (sftkit calls each "
                      "plugin's hook on its own, so one plugin cannot see or change another's results or errors; "
                      "drop wrapper=True / hookwrapper=True)")
        return False
    info.hooks = sorted(c.name for c in pm.get_hookcallers(plugin) or [])
    return True


def _impls_of(pm: pluggy.PluginManager, hook: str, plugin_name: str) -> list:
    return [i for i in getattr(pm.hook, hook).get_hookimpls() if i.plugin_name == plugin_name]


def _stage(pm: pluggy.PluginManager, info: PluginInfo, reserved: set[str]) -> tuple[list, dict]:
    """Call one plugin's registration hooks; return its components and commands (raises on failure)."""
    import click

    staged: list = []
    for kind in KINDS:
        hook = f"sftkit_register_{kind}"
        for impl in _impls_of(pm, hook, info.name):
            register = Registry.staging(kind, info.name, staged, check_schemas=not info.builtin)
            try:
                impl.function(register=register)
            except PluginError as exc:
                raise PluginError(f"in {hook}: {exc.message}") from exc
            except (Exception, SystemExit, KeyboardInterrupt) as exc:
                raise PluginError(f"raised in {hook}: {_describe(exc)}") from exc
    group = click.Group(name="sftkit")
    for impl in _impls_of(pm, "sftkit_register_commands", info.name):
        try:
            impl.function(cli=group)
        except (Exception, SystemExit, KeyboardInterrupt) as exc:
            raise PluginError(f"raised in sftkit_register_commands: {_describe(exc)}") from exc
    taken = sorted(set(group.commands) & reserved)
    if taken and not info.builtin:
        raise PluginError(f"adds command(s) {', '.join(map(repr, taken))}, which sftkit itself provides: refused "
                          "(rename the plugin's command)")
    colons = sorted(n for n in group.commands if ":" in n)
    if colons:  # "other:cmd" would pass for another plugin's qualified command
        raise PluginError(f"adds command(s) {', '.join(map(repr, colons))}: a command name may not contain ':' "
                          "(sftkit adds 'plugin:name' itself)")
    return staged, dict(group.commands)


def _load(pm: pluggy.PluginManager, info: PluginInfo, loader: Callable[[], Any], reserved: set[str]):
    """Import, register and stage one plugin; on any failure unregister it and record why."""
    started = time.perf_counter()
    try:
        try:
            plugin = loader()
        except (Exception, SystemExit, KeyboardInterrupt) as exc:
            info.error = _describe(exc)
            return None
        if not _register_checked(pm, plugin, info):
            return None
        try:
            return _stage(pm, info, reserved)
        except PluginError as exc:
            pm.unregister(plugin)
            info.error = str(exc)
            info.hooks = []
            return None
    finally:
        info.load_s = time.perf_counter() - started


def make_host(*, builtins: bool = True, entry_points: bool = True, extra: tuple = ()) -> Host:
    """Build a plugin manager and fill the component registry and the command table.

    ``builtins=False`` leaves out sftkit's own components but its record formats (:data:`ALWAYS_LOADED`).
    ``extra`` holds ``(name, plugin_object)`` pairs registered after the entry points (tests use it
    to load a plugin under test in isolation).
    """
    pm = pluggy.PluginManager("sftkit")
    pm.add_hookspecs(hookspecs)
    disabled = _env_list("SFTKIT_DISABLE_PLUGINS") or set()
    allowed = _env_list("SFTKIT_LOAD_PLUGINS")
    todo: list[tuple[PluginInfo, Callable[[], Any]]] = []

    from . import __version__

    for mod_name in BUILTIN_PLUGINS:
        if builtins or mod_name in ALWAYS_LOADED:
            info = PluginInfo(name=mod_name, module=mod_name, dist="sftkit", version=__version__, builtin=True)
            todo.append((info, lambda m=mod_name: importlib.import_module(m)))

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
            todo.append((info, ep.load))

    for name, plugin in extra:
        info = PluginInfo(name=name, module=getattr(plugin, "__name__", repr(plugin)))
        todo.append((info, lambda p=plugin: p))

    registry = Registry()
    host = Host(pm=pm, registry=registry, plugins=[info for info, _ in todo])
    reserved = set(CORE_COMMANDS)
    owners: dict[str, str] = {}
    for info, loader in todo:
        loaded = _load(pm, info, loader, reserved)
        if loaded is None:
            continue
        components, commands = loaded
        for comp in components:
            registry.add(comp, info.prefix)
        info.commands = sorted(commands)
        for name, cmd in commands.items():
            host.qualified_commands[f"{info.prefix}:{name}"] = cmd
            if info.builtin:
                reserved.add(name)
            if name in host.command_clashes:
                host.command_clashes[name].append(info.name)
            elif name in host.commands:
                host.command_clashes[name] = [owners[name], info.name]
                del host.commands[name]
            else:
                host.commands[name] = cmd
                owners[name] = info.name
    return host


def call_hook(host: Host, hook: str, warn: Callable[[str], None] | None = None, **kwargs: Any) -> list[str]:
    """Call every implementation of a lifecycle hook, each isolated: one that raises is named (in a
    ``warn`` line and in the returned list) and the others still run. Returns those lines. (Hook
    wrappers never get here: a plugin declaring one is refused when it loads.)"""
    failures: list[str] = []
    if host is None:
        return failures
    for impl in reversed(getattr(host.pm.hook, hook).get_hookimpls()):  # pluggy's call order
        try:
            impl.function(*[kwargs[a] for a in impl.argnames])
        except (Exception, SystemExit) as exc:
            msg = f"plugin {impl.plugin_name!r} failed in {hook}: {type(exc).__name__}: {exc}"
            failures.append(msg)
            if warn is not None:
                warn(f"warning: {msg}")
    return failures


def hook_results(host: Host | None, hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
    """``(plugin name, result)`` of every implementation of ``hook``, called one by one in pluggy's
    order; one that raises stops with a :class:`PluginError` naming the plugin (for hooks whose
    results change what a run does, where going on without them would change results silently)."""
    out: list[tuple[str, Any]] = []
    if host is None:
        return out
    for impl in reversed(getattr(host.pm.hook, hook).get_hookimpls()):
        try:
            out.append((impl.plugin_name, impl.function(*[kwargs[a] for a in impl.argnames])))
        except (Exception, SystemExit) as exc:
            raise PluginError(f"plugin {impl.plugin_name!r} failed in {hook}: {type(exc).__name__}: {exc}",
                              hint="fix or disable that plugin (SFTKIT_DISABLE_PLUGINS)") from exc
    return out


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
