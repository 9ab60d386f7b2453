"""The built-in model loader (a plugin like any other): ``[model] loader = "transformers"``, the default.

The component is this module: its factory (:class:`TransformersLoader`), its check and its registration.
"""

from __future__ import annotations

from sftkit import hookimpl
from sftkit.api import ModelLoader
from sftkit.errors import Problem
from sftkit.modeling.source import ModelSource, describe_model_source


class TransformersLoader(ModelLoader):
    """Hub ids (``revision`` honoured), directories written by ``save_pretrained`` and ``.gguf`` files
    (dequantized once into the cache when loaded)."""

    def source(self, ref, base_dir, console=None) -> ModelSource:
        return describe_model_source({**self.options, "name": ref}, base_dir)


def check_transformers_reference(options: dict, ctx) -> list[Problem]:
    """``sftkit validate``: a local model path that does not exist, or is not a model (hub ids are
    checked when loading). In the light core (no training stack) a model inside a package that is
    not installed is a note: like a hub id, it is the training machine's to provide."""
    from sftkit.stack import installed

    name = options.get("name")
    if not isinstance(name, str) or "${" in name:
        return []
    source = describe_model_source(options, ctx.base_dir)
    problem = source.problem()
    if problem and source.error and not installed():  # like a hub id: the machine that trains provides it
        return [Problem(f"{problem} (not needed to validate; needed where the recipe runs)", path="name",
                        level="note")]
    return [Problem(problem, path="name")] if problem else []


@hookimpl
def sftkit_register_model_loaders(register):
    register("transformers", "sftkit.builtin.loaders:TransformersLoader",
             schema={"type": "object", "properties": {}, "additionalProperties": False},
             check="sftkit.builtin.loaders:check_transformers_reference",
             doc="Hub ids (with revision), directories written by save_pretrained, and .gguf files "
                 "(dequantized once into sftkit's cache).")
