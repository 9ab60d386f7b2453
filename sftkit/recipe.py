"""A recipe, read -> checked -> resolved in a straight line: :func:`load_recipe`.

:mod:`sftkit.reading` reads (TOML with key positions, ``extends``, ``${ENV}``, ``--set``),
:mod:`sftkit.validate` checks (every problem at once, located), :mod:`sftkit.config` declares the
typed slices and their defaults. This module chains them and re-exports what reading offers, so
``sftkit.recipe`` stays the one place to import a recipe from; none of the modules it chains
imports it (``tests/test_import_cycles.py``). Light: never imports torch or transformers.
"""

from __future__ import annotations

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

__all__ = ["REDACTED", "SECRET_NAME_RE", "Recipe", "Source", "apply_override", "deep_merge", "dotted", "load_recipe",
           "parse_override", "read_recipe", "read_toml", "recipe_hash", "redact", "substitute_env"]


def load_recipe(path, overrides=(), *, host=None) -> Recipe:
    """Read, check and resolve a recipe; raise :class:`RecipeError` with every problem found."""
    from .plugins import get_host

    host = host or get_host()
    recipe, problems = read_recipe(path, overrides, host=host)
    if recipe is not None:
        problems += check_recipe(recipe, host)
    problems = [p for p in problems if p.level == "error"]  # a note does not stop a recipe
    if problems:
        raise RecipeError(problems)
    recipe.data = fill_defaults(recipe.data, host.registry)
    return recipe
