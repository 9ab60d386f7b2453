"""Read -> check -> resolve, in a straight line: a recipe file to a checked recipe with every default
filled and its typed slices (``recipe.config``).

:mod:`sftkit.recipe` reads (TOML, extends, env, ``--set``), :mod:`sftkit.validate` checks (all
problems at once, located), :mod:`sftkit.config` declares the typed slices and their defaults. This
module only chains them; none of them imports it. Light: never imports torch or transformers.
"""

from __future__ import annotations

from .errors import RecipeError
from .recipe import Recipe, read_recipe
from .schema import fill_defaults
from .validate import check_recipe


def load_recipe(path, overrides=(), *, host=None) -> Recipe:
    """Read, check and resolve a recipe; raise :class:`RecipeError` with every problem found."""
    from .plugins import get_host

    host = host or get_host()
    recipe, problems = read_recipe(path, overrides, host=host)
    if recipe is not None:
        problems += check_recipe(recipe, host)
    if problems:
        raise RecipeError(problems)
    recipe.data = fill_defaults(recipe.data, host.registry)
    return recipe
