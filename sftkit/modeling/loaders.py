"""Model loaders: ``[model] loader = "NAME"`` picks the registered component that says where a model
reference is loaded from (a :class:`~sftkit.api.ModelSource`). Every loading path (training, the
tokenizer, ``--smoke`` models, adapter bases) asks :func:`model_source`, so a plugin's loader is used
everywhere sftkit's own is. Light: no torch or transformers.

The built-in loader (registered by :mod:`sftkit.builtin.loaders`) is :class:`TransformersLoader`:
hub ids, ``save_pretrained`` directories and ``.gguf`` files, as :func:`describe_model_source` tells
them apart.
"""

from __future__ import annotations

from pathlib import Path

from ..api import ModelLoader
from ..errors import PluginError, Problem, SftkitError
from .source import ModelSource, describe_model_source


class TransformersLoader(ModelLoader):
    """Hub ids (``revision`` honoured), directories written by ``save_pretrained`` and ``.gguf`` files
    (dequantized once into the cache when loaded)."""

    def source(self, ref, base_dir, console=None) -> ModelSource:
        return describe_model_source({**self.options, "name": ref}, base_dir)


def check_transformers_reference(options: dict, ctx) -> list[Problem]:
    """``sftkit validate``: a local model path that does not exist, or is not a model (hub ids are
    checked when loading). In the light core (no training stack) a model inside a package that is
    not installed is a note: like a hub id, it is the training machine's to provide."""
    from ..stack import installed

    name = options.get("name")
    if not isinstance(name, str) or "${" in name:
        return []
    source = describe_model_source(options, ctx.base_dir)
    problem = source.problem()
    if problem and source.error and not installed():  # like a hub id: the machine that trains provides it
        return [Problem(f"{problem} (not needed to validate; needed where the recipe runs)", path="name",
                        level="note")]
    return [Problem(problem, path="name")] if problem else []


def reads_own_reference(model_section: dict | None) -> bool:
    """Whether ``[model] name`` is read by sftkit's own loader (a hub id, a directory, a ``.gguf``):
    only then may sftkit interpret it as a path (rebase it under ``extends``, look into it). A
    plugin loader's reference (``s3://…``, a registry name) is the plugin's to read."""
    from ..core_schema import COMPONENT_TABLES

    default = COMPONENT_TABLES["model"][3]  # "sftkit:transformers"
    return (model_section or {}).get("loader") in (None, default, default.split(":", 1)[1])


def _component(model_section: dict, host):
    """The registered loader ``[model] loader`` names (the default one when unset)."""
    from ..core_schema import COMPONENT_TABLES
    from ..plugins import get_host

    host = host or get_host()
    kind, key, _common, default = COMPONENT_TABLES["model"]
    name = (model_section or {}).get(key) or default
    comp = host.registry.find(kind, name)
    if comp is None:
        raise SftkitError(host.missing_message(kind, name), where="[model].loader")
    return comp


def model_source(model_section: dict, base_dir, console=None, *, host=None) -> ModelSource:
    """Where ``[model] name`` is loaded from, as its loader says (a plugin's failure names the plugin)."""
    from ..validate import factory_options

    comp = _component(model_section, host)
    loader = comp.create(factory_options("model", dict(model_section or {}), comp))
    ref = str((model_section or {}).get("name", ""))
    what = f"model loader {comp.name!r} from plugin {comp.origin!r}"
    try:
        src = loader.source(ref, Path(base_dir) if base_dir is not None else None, console)
    except SftkitError:
        raise
    except Exception as exc:
        raise PluginError(f"{what} failed on {ref!r}: {type(exc).__name__}: {exc}",
                          hint="check [model].name, or report it to the plugin's authors") from exc
    if not isinstance(src, ModelSource):
        raise PluginError(f"{what} returned {src!r} for {ref!r}, not a sftkit.api.ModelSource")
    return src
