"""The built-in model loader (a plugin like any other): ``[model] loader = "transformers"``, the default."""

from sftkit import hookimpl


@hookimpl
def sftkit_register_model_loaders(register):
    register("transformers", "sftkit.modeling.loaders:TransformersLoader",
             schema={"type": "object", "properties": {}, "additionalProperties": False},
             check="sftkit.modeling.loaders:check_transformers_reference",
             doc="Hub ids (with revision), directories written by save_pretrained, and .gguf files "
                 "(dequantized once into sftkit's cache).")
