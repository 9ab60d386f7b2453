"""A pytest plugin for authors of sftkit plugins (and the conformance check ``check_plugin``).

Installed with sftkit (entry point ``pytest11``), so its fixtures are available in every test
suite without an import. It imports nothing heavy at import time: it is loaded in every pytest run
(``-p no:sftkit`` turns it off).

Name the plugin under test once, in ``pyproject.toml``/``pytest.ini``::

    [tool.pytest.ini_options]
    sftkit_plugin = "sftkit_medical.plugin"

or by overriding the ``sftkit_plugin`` fixture in ``conftest.py``. Then:

``sftkit_host``
    a plugin host with sftkit's built-ins and only the plugin under test: no other installed
    plugin interferes, and the plugin needs not be pip-installed. It is also the process-wide
    host for the test, so the CLI and ``sftkit.run`` see the same components.
``sftkit_tiny_model``
    a directory with a tiny random Llama model and tokenizer (built once per session, seconds).
``sftkit_recipe``
    ``sftkit_recipe(**sections) -> Path``: writes a valid recipe TOML (tiny model, a small JSONL,
    instruction strategy, 2 steps) into ``tmp_path``; each keyword replaces (lists, values) or
    merges into (tables) the section of that name; ``None`` removes it.
    ``sftkit_recipe.write_jsonl(name, rows)`` writes data files beside it.
``sftkit_run``
    ``sftkit_run(recipe, *overrides, smoke=True, console=None) -> RunOutcome``: calls
    :func:`sftkit.run.run` (what ``sftkit run`` calls: the same stages) with ``sftkit_host``, into a
    fresh directory under ``tmp_path``; ``smoke`` is ``--smoke`` (a tiny model of the same
    architecture, two optimizer steps, a few rows), ``smoke=False`` trains the recipe as written.
``sftkit_cli``
    ``sftkit_cli("validate", path) -> click Result``: the ``sftkit`` command line, in process.

``check_plugin(module)`` asserts a plugin module conforms: every hook implementation matches a
spec, option schemas are valid JSON Schema (Draft 2020-12) and their defaults validate, names do
not clash with sftkit's built-ins, lazy factories and checks import, shipped recipes pass
``sftkit validate`` (all but the model and ``requires``, which depend on the machine), every
component is documented, and importing the plugin pulls in no heavy library and takes under
``import_budget_s`` (1 s).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

HEAVY_MODULES = ("torch", "transformers", "trl", "datasets", "peft", "numpy", "pyarrow", "matplotlib")


def pytest_addoption(parser):
    parser.addini("sftkit_plugin", "import path of the sftkit plugin module under test (e.g. mypkg.plugin)",
                  default="")


# --------------------------------------------------------------------------- hosts

def _as_module(plugin: Any) -> Any:
    if isinstance(plugin, str):
        import importlib

        return importlib.import_module(plugin)
    return plugin


def _plugin_name(plugin: Any) -> str:
    return getattr(plugin, "__name__", None) or type(plugin).__name__


def make_plugin_host(*plugins: Any, builtins: bool = True):
    """A :class:`sftkit.plugins.Host` with the built-ins and ``plugins`` (modules, objects or import
    paths) only: installed entry-point plugins are not loaded."""
    from sftkit.plugins import make_host

    extra = tuple((_plugin_name(p), p) for p in map(_as_module, plugins))
    return make_host(builtins=builtins, entry_points=False, extra=extra)


# --------------------------------------------------------------------------- conformance

def _schema_problems(comp) -> list[str]:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError, ValidationError

    where = f"{comp.kind[:-1] if comp.kind != 'strategies' else 'strategy'} {comp.name!r}"
    schema = comp.schema
    if schema is None:
        return []
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return [f"{where}: option schema is not valid JSON Schema: {exc.message}"]
    problems = []
    for key, prop in (schema.get("properties") or {}).items():
        if isinstance(prop, dict) and "default" in prop:
            try:
                Draft202012Validator(prop).validate(prop["default"])
            except ValidationError as exc:
                problems.append(f"{where}: default of option {key!r} does not match its schema: {exc.message}")
    return problems


def _recipe_problems(comp, host=None) -> list[str]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    from sftkit.errors import SftkitError
    from sftkit.paths import resolve_path

    where = f"recipe {comp.name!r}"
    if not isinstance(comp.factory, (str, Path)):
        return [f"{where}: register a package:// path or a file path, not a {type(comp.factory).__name__}"]
    try:
        path = resolve_path(str(comp.factory), None)
    except SftkitError as exc:
        return [f"{where}: {exc}"]
    if not path.is_file():
        return [f"{where}: {comp.factory} resolves to {path}, which does not exist (is it in package-data?)"]
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [f"{where}: {path} is not valid TOML: {exc}"]
    if not isinstance(data.get("recipe"), dict) or not data["recipe"].get("name"):
        return [f"{where}: {path} has no [recipe] name"]
    if host is None:
        return []
    from sftkit.validate import validate_file

    # everything `sftkit validate` checks, except what depends on this machine: whether the model
    # package and the required distributions are installed here
    return [f"{where}: {p.format()}" for p in validate_file(path, host)
            if not p.path.startswith(("model.name", "recipe.requires"))]


def _factory_problems(comp) -> list[str]:
    from sftkit.registry import import_object

    where = f"{comp.kind} {comp.name!r}"
    problems = []
    for label, spec in (("factory", comp.factory), ("check", comp.check), ("match", comp.meta.get("match"))):
        if spec is None:
            continue
        if isinstance(spec, str):
            if ":" not in spec:
                problems.append(f"{where}: {label} {spec!r} is not a \"module:attr\" string")
                continue
            try:
                obj = import_object(spec)
            except Exception as exc:  # the plugin's own import error
                problems.append(f"{where}: {label} {spec!r} cannot be imported: {type(exc).__name__}: {exc}")
                continue
        else:
            obj = spec
        if not callable(obj):
            problems.append(f"{where}: {label} {spec!r} is not callable")
    return problems


from sftkit.plugins import LOAD_BUDGET_S as IMPORT_BUDGET_S  # noqa: E402  (what every sftkit command may pay)


def heavy_imports(modules: list[str]) -> list[str]:
    """Heavy libraries (torch, transformers, ...) that importing ``modules`` pulls in, checked in a
    fresh interpreter with this one's ``sys.path``."""
    return import_profile(modules)[0]


def import_profile(modules: list[str]) -> tuple[list[str], float]:
    """``(heavy libraries imported, seconds)`` for importing ``modules`` after sftkit, in a fresh
    interpreter with this one's ``sys.path``."""
    import os
    import subprocess
    import sys

    code = ("import importlib, json, sys, time\nimport sftkit, sftkit.plugins\nt = time.perf_counter()\n"
            f"for m in {list(modules)!r}: importlib.import_module(m)\n"
            "dt = time.perf_counter() - t\n"
            f"print(json.dumps([sorted(h for h in {list(HEAVY_MODULES)!r} if h in sys.modules), dt]))\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        raise RuntimeError(f"importing {modules} failed: {lines[-1] if lines else proc.returncode}")
    heavy, seconds = json.loads(proc.stdout.strip().splitlines()[-1])
    return heavy, seconds


def plugin_problems(plugin: Any, *, name: str | None = None, check_imports: bool = True,
                    require_docs: bool = True, import_budget_s: float = IMPORT_BUDGET_S) -> list[str]:
    """Every conformance problem of ``plugin`` (a module, object or import path); empty when it conforms."""
    plugin = _as_module(plugin)
    name = name or _plugin_name(plugin)
    problems: list[str] = []
    undecorated = [attr for attr in dir(plugin) if attr.startswith("sftkit_") and callable(getattr(plugin, attr))
                   and not hasattr(getattr(plugin, attr), "sftkit_impl")]
    problems += [f"{attr} is not decorated with @sftkit.hookimpl, so sftkit never calls it" for attr in undecorated]

    from sftkit.plugins import make_host

    host = make_host(builtins=True, entry_points=False, extra=((name, plugin),))
    info = next(p for p in host.plugins if p.name == name)
    if info.error and not host.pm.is_registered(plugin):
        return problems + [f"plugin {name!r} does not load: {info.error}"]
    if not info.hooks:
        problems.append(f"plugin {name!r} implements no sftkit hook")
    problems += [line for line in host.problems() + host.notes() if repr(name) in line]
    own = getattr(plugin, "__name__", None)
    modules: set[str] = {own} if isinstance(own, str) else set()
    for comp in host.registry.by_origin(name):
        if require_docs and not (comp.doc or "").strip():
            problems.append(f"{comp.kind} {comp.name!r} has no doc (shown by `sftkit plugins` and `sftkit recipes list`)")
        problems += _schema_problems(comp)
        if comp.kind == "recipes":
            problems += _recipe_problems(comp, host)
            continue
        problems += _factory_problems(comp)
        for light in (comp.check, comp.meta.get("match")):  # what `sftkit validate` imports
            if isinstance(light, str):
                modules.add(light.partition(":")[0])
    if check_imports and modules and isinstance(getattr(plugin, "__name__", None), str):
        try:
            heavy, seconds = import_profile(sorted(modules))
        except RuntimeError as exc:
            problems.append(str(exc))
        else:
            if heavy:
                problems.append(f"importing {', '.join(sorted(modules))} imports {', '.join(heavy)}: import heavy "
                                f"libraries inside factories, so `sftkit validate` and `sftkit plugins` stay light")
            if seconds > import_budget_s:
                problems.append(f"importing {', '.join(sorted(modules))} took {seconds:.2f}s, over the budget of "
                                f"{import_budget_s:g}s: every sftkit command pays it (`sftkit plugins --timings`); "
                                "move slow work into factories")
    return problems


def check_plugin(plugin: Any, *, name: str | None = None, check_imports: bool = True, require_docs: bool = True,
                 import_budget_s: float = IMPORT_BUDGET_S):
    """Assert that ``plugin`` conforms (see :func:`plugin_problems`); returns the isolated host it was
    loaded into. The assertion message lists every problem."""
    problems = plugin_problems(plugin, name=name, check_imports=check_imports, require_docs=require_docs,
                               import_budget_s=import_budget_s)
    if problems:
        raise AssertionError(f"plugin {name or _plugin_name(_as_module(plugin))!r} does not conform:\n  - "
                             + "\n  - ".join(problems))
    from sftkit.plugins import make_host

    module = _as_module(plugin)
    return make_host(builtins=True, entry_points=False, extra=((name or _plugin_name(module), module),))


# --------------------------------------------------------------------------- recipes

DEFAULT_ROWS = [
    {"prompt": f"What is {a} plus {b}?", "completion": f"{a} plus {b} is {a + b}."}
    for a, b in [(1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (6, 7), (7, 8), (8, 9),
                 (9, 10), (10, 11), (11, 12), (12, 13), (13, 14), (14, 15), (15, 16), (16, 17)]
]


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


class RecipeFactory:
    """Writes recipe TOML files into a directory: ``factory(**sections) -> Path``."""

    def __init__(self, directory: Path, model_dir: str | None):
        self.dir = Path(directory)
        self.model_dir = model_dir
        self._count = 0

    def write_jsonl(self, name: str, rows: list[dict]) -> Path:
        """Write ``rows`` as JSON lines to ``name`` (relative to the recipe directory)."""
        path = self.dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        return path

    def defaults(self, name: str) -> dict:
        if not (self.dir / "train.jsonl").exists():
            self.write_jsonl("train.jsonl", DEFAULT_ROWS)
        return {
            "recipe": {"name": name, "seed": 0},
            "model": {"name": self.model_dir or "HuggingFaceTB/SmolLM2-135M-Instruct"},
            "data": [{"source": "jsonl", "path": "train.jsonl", "format": "prompt_completion"}],
            "strategy": {"name": "instruction"},
            "training": {"max_steps": 2, "per_device_train_batch_size": 2, "max_length": 64,
                         "logging_steps": 1, "learning_rate": 1e-3},
            "output": {"dir": str(self.dir / "runs" / "{recipe.name}"), "report": False},
        }

    def __call__(self, filename: str | None = None, **sections: Any) -> Path:
        import tomli_w

        self._count += 1
        name = (sections.get("recipe") or {}).get("name") or f"plugin-test-{self._count}"
        data = _merge(self.defaults(name), sections)
        path = self.dir / (filename or f"{name}.toml")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(tomli_w.dumps(data), encoding="utf-8")
        return path


# --------------------------------------------------------------------------- fixtures

@pytest.fixture
def sftkit_plugin(request):
    """The plugin module under test: the ``sftkit_plugin`` ini value (None when unset). Override it
    in your conftest.py to return your plugin module."""
    spec = request.config.getini("sftkit_plugin")
    return _as_module(spec) if spec else None


@pytest.fixture
def sftkit_host(sftkit_plugin, monkeypatch):
    """An isolated plugin host (built-ins + the plugin under test), also the process-wide host."""
    import sftkit.plugins

    host = make_plugin_host(*([sftkit_plugin] if sftkit_plugin is not None else []))
    monkeypatch.setattr(sftkit.plugins, "_HOST", host)
    return host


@pytest.fixture(scope="session")
def sftkit_tiny_model(tmp_path_factory) -> str:
    """Directory of a tiny random causal LM + tokenizer (no download; built once per session)."""
    from sftkit.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("sftkit-tiny-model"))


@pytest.fixture
def sftkit_recipe(tmp_path, sftkit_tiny_model) -> RecipeFactory:
    """``sftkit_recipe(**sections) -> Path`` writing a valid, 2-step recipe on the tiny model."""
    return RecipeFactory(tmp_path, sftkit_tiny_model)


@pytest.fixture
def sftkit_run(sftkit_host, tmp_path):
    """``sftkit_run(recipe, *overrides, smoke=True, output=None, console=None) -> RunOutcome``: the
    stages ``sftkit run`` goes through (:func:`sftkit.run.run`), with the isolated host (``smoke``:
    ``--smoke``, two optimizer steps on a tiny model of the same architecture)."""
    counter = {"n": 0}

    def run(recipe, *overrides: str, smoke: bool = True, output=None, **kwargs):
        from sftkit.run import run as run_pipeline

        counter["n"] += 1
        out = output or tmp_path / f"sftkit-run-{counter['n']}"
        return run_pipeline(recipe, list(overrides), smoke=smoke, output=out, host=sftkit_host,
                            overwrite=True, **kwargs)

    return run


@pytest.fixture
def sftkit_cli(sftkit_host):
    """``sftkit_cli(*args) -> click.testing.Result``: the ``sftkit`` command line, in process, with
    the isolated host."""
    from click.testing import CliRunner

    import sftkit.cli as cli_module

    base = cli_module.cli
    group = type(base)(name="sftkit", commands=dict(base.commands), params=list(base.params),
                       callback=base.callback, help=base.help, context_settings=dict(base.context_settings))
    cli_module.attach_commands(group, sftkit_host)
    runner = CliRunner()

    def invoke(*args: str, **kwargs):
        return runner.invoke(group, [str(a) for a in args], catch_exceptions=False, **kwargs)

    return invoke
