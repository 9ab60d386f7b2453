"""Model loaders: ``[model] loader = "NAME"`` picks the registered component that says where a model
reference is loaded from (a :class:`~sftkit.api.ModelSource`). Every loading path (training, the
tokenizer, ``--smoke`` models, adapter bases) asks :func:`model_source`, so a plugin's loader is used
everywhere sftkit's own is. Light: no torch or transformers.

The built-in loader is :class:`sftkit.builtin.loaders.TransformersLoader`: hub ids,
``save_pretrained`` directories and ``.gguf`` files, as :func:`describe_model_source` tells them
apart. This module asks loaders through the registry only, so it imports no contract class.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import PluginError, SftkitError
from .source import ModelSource


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
    from ..schema import component_options

    comp = _component(model_section, host)
    loader = comp.create(component_options("model", dict(model_section or {}), comp))
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
