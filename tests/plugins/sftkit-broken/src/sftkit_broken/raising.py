"""An entry point that loads, but raises in one hook and in one component's factory."""

import sftkit


@sftkit.hookimpl
def sftkit_register_evaluators(register):
    raise RuntimeError("evaluator table corrupted")


@sftkit.hookimpl
def sftkit_register_sources(register):
    register("broken_rows", "sftkit_broken.raising:broken_rows", doc="A source whose factory raises.",
             schema={"type": "object", "properties": {}, "additionalProperties": False})


def broken_rows(options, ctx):
    raise ValueError("cannot parse row 3")
