"""A recipe, read -> checked -> resolved in a straight line: :func:`load_recipe`.

:mod:`sftkit.reading` reads (TOML with key positions, ``extends``, ``${ENV}``, ``--set``) into a
dict, :mod:`sftkit.validate` checks that dict (every problem at once, located), and resolution
turns it into one immutable :class:`ResolvedRecipe`: the typed slices (:mod:`sftkit.config`), the
base directory, the key positions and the secrets to redact. From then on the dict is unreachable:
:meth:`ResolvedRecipe.serialized` gives a copy only to write ``recipe.toml`` and to hash it. This
module re-exports what reading offers, so ``sftkit.recipe`` stays the one place to import a recipe
from; none of the modules it chains imports it (``tests/test_import_cycles.py``). Light: never
imports torch or transformers.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping

from .config import Config, resolve
from .errors import RecipeError, dotted
from .reading import (
    REDACTED,
    SECRET_NAME_RE,
    Recipe,
    Source,
    apply_override,
    deep_merge,
    parse_override,
    read_recipe,
    read_toml,
    recipe_hash,
    redact,
    substitute_env,
)
from .schema import fill_defaults
from .validate import check_recipe

__all__ = ["REDACTED", "SECRET_NAME_RE", "Recipe", "ResolvedRecipe", "Source", "apply_override", "deep_merge",
           "dotted", "load_recipe", "parse_override", "read_recipe", "read_toml", "recipe_hash", "redact",
           "substitute_env"]


@dataclass(frozen=True)
class ResolvedRecipe:
    """A checked recipe, resolved: typed slices (``config``), where it was read from (``path``,
    ``base_dir`` for its relative paths, ``source`` for key positions) and ``secrets`` (key paths
    whose values came from the environment: redacted wherever the recipe is written)."""

    config: Config
    path: Path | None
    base_dir: Path
    source: Source = field(default_factory=Source, compare=False)
    secrets: frozenset = frozenset()
    _tables: Mapping = field(default_factory=dict, repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.config.name

    def serialized(self) -> dict:
        """The resolved tables as a plain dict (a copy): what ``recipe.toml`` holds and what is
        hashed. Never read back as the recipe: read :attr:`config`."""
        return copy.deepcopy(dict(self._tables))


def resolved(data: Mapping, *, path: Path | None, base_dir: Path, source: Source | None = None,
             secrets=()) -> ResolvedRecipe:
    """A :class:`ResolvedRecipe` from a checked recipe dict whose defaults are filled."""
    tables = copy.deepcopy(dict(data))
    return ResolvedRecipe(config=resolve(tables), path=path, base_dir=Path(base_dir), source=source or Source(),
                          secrets=frozenset(secrets), _tables=MappingProxyType(tables))


def load_recipe(path, overrides=(), *, host=None,
                policy: Callable[[dict, Any], dict] | None = None) -> ResolvedRecipe:
    """Read, check and resolve a recipe; raise :class:`RecipeError` with every problem found.
    ``policy(tables, registry)`` adjusts the checked tables, defaults filled, before they are
    resolved (the run's smoke policy, :func:`sftkit.run.smoke.recipe`)."""
    from .plugins import get_host

    host = host or get_host()
    recipe, problems = read_recipe(path, overrides, host=host)
    if recipe is not None:
        problems += check_recipe(recipe, host)
    problems = [p for p in problems if p.level == "error"]  # a note does not stop a recipe
    if problems:
        raise RecipeError(problems)
    data: Any = fill_defaults(recipe.data, host.registry)
    if policy is not None:
        data = policy(data, host.registry)
    return resolved(data, path=recipe.path, base_dir=recipe.base_dir, source=recipe.source, secrets=recipe.secrets)
