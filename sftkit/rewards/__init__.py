"""Rewards for RL strategies: the recipe's ``[[reward]]`` tables, built into isolated callables.

What an RL strategy calls::

    from sftkit.rewards import build_rewards
    rewards = build_rewards(config.rewards, base_dir=recipe.base_dir, plugins=host)
    for r in rewards:
        scores = r(prompts, completions, rows, step)   # list[float | None], checked
        # total reward of completion i: sum of r.weight * scores[i] over rewards whose score is not None

A reward is a :class:`~sftkit.rewards.base.Reward` registered through the hook
``sftkit_register_rewards``; sftkit's own (:mod:`sftkit.builtin.rewards`) are the evaluators'
scorers, so what is rewarded is exactly what is judged. Each call is isolated
(:meth:`BoundReward.__call__`): whatever a reward does wrong is one line naming it and its plugin.
Light: imports nothing heavy (a reward's own module is imported when the reward is built).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from ..errors import SftkitError
from .base import Reward, RewardError, columns_read, describe, registration

__all__ = ["BoundReward", "Reward", "RewardError", "build_rewards", "check_columns", "columns_read",
           "registration"]

BUILTIN_PLUGIN = "sftkit"  # what BoundReward.plugin says for sftkit's own rewards


@dataclass(frozen=True)
class BoundReward:
    """One ``[[reward]]`` table, built: its ``label`` (unique name in metrics: the table's ``label``
    or the reward's name), the registered ``name``, the ``plugin`` that registered it (``"sftkit"``
    for built-ins), its ``weight`` and the :class:`Reward` itself."""

    label: str
    name: str
    plugin: str
    weight: float
    reward: Reward
    reads: tuple = ()  # the row columns it reads, each a tuple of alternative names (registration ``reads``)

    @property
    def who(self) -> str:
        """How messages name it: ``reward 'fmt' (format from plugin 'sftkit')``."""
        named = f"{self.name!r}" if self.label == self.name else f"{self.label!r} ({self.name})"
        return f"reward {named} from plugin {self.plugin!r}"

    def __call__(self, prompts: list, completions: list[str], rows: list[dict], step: int) -> list[float | None]:
        """Isolated call: an exception, a wrong-length result, NaN/inf or a non-number becomes one
        line (:class:`RewardError`) naming the reward and the plugin, never a traceback. Returns
        one float (or None: not applicable) per completion."""
        n = len(completions)
        try:
            out = self.reward.score(prompts, completions, rows, step)
        except SftkitError as exc:
            raise RewardError(f"{self.who} failed at step {step}: {exc.message}", hint=exc.hint) from exc
        except Exception as exc:
            raise RewardError(f"{self.who} raised at step {step}: {type(exc).__name__}: {exc}",
                              hint="fix the reward, or remove its [[reward]] table") from exc
        try:
            values = list(out)
        except TypeError:
            raise RewardError(f"{self.who} returned {type(out).__name__}, not a list of {n} scores",
                              hint="score() must return one float (or None) per completion") from None
        if len(values) != n:
            raise RewardError(f"{self.who} returned {len(values)} score(s) for {n} completion(s)",
                              hint="score() must return one float (or None) per completion")
        checked: list[float | None] = []
        for i, v in enumerate(values):
            if v is None:
                checked.append(None)
                continue
            if not isinstance(v, numbers.Real):
                raise RewardError(f"{self.who} returned {type(v).__name__} {str(v)[:40]!r} for completion {i}, "
                                  "not a number", hint="return a float, or None where the reward does not apply")
            f = float(v)
            if not math.isfinite(f):
                raise RewardError(f"{self.who} returned {f} for completion {i}",
                                  hint="return a finite float, or None where the reward does not apply")
            checked.append(f)
        return checked


def _registry(plugins: Any):
    return getattr(plugins, "registry", plugins)


def _plugin_of(plugins: Any, comp: Any) -> str:
    infos = getattr(plugins, "plugins", None) or []
    info = next((p for p in infos if p.name == comp.origin), None)
    if info is not None and info.builtin or comp.origin.startswith("sftkit.builtin."):
        return BUILTIN_PLUGIN
    return comp.origin


def _options(comp: Any, options: dict, base_dir: Path) -> dict:
    """The factory's options: schema defaults filled, file options resolved against the recipe."""
    from ..paths import resolve_path
    from ..schema import fill_component_defaults, path_options

    opts = fill_component_defaults(comp.schema, dict(options or {}))
    for key_path, value in list(path_options(comp.schema, opts)):
        if len(key_path) == 1 and isinstance(opts.get(key_path[0]), str) and "://" not in value:
            opts[key_path[0]] = str(resolve_path(value, base_dir))
    return opts


def build_rewards(rewards_config: Iterable[Any], *, base_dir: Path | str, plugins: Any) -> list[BoundReward]:
    """Build the recipe's ``[[reward]]`` slice (``config.rewards``: :class:`sftkit.config.RewardSpec`
    entries) into isolated rewards. ``plugins`` is the plugin host (or its registry). A name that
    names no reward, two tables with one label, or a factory that fails: one line each."""
    registry = _registry(plugins)
    built: list[BoundReward] = []
    for i, spec in enumerate(rewards_config):
        comp = registry.find("rewards", spec.name)
        if comp is None:
            missing = getattr(plugins, "missing_message", None)
            from ..registry import unknown_component_message

            msg = missing("rewards", spec.name) if missing else unknown_component_message(registry, "rewards", spec.name)
            raise SftkitError(f"reward[{i}].name: {msg}")
        label = spec.label or spec.name
        if any(b.label == label for b in built):
            raise SftkitError(f"reward[{i}]: two [[reward]] tables are labelled {label!r}",
                              hint="give each a distinct label = \"...\"")
        reward = comp.create(_options(comp, spec.options, Path(base_dir)))
        if not isinstance(reward, Reward) and not callable(getattr(reward, "score", None)):
            raise RewardError(f"reward {spec.name!r} from plugin {_plugin_of(plugins, comp)!r}: its factory returned "
                              f"{type(reward).__name__}, not a Reward", hint="return an instance of sftkit.api.Reward")
        options = getattr(reward, "options", None) or {}
        built.append(BoundReward(label=label, name=comp.name, plugin=_plugin_of(plugins, comp),
                                 weight=float(spec.weight), reward=reward,
                                 reads=tuple(columns_read(comp.meta.get("reads"), options))))
    return built


def check_columns(rewards: Iterable[BoundReward], columns: Iterable[str], *, where: str = "the data") -> None:
    """Raise a one-line :class:`~sftkit.errors.DataError` when ``columns`` (the rows' columns)
    lack one a reward reads (its ``reads``), naming the reward, the column and ``where``."""
    from ..errors import DataError

    have = set(columns)
    for r in rewards:
        gone = [alts for alts in r.reads if not have & set(alts)]
        if gone:
            raise DataError(f"{r.who} reads column {describe(gone[0])}, which {where} lacks "
                            f"(columns: {', '.join(sorted(have)) or 'none'})",
                            hint="add that column, map it with columns = {...} in [[data]], or set the reward's "
                                 "column option")
