"""``sftkit_training_callbacks``: a plugin's hook or callback that raises stops the run with one line
naming the plugin (its callbacks can change what training does, so the run never goes on without them)."""

from __future__ import annotations

import types

import pytest

import sftkit
from sftkit.errors import PluginError
from sftkit.plugins import hook_results, make_host


def _plugin() -> types.ModuleType:
    plugin = types.ModuleType("stepper")

    @sftkit.hookimpl
    def sftkit_training_callbacks(run):
        from transformers import TrainerCallback

        class Stepper(TrainerCallback):
            def on_step_end(self, args, state, control, **kw):
                raise ValueError(f"dashboard unreachable at step {state.global_step}")

        return [Stepper()]

    plugin.sftkit_training_callbacks = sftkit_training_callbacks
    return plugin


@pytest.fixture
def sftkit_plugin():
    return _plugin()


def test_a_callback_that_raises_stops_the_run_naming_the_plugin(sftkit_run, sftkit_recipe):
    recipe = sftkit_recipe()
    with pytest.raises(PluginError) as err:
        sftkit_run(recipe)
    assert err.value.message == ("training callback Stepper of plugin 'stepper' raised in on_step_end: "
                                 "ValueError: dashboard unreachable at step 1")
    assert not list(recipe.parent.glob("sftkit-run-*/COMPLETE"))


class Raises:
    @sftkit.hookimpl
    def sftkit_training_callbacks(self, run):
        raise RuntimeError("no token")


class Gives:
    @sftkit.hookimpl
    def sftkit_training_callbacks(self, run):
        return ["not a callback"]


def test_a_callbacks_hook_that_raises_is_named():
    host = make_host(builtins=False, entry_points=False, extra=(("gives", Gives()), ("raises", Raises())))
    with pytest.raises(PluginError) as err:
        hook_results(host, "sftkit_training_callbacks", run=None)
    assert err.value.message == "plugin 'raises' failed in sftkit_training_callbacks: RuntimeError: no token"
    host = make_host(builtins=False, entry_points=False, extra=(("gives", Gives()),))
    assert hook_results(host, "sftkit_training_callbacks", run=None) == [("gives", ["not a callback"])]


def test_something_else_than_a_callback_is_named():
    from sftkit.strategies.trainer import guarded_callback

    with pytest.raises(PluginError, match="plugin 'gives' returned 'not a callback' from sftkit_training_callbacks, "
                                          "not a transformers.TrainerCallback"):
        guarded_callback("not a callback", "gives")
