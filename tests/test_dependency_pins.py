"""pyproject's dependency lists: a light core, the training stack in ``[train]`` with lower bounds
that the tested environment meets and that exclude versions known to break (trl 1.15)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

from sftkit.reading import tomllib
from sftkit.stack import TRAINING_STACK

PROJECT = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())["project"]


def _reqs(items) -> dict:
    return {Requirement(r).name.lower(): Requirement(r) for r in items}


def test_the_core_has_no_training_stack_and_train_has_all_of_it():
    core = _reqs(PROJECT["dependencies"])
    assert not set(core) & set(TRAINING_STACK)
    train = _reqs(PROJECT["optional-dependencies"]["train"])
    assert {"torch", "transformers", "trl", "datasets", "peft", "accelerate", "matplotlib", "gguf"} <= set(train)
    extras = PROJECT["optional-dependencies"]
    assert any("sftkit[train]" in r for r in extras["serve"]) and extras["all"] == ["sftkit[train,serve]"]


def test_training_lower_bounds_are_met_here_and_exclude_the_known_broken_trl():
    train = _reqs(PROJECT["optional-dependencies"]["train"])
    assert not train["trl"].specifier.contains("1.15.0")  # its fused loss crashes on CPU-only torch
    for name, req in train.items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            continue  # the light core's own test run
        assert req.specifier.contains(Version(installed).base_version, prereleases=True), (name, installed, req)
        lower = [s.version for s in req.specifier if s.operator == ">="]
        assert lower, f"{name} has no lower bound"
