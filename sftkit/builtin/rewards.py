"""Built-in rewards (a plugin like any other): this module only lists them.

Each reward declares what is registered beside its code, on its class (:func:`sftkit.rewards.base.registration`):
options (``schema``), ``doc``, ``check`` and the row columns it ``reads``. The scorer rewards are the
evaluators' scorers (:mod:`sftkit.rewards.scorers`). Registering imports nothing heavy.
"""

from __future__ import annotations

from sftkit import hookimpl

REWARDS = tuple(f"sftkit.rewards.{address}" for address in (
    "scorers:NumericAnswerReward",
    "scorers:ExactMatchReward",
    "scorers:ContainsReward",
    "scorers:RegexReward",
    "scorers:JsonValidReward",
    "scorers:FormatReward",
    "code:CodeExecReward",
    "shape:LengthReward",
))


@hookimpl
def sftkit_register_rewards(register):
    from sftkit.registry import import_object
    from sftkit.rewards.base import registration

    for address in REWARDS:
        cls = import_object(address)
        register(cls.name, address, **registration(cls))
