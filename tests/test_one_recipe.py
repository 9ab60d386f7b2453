"""One resolved recipe: after ``load_recipe`` nothing reads the recipe dict.

``load_recipe`` returns a frozen :class:`sftkit.recipe.ResolvedRecipe` (typed slices, base
directory, key positions, secrets); the dict exists only to write ``recipe.toml`` and to hash it
(``ResolvedRecipe.serialized``). These tests fail when a second way to the recipe comes back: a
``recipe`` field on the run context, slices that read like dicts, or a module that reads the dict.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# modules that work on the recipe *before* it is resolved (reading, checking, writing new recipes,
# the smoke policy applied as part of resolution): the dict is theirs to read
BEFORE_RESOLUTION = {
    "sftkit/reading.py", "sftkit/validate.py", "sftkit/schema.py", "sftkit/core_schema.py", "sftkit/recipe.py",
    "sftkit/strategies/checks.py", "sftkit/run/smoke.py", "sftkit/testing.py", "sftkit/starter.py",
    "sftkit/scaffold.py", "sftkit/builtin/recipes.py", "sftkit/commands/recipes.py", "sftkit/tomlpos.py",
}

# reads of the raw recipe dict (or bridges back to it) after resolution
RAW_READS = {
    "the run context's recipe dict": re.compile(r"\b(run|ctx|context)\.recipe\b(?!_)"),
    "a recipe attribute looked up by name": re.compile(r"getattr\(\s*\w+\s*,\s*[\"']recipe[\"']"),
    "a loaded recipe's dict": re.compile(r"\b(recipe|loaded|resolved)\.data\b"),
    "a recipe dict read by table": re.compile(r"\brecipe(\.get\(|\[\s*[\"'])"),
    "a RunContext built from a dict": re.compile(r"RunContext\(\s*recipe\s*="),
    "the run state's dict": re.compile(r"\bstate\.data\b"),
    "a slice rebuilt from a dict": re.compile(r"\.coerce\("),
    "a table read from a dict by name": re.compile(r"\.data\[\s*[\"'](recipe|model|data|dataset|template|strategy|"
                                                   r"training|adapter|freeze|eval|baseline|output|distributed|"
                                                   r"verdict|plan)[\"']"),
}


def _sources():
    for path in sorted([*(ROOT / "sftkit").rglob("*.py"), *(ROOT / "plugins").glob("*/src/**/*.py")]):
        rel = path.relative_to(ROOT).as_posix()
        if rel not in BEFORE_RESOLUTION:
            yield rel, path.read_text(encoding="utf-8")


def test_no_module_reads_the_recipe_dict_after_resolution():
    found = []
    for rel, text in _sources():
        for lineno, line in enumerate(text.splitlines(), 1):
            code = line.split("#", 1)[0]
            for what, pattern in RAW_READS.items():
                if pattern.search(code):
                    found.append(f"{rel}:{lineno}: {what}: {line.strip()}")
    assert not found, "read the typed slices (run.config / recipe.config) instead:\n" + "\n".join(found)


# extras is a plugin's own bag; what sftkit's stages and components hand each other is a named field
EXTRAS = re.compile(r"\bextras\b")
EXTRAS_ALLOWED = {
    "sftkit/api.py",  # declares the field
    "sftkit/evaluation/judge.py",  # a judge Target a test injects (evaluation/ is another change's)
}


def test_sftkit_hands_state_on_in_named_fields_not_extras():
    found = [f"{rel}:{n}: {line.strip()}" for rel, text in _sources() if rel not in EXTRAS_ALLOWED
             for n, line in enumerate(text.splitlines(), 1) if EXTRAS.search(line.split("#", 1)[0])
             and not rel.startswith("plugins/")]
    assert not found, "add a typed field to RunState / RunContext instead:\n" + "\n".join(found)


def test_the_patterns_catch_what_they_name():
    """Each pattern finds the read it is named for (a pattern that matches nothing guards nothing)."""
    samples = {
        "the run context's recipe dict": 'x = run.recipe["training"]',
        "a recipe attribute looked up by name": 'getattr(run, "recipe", None)',
        "a loaded recipe's dict": 'loaded.data.get("distributed")',
        "a recipe dict read by table": 'recipe.get("data")',
        "a RunContext built from a dict": "RunContext(recipe=data, recipe_path=None)",
        "the run state's dict": 'state.data.get("baseline")',
        "a slice rebuilt from a dict": "Training.coerce(training)",
        "a table read from a dict by name": 'x.data["training"]',
    }
    assert set(samples) == set(RAW_READS)
    for what, code in samples.items():
        assert RAW_READS[what].search(code), what
    assert not RAW_READS["the run context's recipe dict"].search("run.recipe_path")


def test_the_resolved_recipe_is_one_frozen_object(tmp_path):
    from sftkit.api import RunContext
    from sftkit.config import Config, Slice
    from sftkit.plugins import make_host
    from sftkit.recipe import ResolvedRecipe, load_recipe

    (tmp_path / "train.jsonl").write_text('{"prompt": "a", "completion": "b"}\n')
    path = tmp_path / "r.toml"
    path.write_text('[recipe]\nname = "one"\n[model]\nname = "org/model"\n[[data]]\nsource = "jsonl"\n'
                    'path = "train.jsonl"\n[strategy]\nname = "instruction"\n[training]\nmax_steps = 3\n')
    recipe = load_recipe(path, host=make_host(entry_points=False))
    assert isinstance(recipe, ResolvedRecipe) and isinstance(recipe.config, Config)
    assert not hasattr(recipe, "data") and recipe.name == "one" and recipe.base_dir == tmp_path
    with pytest.raises(dataclasses.FrozenInstanceError):
        recipe.config = None
    assert recipe.config.training.max_steps == 3 and recipe.config.training.max_length == 512  # defaults filled
    written = recipe.serialized()  # what recipe.toml holds: a copy, so it cannot change the recipe
    written["training"]["max_steps"] = 99
    assert recipe.config.training.max_steps == 3 and recipe.serialized()["training"]["max_steps"] == 3
    assert "recipe" not in {f.name for f in dataclasses.fields(RunContext)}
    assert not issubclass(Slice, Mapping)


def test_the_smoke_policy_is_applied_while_resolving(tmp_path):
    from sftkit.plugins import make_host
    from sftkit.recipe import load_recipe
    from sftkit.run import smoke

    (tmp_path / "train.jsonl").write_text('{"prompt": "a", "completion": "b"}\n')
    path = tmp_path / "r.toml"
    path.write_text('[recipe]\nname = "s"\n[model]\nname = "org/model"\n[[data]]\nsource = "jsonl"\n'
                    'path = "train.jsonl"\n[strategy]\nname = "instruction"\n[training]\nmax_steps = 300\n'
                    'per_device_train_batch_size = 16\n')
    recipe = load_recipe(path, host=make_host(entry_points=False), policy=smoke.recipe)
    assert recipe.config.training.max_steps == 2 and recipe.config.training.per_device_train_batch_size == 4
    assert recipe.serialized()["training"]["max_steps"] == 2  # recipe.toml says what ran
