"""The typed resolved recipe (sftkit.config): one slice per table, defaults declared once."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from sftkit import config as C
from sftkit import core_schema as S
from sftkit.config import resolve

SECTIONS = {
    C.RecipeInfo: S.RECIPE_SECTION["properties"], C.Model: S.MODEL_SECTION["properties"],
    C.Dataset: S.DATASET_SECTION["properties"], C.Training: S.TRAINING_SECTION["properties"],
    C.Adapter: S.ADAPTER_SECTION["properties"], C.Freeze: S.FREEZE_SECTION["properties"],
    C.Output: S.OUTPUT_SECTION["properties"], C.Distributed: S.DISTRIBUTED_SECTION["properties"],
    C.FSDP: S.DISTRIBUTED_SECTION["properties"]["fsdp"]["properties"],
    C.DeepSpeed: S.DISTRIBUTED_SECTION["properties"]["deepspeed"]["properties"],
    C.Verdict: S.VERDICT_SECTION["properties"], C.Plan: S.PLAN_SECTION["properties"],
    C.DataEntry: S.DATA_COMMON, C.Template: S.TEMPLATE_COMMON, C.StrategyTable: S.STRATEGY_COMMON,
    C.EvalEntry: S.EVAL_COMMON, C.Baseline: S.BASELINE_ITEM["properties"],
}


@pytest.mark.parametrize("cls", list(SECTIONS), ids=lambda c: c.__name__)
def test_every_schema_key_is_a_field_with_the_schema_default(cls):
    props = SECTIONS[cls]
    names = {f.name for f in dataclasses.fields(cls)} - {"options"}
    assert names == set(props), f"{cls.__name__} drifted from the schema"
    empty = cls()
    for name, sub in props.items():
        if isinstance(sub.get("default"), (str, int, float, bool, list)):
            assert getattr(empty, name) == sub["default"], name
        elif "default" not in sub and name not in ("fsdp", "deepspeed"):
            assert getattr(empty, name) is None, name


def test_every_table_has_a_slice():
    assert set(C.SLICES) == set(S.TOP_LEVEL)


def test_resolve_gives_frozen_typed_slices_read_by_attribute_only():
    cfg = C.resolve({"recipe": {"name": "x", "seed": 7}, "model": {"name": "m"},
                     "data": [{"source": "jsonl", "path": "a.jsonl", "weight": 2.0}],
                     "strategy": {"name": "instruction", "packing": True},
                     "template": {"formatter": "chatml", "system": "Be brief.", "masking": "prefix"},
                     "training": {"max_steps": 3}, "adapter": {"r": 4},
                     "eval": [{"name": "loss", "max": 3.0, "limit": 5}]})
    assert cfg.seed == 7 and cfg.training.max_length == 512 and cfg.training.max_steps == 3
    assert cfg.adapter.r == 4 and cfg.adapter.alpha == 16 and cfg.freeze is None
    assert not C.resolve({"freeze": {}}).freeze.given and C.resolve({"freeze": {"embeddings": False}}).freeze.given
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.training.max_length = 1
    # no second way in: a slice is not a mapping (no .get, [key], `in` or dict(slice))
    for probe in (lambda: cfg.training.get("max_length"), lambda: cfg.data[0]["path"],
                  lambda: "max_steps" in cfg.training, lambda: dict(cfg.training)):
        with pytest.raises((AttributeError, TypeError)):
            probe()
    assert cfg.data[0].options == {"path": "a.jsonl"}
    assert cfg.data[0].weight == 2.0 and cfg.data[0].split == "auto"
    # one rule for what a factory receives: sftkit's keys out, [template] system shared
    assert C.factory_options("data", cfg.data[0]) == {"path": "a.jsonl"}
    assert C.factory_options("strategy", cfg.strategy) == {"packing": True}
    assert C.factory_options("template", cfg.template) == {"system": "Be brief.", "masking": "prefix"}
    assert C.factory_options("eval", cfg.eval[0]) == {"limit": 5}
    assert cfg.eval[0].max == 3.0 and cfg.eval[0].gate_on == "value"


def test_run_context_hands_out_typed_slices():
    from sftkit.api import RunContext

    ctx = RunContext(config=resolve({"training": {"max_length": 64}, "dataset": {"truncation": "drop"}}),
                     recipe_path=None, base_dir=Path("."), run_dir=Path("r"))
    assert ctx.training.max_length == 64 and not hasattr(ctx, "recipe")  # the slices, never the dict
    tok = ctx.tokenization
    assert (tok.max_length, tok.truncation, tok.min_trained_tokens) == (64, "drop", 1)
    assert ctx.seed == 42


SRC = Path(__file__).resolve().parents[1] / "sftkit"
# dict reads whose key is also a recipe key but means something else there
NOT_RECIPE_READS = {("evaluation/verdict.py", "weight")}


def _schema_defaults() -> dict:
    out: dict = {}
    tables = [*S.TOP_LEVEL.values(), *({"properties": c} for c in
                                        (S.DATA_COMMON, S.TEMPLATE_COMMON, S.STRATEGY_COMMON, S.EVAL_COMMON))]
    for section in tables:
        for key, sub in (section.get("properties") or {}).items():
            value = sub.get("default") if isinstance(sub, dict) else None
            if value and isinstance(value, (str, int, float)):  # falsy defaults read the same as absent
                out.setdefault(key, set()).add(value)
    return out


def test_no_module_repeats_a_recipe_default():
    """``table.get("max_length", 512)``: a second copy of a default the slices declare once."""
    defaults, found = _schema_defaults(), []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                    and len(node.args) == 2 and all(isinstance(a, ast.Constant) for a in node.args)):
                key, value = node.args[0].value, node.args[1].value
                if key in defaults and value in defaults[key] and (rel, key) not in NOT_RECIPE_READS:
                    found.append(f"{rel}:{node.lineno} .get({key!r}, {value!r})")
    assert not found, "read the typed slice (sftkit.config) instead: " + ", ".join(found)


# modules that read a schema's "default" without filling a table with it, each with why
READS_DEFAULT_WITHOUT_FILLING = {
    "sftkit/registry.py": "checks that a plugin's declared default satisfies its own schema",
    "sftkit/testing.py": "the same check, for plugin authors' tests",
    "sftkit/templates/formatter.py": "a tokenizer's chat_template dict keyed \"default\", not a schema",
}


def test_one_function_fills_defaults():
    """A schema default is filled by ``sftkit.config.fill`` alone: the recipe dict
    (``schema.fill_defaults``), components' options and the slices all call it; no slice field has a
    default value of its own, and no other module reads a schema's ``default`` to fill a table."""
    for cls, props in SECTIONS.items():
        for f in dataclasses.fields(cls):
            if f.name in props and f.name not in ("fsdp", "deepspeed"):
                assert f.default is C.FROM_SCHEMA, f"{cls.__name__}.{f.name}"
    package = Path(C.__file__).resolve().parent
    readers = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            subscript = isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) \
                and node.slice.value == "default"
            get = isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" \
                and node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value == "default"
            if subscript or get:
                readers.add(path.relative_to(package.parent).as_posix())
    assert readers - {"sftkit/config.py"} <= set(READS_DEFAULT_WITHOUT_FILLING), readers


def test_slices_of_the_filled_dict_equal_slices_filled_by_themselves(tmp_path):
    """Filling the dict first (a run) or leaving the slices to fill (a stand-in, ``Training()``)
    gives the same typed recipe: both go through ``fill``."""
    from sftkit.plugins import make_host
    from sftkit.schema import fill_defaults

    raw = {"recipe": {"name": "r"}, "model": {"name": "org/m"},
           "data": [{"source": "inline", "rows": [{"prompt": "a", "completion": "b"}]}],
           "strategy": {"name": "instruction"}, "training": {"max_steps": 3},
           "distributed": {"strategy": "fsdp"}, "baseline": [{"kind": "few_shot"}]}
    filled = fill_defaults(raw, make_host(entry_points=False).registry)
    assert filled["training"]["max_length"] == S.TRAINING_SECTION["properties"]["max_length"]["default"]
    by_dict, by_slices = resolve(filled), resolve(raw)
    for name in ("recipe", "model", "dataset", "training", "output", "distributed", "verdict", "plan"):
        assert getattr(by_dict, name) == getattr(by_slices, name), name
    assert by_dict.baseline == by_slices.baseline and by_dict.baseline[0].k == 5
