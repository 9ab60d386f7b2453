"""LoRA adapters (peft) and saving a trained model (adapter, merged or full) with its tokenizer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import SftkitError
from .heads import HEAD_NAMES, classifier_head_names, is_classifier  # noqa: F401 (re-exported)

if TYPE_CHECKING:
    from ..config import Adapter

def apply_adapter(model, adapter: Adapter | None):
    """Wrap ``model`` in a LoRA adapter per the ``[adapter]`` slice (r, alpha, dropout,
    target_modules); None = unchanged. ``kind = "qlora"``: ``model`` is the 4-bit base, prepared
    first (:func:`sftkit.modeling.qlora.prepare`)."""
    if adapter is None:
        return model
    from peft import LoraConfig, TaskType, get_peft_model

    kind = adapter.kind
    if kind not in ("lora", "qlora"):
        raise SftkitError(f"unknown adapter kind {kind!r}", where="[adapter].kind", hint='use "lora" or "qlora"')
    targets = adapter.target_modules
    cls = is_classifier(model)
    if adapter.quantized:
        from . import qlora

        if not qlora.quantized_layers(model):
            raise SftkitError("[adapter] kind = \"qlora\" but the base model was not loaded in 4-bit",
                              where="[adapter].kind", hint="load it through the run's model loader (RunContext.load_model)")
        if cls:
            qlora.check_head(model)
        model = qlora.prepare(model)
    kwargs = {}
    if cls:
        heads = classifier_head_names(model)
        if heads:
            kwargs["modules_to_save"] = heads
    config = LoraConfig(
        r=int(adapter.r),
        lora_alpha=float(adapter.alpha),
        lora_dropout=float(adapter.dropout),
        target_modules=targets,
        task_type=TaskType.SEQ_CLS if cls else TaskType.CAUSAL_LM,
        **kwargs,
    )
    try:
        return get_peft_model(model, config)
    except ValueError as err:
        names = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules()
                        if type(m).__name__ in ("Linear", "Conv1D")})
        raise SftkitError(f"LoRA could not be applied: {str(err).splitlines()[0]}", where="[adapter].target_modules",
                          hint=f'use "all-linear" or some of this model\'s linear layers: {", ".join(names[:12])}') from err


def is_adapter(model) -> bool:
    try:
        from peft import PeftModel
    except ImportError:  # pragma: no cover
        return False
    return isinstance(model, PeftModel)


def merge_and_save(model, tokenizer, out_dir, *, merge: bool = False, model_section: dict | None = None,
                   base_dir=None) -> Path:
    """Save ``model`` + ``tokenizer`` into ``out_dir``: an adapter (or, with ``merge``, merged full weights).

    Full and merged weights are saved ready to generate: in the dtype they were trained in,
    ``use_cache`` on, and the generation config's stop tokens set (EOS and the template's
    end-of-turn tokens). For an unmerged adapter, :func:`record_base` records the base the user
    named (and, for QLoRA, the 4-bit quantization its base is loaded with again). A classifier adapter
    also keeps its config (labels)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if is_adapter(model) and merge:
        model = merged(model)
    if not is_adapter(model):
        ready_to_generate(model, tokenizer)
    model.save_pretrained(out)
    if is_adapter(model):
        base_config = model.get_base_model().config
        if is_classifier(model.get_base_model()):
            base_config.save_pretrained(out)
        if model_section:
            from .qlora import record

            record_base(out, model_section, base_dir, quantization=record(model))
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    return out


def merged(model, say=None):
    """The adapter merged into its base: peft's merge, or for a QLoRA adapter the base de-quantized to
    its compute dtype first (:func:`sftkit.modeling.qlora.dequantized_merge`; ``say`` is told so)."""
    from .qlora import dequantized_merge

    dtype = merged_dtype(model)
    if dtype is None:
        return model.merge_and_unload()
    if say:
        say(f"merging the QLoRA adapter: its 4-bit base is de-quantized to {dtype}, so the saved model is "
            "full size (save without merge to keep the small adapter)")
    return dequantized_merge(model, dtype)


def merged_dtype(model) -> str | None:
    """The dtype :func:`merged` de-quantizes ``model``'s 4-bit base to (None: not a QLoRA model)."""
    from .qlora import record

    quantization = record(model)
    return str(quantization.get("bnb_4bit_compute_dtype") or "float32").replace("torch.", "") if quantization else None


def record_base(out_dir, model_section: dict, base_dir, *, quantization: dict | None = None) -> None:
    """Make a saved adapter name its base as the user did, never as a path inside sftkit's cache
    (which ``sftkit cache clean`` removes): the ``[model]`` section goes to ``sftkit_base.json`` and
    ``adapter_config.json``'s ``base_model_name_or_path`` becomes :func:`portable_reference` — a hub
    id or an absolute directory (peft's ``AutoPeftModelForCausalLM`` loads those as they are), or a
    GGUF file's ``package://`` reference or absolute path, which :func:`sftkit.modeling.loading.load_trained`
    (``serve``, ``chat``, ``arena``, ``eval --model``) converts again when the cache lost it."""
    from .loading import BASE_RECORD

    out = Path(out_dir)
    (out / BASE_RECORD).write_text(json.dumps(
        {"model": model_section, "reference": model_section.get("name"),
         "base_dir": str(Path(base_dir).resolve()) if base_dir is not None else None,
         **({"quantization": quantization} if quantization else {})}, indent=2, default=str))
    reference = portable_reference(model_section, base_dir)
    cfg_path = out / "adapter_config.json"
    if reference and cfg_path.exists():
        cfg = json.loads(cfg_path.read_text())
        cfg["base_model_name_or_path"] = reference
        cfg_path.write_text(json.dumps(cfg, indent=2))


def portable_reference(model_section: dict, base_dir) -> str | None:
    """The base as the user named it, made independent of the working directory, as the recipe's model
    loader resolves it: a hub id, an absolute model directory, or a GGUF file (``package://`` as
    given, else its absolute path)."""
    from ..paths import PACKAGE_SCHEME
    from .loaders import model_source

    src = model_source(model_section, base_dir)
    if src.kind == "hub":
        return src.name
    if src.kind == "dir" and src.path is not None and src.path.is_dir():
        return str(src.path.resolve())
    if src.kind == "gguf" and src.path is not None and src.path.is_file():
        return src.name if src.name.startswith(PACKAGE_SCHEME) else str(src.path.resolve())
    return None


def ready_to_generate(model, tokenizer) -> None:
    """Before saving full weights: ``use_cache`` on, config dtype = the weights' dtype, stop tokens in the
    generation config (a causal LM's EOS and its template's end-of-turn tokens, and the pad token)."""
    config = getattr(model, "config", None)
    if config is None:
        return
    config.use_cache = True
    try:
        dtype = next(model.parameters()).dtype
        config.dtype = dtype
    except (StopIteration, AttributeError):
        pass
    gen = getattr(model, "generation_config", None)
    if gen is None or tokenizer is None or is_classifier(model):
        return
    from .stops import stop_token_ids

    stops = stop_token_ids(model, tokenizer)
    if stops:
        gen.eos_token_id = stops[0] if len(stops) == 1 else stops
    if tokenizer.pad_token_id is not None:
        gen.pad_token_id = tokenizer.pad_token_id
    gen.use_cache = True
