"""Compose the recipe JSON Schema from the core schema and every registered component's options.

Two views of one composition:

- :func:`composed_schema` — the whole schema (every installed component), for ``sftkit schema`` and
  editors (``#:schema`` line). Component tables are discriminated by the component name with
  ``if``/``then`` (draft-07 compatible).
- :func:`recipe_schema` — the concrete schema for one recipe (each table gets exactly the options of
  the component it names), used for validation so errors are plain ("unknown key", "expected a
  number") rather than ``oneOf`` dumps.
"""

from __future__ import annotations

import copy
import functools

from .config import fill
from .core_schema import ARRAY_TABLES, COMMON_REQUIRED, COMPONENT_TABLES, REQUIRED_TOP, TOP_LEVEL
from .errors import Problem, did_you_mean, shorten
from .registry import Registry

SCHEMA_ID = "https://sftkit.dev/schema/recipe.json"


def _component_object(common: dict, comp_schema: dict | None, key: str, name: str | None,
                      common_required: tuple = ()) -> dict:
    """The object schema of one component table. Nested schemas are shared, not copied (this runs
    for every table of every recipe validated): callers replace keys, they never mutate nested ones."""
    props = dict(common)
    required = ([key] if name is None else []) + list(common_required)
    extra_allowed = False
    if comp_schema:
        props.update(comp_schema.get("properties", {}))
        required += [r for r in comp_schema.get("required", []) if r not in required]
        extra_allowed = comp_schema.get("additionalProperties", False) not in (False, None)
    if name is not None:
        props[key] = {**props.get(key, {}), "const": name}
    out = {"type": "object", "properties": props, "additionalProperties": extra_allowed}
    if required:
        out["required"] = required
    if comp_schema:  # whole-object rules of the component (oneOf, dependentRequired, if/then, ...)
        for k, v in comp_schema.items():
            if k not in ("type", "properties", "required", "additionalProperties", "description", "$schema", "title"):
                out[k] = v
    return out


def composed_schema(registry: Registry) -> dict:
    """The full recipe schema reflecting every registered component."""
    props = copy.deepcopy(TOP_LEVEL)
    for table, (kind, key, common, default) in COMPONENT_TABLES.items():
        entries = registry.addresses(kind)
        if default is not None and registry.find(kind, default) and default not in dict(entries):
            entries.append((default, registry.find(kind, default)))  # what `sftkit resolve` writes
        names = [name for name, _ in entries]
        base = {"type": "object", "properties": copy.deepcopy(common)}
        base["properties"][key] = {**base["properties"][key], "enum": names} if names else base["properties"][key]
        base["required"] = ([key] if default is None else []) + list(COMMON_REQUIRED.get(table, ()))
        if not base["required"]:
            del base["required"]
        branches = []
        for address, comp in entries:
            branch_if = {"properties": {key: {"const": address}}}
            if default is None:
                branch_if["required"] = [key]
            then = _component_object(common, comp.schema, key, None, COMMON_REQUIRED.get(table, ()))
            then["properties"][key] = {"const": address}
            if comp.doc:
                then["description"] = comp.doc
            branches.append({"if": branch_if, "then": then})
        if default is not None and registry.find(kind, default):
            # a table without the key means the default component
            comp = registry.find(kind, default)
            then = _component_object(common, comp.schema, key, None, COMMON_REQUIRED.get(table, ()))
            then["required"].remove(key)
            if not then["required"]:
                del then["required"]
            branches.append({"if": {"not": {"required": [key]}}, "then": then})
        if branches:
            base["allOf"] = branches
        if table == "data":  # the formats a [[data]] table may name (registered components too)
            base["properties"]["format"]["enum"] = ["auto", *(name for name, _ in registry.addresses("formats"))]
        if table in ARRAY_TABLES:
            props[table] = {"type": "array", "items": base}
            if table == "data":
                props[table]["minItems"] = 1
        else:
            props[table] = base
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": SCHEMA_ID,
        "title": "sftkit recipe",
        "type": "object",
        "properties": props,
        "required": list(REQUIRED_TOP),
        "additionalProperties": False,
    }


def _table_items(data: dict, table: str) -> list[tuple[tuple, dict]]:
    value = data.get(table)
    if table in ARRAY_TABLES:
        if isinstance(value, list):
            return [((table, i), v) for i, v in enumerate(value) if isinstance(v, dict)]
        return []
    return [((table,), value)] if isinstance(value, dict) else []


def component_of(table: str, item: dict, registry: Registry):
    """The registered component a table names (or None when unknown / not given)."""
    kind, key, _common, default = COMPONENT_TABLES[table]
    name = item.get(key, default)
    if not isinstance(name, str):
        return None
    return registry.find(kind, name)


def component_tables(data: dict):
    """Yield ``(table, path, item)`` for every component table of a recipe: ``("data", ("data", 0), {...})``."""
    for table in COMPONENT_TABLES:
        value = data.get(table)
        if isinstance(value, list):
            for idx, item in enumerate(value):
                if isinstance(item, dict):
                    yield table, (table, idx), item
        elif isinstance(value, dict):
            yield table, (table,), value


def path_options(schema: dict | None, item: dict, prefix: tuple = ()):
    """Yield ``(key_path, value)`` for every option the schema marks ``"x-sftkit-path": true``,
    looking into nested tables (e.g. ``replay.path``); list values yield each string."""
    for key, sub in ((schema or {}).get("properties") or {}).items():
        if not isinstance(sub, dict) or key not in item:
            continue
        value = item[key]
        if sub.get("x-sftkit-path"):
            for i, v in enumerate(value if isinstance(value, list) else [value]):
                if isinstance(v, str):
                    yield prefix + ((key, i) if isinstance(value, list) else (key,)), v
        elif isinstance(value, dict) and sub.get("properties"):
            yield from path_options(sub, value, prefix + (key,))


def recipe_schema(data: dict, registry: Registry) -> dict:
    """The concrete schema for this recipe: each component table gets its own component's options.
    Read-only: it shares its nested schemas with the registry and TOP_LEVEL."""
    props = dict(TOP_LEVEL)
    for table, (kind, key, common, default) in COMPONENT_TABLES.items():
        items = _table_items(data, table)
        if table in ARRAY_TABLES:
            schemas = []
            for (_t, _i), item in items:
                comp = component_of(table, item, registry)
                schemas.append(_component_object(common, comp.schema if comp else None, key, None)
                               if comp else {**_component_object(common, None, key, None), "additionalProperties": True})
            arr = {"type": "array", "items": {"type": "object"}}
            if schemas:
                arr["prefixItems"] = schemas
            if table == "data":
                arr["minItems"] = 1
            props[table] = arr
        else:
            item = items[0][1] if items else {}
            comp = component_of(table, item, registry)
            props[table] = _component_object(common, comp.schema if comp else None, key, None,
                                             COMMON_REQUIRED.get(table, ()))
            if comp is None:
                props[table]["additionalProperties"] = True
            if default is not None:  # a table without the key names the default component
                props[table]["required"].remove(key)
                if not props[table]["required"]:
                    del props[table]["required"]
    return {"type": "object", "properties": props, "required": list(REQUIRED_TOP), "additionalProperties": False}


# --------------------------------------------------------------------------- errors -> problems

_TYPE_NAMES = {"string": "a string", "integer": "an integer", "number": "a number", "boolean": "true or false",
               "array": "an array", "object": "a table", "null": "nothing"}


def _type_name(value) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def _short(value) -> str:
    return shorten(repr(value), 40)


_RANGE = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}


def error_to_problems(err, locate) -> list[Problem]:
    """Turn one jsonschema ValidationError into plain problems (one per unknown key)."""
    path = tuple(err.absolute_path)
    v = err.validator
    value = err.instance
    sch = err.schema if isinstance(err.schema, dict) else {}

    def mk(msg, p=path, hint=None):
        from .errors import dotted

        f, line, col = locate(p)
        return Problem(msg, file=f, line=line, col=col, path=dotted(p), hint=hint)

    if v == "additionalProperties":
        allowed = list(sch.get("properties", {}))
        out = []
        for key in [k for k in value if k not in allowed]:
            hint = did_you_mean(key, allowed) or (f"allowed keys: {', '.join(sorted(allowed))}" if allowed else None)
            out.append(mk(f"unknown key {key!r}", path + (key,), hint))
        return out
    if v == "required":
        missing = err.validator_value
        missing = [m for m in missing if m not in value] if isinstance(value, dict) else missing
        where = "the recipe" if not path else "this table"
        return [mk(f"missing required key {m!r} in {where}", path, "add it") for m in missing]
    if v == "type":
        expected = err.validator_value
        expected = [expected] if isinstance(expected, str) else expected
        names = " or ".join(_TYPE_NAMES.get(t, t) for t in expected)
        return [mk(f"expected {names}, got {_type_name(value)} {_short(value)}")]
    if v in _RANGE:
        op = _RANGE[v]
        return [mk(f"must be {op} {err.validator_value}, got {_short(value)}")]
    if v in ("enum", "const"):
        options = err.validator_value if v == "enum" else [err.validator_value]
        hint = did_you_mean(value, options) if isinstance(value, str) else None
        return [mk(f"{_short(value)} is not one of: {', '.join(map(str, options))}", hint=hint)]
    if v == "minItems":
        return [mk(f"needs at least {err.validator_value} item(s), got {len(value)}")]
    if v == "maxItems":
        return [mk(f"allows at most {err.validator_value} item(s), got {len(value)}")]
    if v == "minLength":
        return [mk("must not be empty" if err.validator_value == 1 else f"must be at least {err.validator_value} characters")]
    if v == "pattern":
        desc = sch.get("description")
        return [mk(f"{_short(value)} is not in the expected form" + (f" ({desc})" if desc else f" (pattern {err.validator_value})"))]
    if v in ("anyOf", "oneOf") and all(set(sub) == {"required"} for sub in err.validator_value):
        options = [" + ".join(sub["required"]) for sub in err.validator_value]
        given = [o for o in options if all(k in value for k in o.split(" + "))] if isinstance(value, dict) else []
        if v == "oneOf" and len(given) > 1:
            return [mk(f"give only one of: {', '.join(options)} (found {', '.join(given)})")]
        return [mk(f"needs {'exactly ' if v == 'oneOf' else ''}one of: {', '.join(options)}")]
    if v in ("anyOf", "oneOf"):
        # name the first alternative's expectation without dumping the schemas
        kinds = []
        for sub in err.validator_value:
            if "const" in sub:
                kinds.append(repr(sub["const"]))
            elif "type" in sub:
                kinds.append(_TYPE_NAMES.get(sub["type"], sub["type"]) if isinstance(sub["type"], str) else "a value")
        return [mk(f"{_short(value)} is not valid here; expected " + " or ".join(kinds or ["another value"]))]
    return [mk(err.message[:200])]


INT64 = (-(2**63), 2**63 - 1)
FLOAT32 = (1.1754943508222875e-38, 3.4028234663852886e38)  # smallest normal, largest finite


def _numbers(data, path: tuple = ()):
    """Yield ``(path, value)`` for every number (not bool) anywhere in ``data``."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _numbers(value, path + (key,))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from _numbers(value, path + (i,))
    elif isinstance(data, (int, float)) and not isinstance(data, bool):
        yield path, data


def _located(locate, path: tuple, message: str) -> Problem:
    from .errors import dotted

    f, line, col = locate(path)
    return Problem(message, file=f, line=line, col=col, path=dotted(path))


def number_problems(data, locate) -> list[Problem]:
    """Every NaN, infinite or beyond-64-bit number anywhere in the recipe, located (TOML allows
    ``nan``, ``inf`` and integers of any size; no option means them)."""
    import math

    out: list[Problem] = []
    for path, value in _numbers(data):
        if isinstance(value, float) and not math.isfinite(value):
            out.append(_located(locate, path, f"must be a finite number, got {value}"))
        elif isinstance(value, int) and not INT64[0] <= value <= INT64[1]:
            out.append(_located(locate, path, f"must fit in 64 bits, got {_short(value)}"))
    return out


def magnitude_problems(data, locate) -> list[Problem]:
    """Every float anywhere in the recipe that float32, what training and evaluation compute in,
    cannot hold: denormal or smaller (1e-320 becomes 0 there) or beyond its largest value (inf).
    0.0 is fine; an option's own range, where the schema gives one, is the better message."""
    out: list[Problem] = []
    for path, value in _numbers(data):
        if isinstance(value, float) and value != 0 and not FLOAT32[0] <= abs(value) <= FLOAT32[1]:
            out.append(_located(locate, path, f"must be 0 or between {FLOAT32[0]:.2g} and {FLOAT32[1]:.2g} in size "
                                              f"(what float32 holds), got {_short(value)}"))
    return out


@functools.cache
def _validator_class():
    """Draft 2020-12 where an ``integer`` is an int: 512.0 or 1e300 is a number, not an integer."""
    from jsonschema import Draft202012Validator, validators

    checker = Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _checker, v: isinstance(v, int) and not isinstance(v, bool))
    return validators.extend(Draft202012Validator, type_checker=checker)


def schema_problems(data: dict, registry: Registry, locate) -> list[Problem]:
    """Validate ``data`` against its concrete schema; every error as a located problem."""
    schema = recipe_schema(data, registry)
    problems: list[Problem] = number_problems(data, locate)
    flagged = {p.path for p in problems}
    validator = _validator_class()(schema)
    for err in sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path]):
        found = [p for p in error_to_problems(err, locate) if not p.path or p.path not in flagged]
        problems += found
        if err.validator in ("type", *_RANGE):  # a value of the wrong type, or out of range: one problem
            flagged.update(p.path for p in found)
    said = {p.path for p in problems}
    return problems + [p for p in magnitude_problems(data, locate) if p.path not in said]


# --------------------------------------------------------------------------- defaults

def fill_component_defaults(schema: dict | None, options: dict) -> dict:
    """A copy of a component's ``options`` with its option schema's defaults filled in."""
    return fill(schema or {}, copy.deepcopy(options))


def component_options(table: str, item: dict, comp) -> dict:
    """The options the factory of ``comp`` receives for this recipe table, defaults filled: the run's
    rule (:func:`sftkit.config.factory_options`) over the component's option schema."""
    from .config import factory_options

    return fill_component_defaults(comp.schema, factory_options(table, item))


def fill_defaults(data: dict, registry: Registry) -> dict:
    """A copy of a valid recipe with the schema defaults filled in (what ``sftkit resolve`` shows,
    ``recipe.toml`` holds and is hashed) by :func:`sftkit.config.fill`, the one function that fills
    defaults; the typed slices are built from this dict."""
    data = copy.deepcopy(data)
    schema = recipe_schema(data, registry)
    for section in ("recipe", "model", "training", "dataset", "output", "template"):
        if section in ("recipe", "model") or section in data or section in ("training", "dataset", "output", "template"):
            data.setdefault(section, {})
            fill(schema["properties"][section], data[section])
    for section in ("adapter", "freeze", "strategy", "distributed"):
        if section in data:
            fill(schema["properties"][section], data[section])
    for table in ARRAY_TABLES:
        items = schema["properties"][table].get("prefixItems", [])
        for sub, item in zip(items, data.get(table, [])):
            fill(sub, item)
    return data
