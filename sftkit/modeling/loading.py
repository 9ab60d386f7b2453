"""Load tokenizers and models for training: hub ids, local directories, GGUF files (converted once)."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

from ..errors import SftkitError
from ..paths import PACKAGE_SCHEME
from .cache import cached_entry, content_digest, write_entry
from .loaders import model_source
from .qlora import clear_quantization
from .source import GGUF_KIND, ModelSource, not_found_error  # noqa: F401 (re-exported)
from .tokens import _sync_pad, ensure_pad_token, label_maps  # noqa: F401 (re-exported)

BASE_RECORD = "sftkit_base.json"  # the [model] section an adapter was trained on


def resolve_dtype(name: str | None = "auto"):
    """torch dtype for ``[model].dtype``: "auto" = bfloat16 on a GPU that supports it, else float32."""
    import torch

    name = name or "auto"
    if name == "auto":
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def gguf_cache_dir(path: Path, console=None) -> Path:
    """Dequantize a GGUF file once into an HF model directory in the cache; return that directory."""
    path = Path(path)
    digest = content_digest(path)  # by content: the same file installed twice converts once
    hit = cached_entry(GGUF_KIND, digest)
    if hit is not None:
        return hit
    if console:
        console(f"converting {path.name} to a trainable model (once; cached for later runs)...")

    def fill(tmp: Path) -> None:
        model, tok = read_gguf(path)
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)

    return write_entry(GGUF_KIND, digest, fill, {"source": str(path.resolve()), "kind": "gguf"})


def read_gguf(path: Path):
    """``(model, tokenizer)`` of a GGUF file, dequantized to float32 in memory (what the cache stores)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    try:
        with _quiet_transformers():
            tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
            model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    except (ValueError, OSError, KeyError, RuntimeError) as err:
        raise SftkitError(f"could not read GGUF file {path}: {err}", where="[model].name",
                          hint="use a GGUF of an architecture transformers can dequantize (llama, mistral, "
                               "qwen2, phi3, gemma...), or a model directory") from err
    clear_quantization(model)
    return model, tok


def model_location(model_section: dict, base_dir, console=None, *, host=None) -> tuple[ModelSource, str]:
    """Where ``from_pretrained`` should load from, as ``[model] loader`` says (GGUF → its cache dir);
    raises when a local path is missing. ``host``: the plugin host (default: the process's)."""
    src = model_source(model_section, base_dir, console, host=host)
    problem = src.problem()
    if problem:
        raise SftkitError(problem, where="[model].name")
    if src.kind == "gguf":
        return src, str(gguf_cache_dir(src.path, console))
    if src.kind == "dir":
        return src, str(src.path)
    return src, src.name


def _hub_kwargs(model_section: dict, src: ModelSource) -> dict:
    kw = {"trust_remote_code": bool(model_section.get("trust_remote_code", False))}
    if src.kind == "hub" and src.revision:
        kw["revision"] = src.revision
    return kw


def load_tokenizer(model_section: dict, base_dir, *, console=None, host=None):
    """The tokenizer of ``[model]`` (or ``[model].tokenizer``, through the same loader), with a pad token."""
    from transformers import AutoTokenizer

    other = model_section.get("tokenizer")
    if other:
        src, where = model_location({**model_section, "name": other}, base_dir, console, host=host)
    else:
        src, where = model_location(model_section, base_dir, console, host=host)
    try:
        tok = AutoTokenizer.from_pretrained(where, **_hub_kwargs(model_section, src))
    except (OSError, ValueError) as err:
        raise not_found_error(src, base_dir, err) from err
    ensure_pad_token(tok)
    return tok


def requantized(model, quantization: dict | None):
    """An in-memory model (a smoke run's tiny stand-in) loaded again with ``quantization`` (4-bit); the
    model itself without."""
    if not quantization:
        return model
    import tempfile

    with tempfile.TemporaryDirectory(prefix="sftkit-quantize-") as tmp:
        model.save_pretrained(tmp)
        return _no_repacking(type(model).from_pretrained(tmp, dtype=next(model.parameters()).dtype, **quantization))


def _no_repacking(model):
    from .qlora import no_repacking

    no_repacking(model)  # before the base evaluation: it would repack for good (see sftkit.modeling.qlora)
    return model


def load_causal_lm(model_section: dict, base_dir, *, console=None, host=None, quantization: dict | None = None):
    """Return ``(model, tokenizer)`` for a causal LM. ``host``: the plugin host whose model loaders
    apply (default: the process's). The smoke stand-in is the run's choice (:func:`sftkit.models.load_base`).
    ``quantization``: ``from_pretrained`` arguments of a 4-bit base (:func:`sftkit.modeling.qlora.load_arguments`)."""
    from transformers import AutoModelForCausalLM

    src, where = model_location(model_section, base_dir, console, host=host)
    tok = load_tokenizer(model_section, base_dir, console=console, host=host)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            where, dtype=resolve_dtype(model_section.get("dtype")), **(quantization or {}),
            **_hub_kwargs(model_section, src))
    except OSError as err:
        raise not_found_error(src, base_dir, err) from err
    except ValueError as err:
        raise SftkitError(f"{src.describe()} cannot be loaded as a causal language model: {str(err).splitlines()[0]}",
                          where="[model].name",
                          hint="use a decoder model (or the classification strategy for encoders); "
                               "set trust_remote_code = true only for repositories you trust") from err
    _sync_pad(model, tok)
    return (_no_repacking(model) if quantization else model), tok


@contextmanager
def _quiet_transformers():
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def load_sequence_classifier(model_section: dict, base_dir, *, labels, console=None, host=None,
                             quantization: dict | None = None):
    """Return ``(model, tokenizer)``: a sequence classifier with ``labels`` (new head) on top of ``[model]``
    (``quantization``: as for :func:`load_causal_lm`)."""
    maps = label_maps(labels)
    from transformers import AutoModelForSequenceClassification

    src, where = model_location(model_section, base_dir, console, host=host)
    tok = load_tokenizer(model_section, base_dir, console=console, host=host)
    try:
        with _quiet_transformers():  # "score.weight newly initialized" is expected: the head is new
            model = AutoModelForSequenceClassification.from_pretrained(
                where, dtype=resolve_dtype(model_section.get("dtype")), problem_type="single_label_classification",
                **maps, **(quantization or {}), **_hub_kwargs(model_section, src))
    except OSError as err:
        raise not_found_error(src, base_dir, err) from err
    except ValueError as err:
        raise SftkitError(f"{src.describe()} cannot be loaded as a sequence classifier: {str(err).splitlines()[0]}",
                          where="[model].name") from err
    model.config.pad_token_id = tok.pad_token_id  # decoder classifiers find the last token by it
    return (_no_repacking(model) if quantization else model), tok


def load_trained(model_dir):
    """Load a run's saved ``model/`` directory: a full model or a LoRA adapter (base loaded from its record)."""
    from transformers import AutoTokenizer

    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise SftkitError(f"no trained model at {model_dir}", hint="pass a run's model/ directory (RUN_DIR/model)")
    adapter_cfg = model_dir / "adapter_config.json"
    config_path = model_dir / "config.json"
    config = json.loads(config_path.read_text()) if config_path.exists() else {}
    is_cls = any(str(a).endswith("ForSequenceClassification") for a in config.get("architectures") or [])
    if adapter_cfg.exists():
        model = _load_adapter(model_dir, json.loads(adapter_cfg.read_text()), config)
    elif config_path.exists():
        from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

        auto = AutoModelForSequenceClassification if is_cls else AutoModelForCausalLM
        model = auto.from_pretrained(model_dir, dtype=resolve_dtype("auto"))
    else:
        raise SftkitError(f"{model_dir} holds neither a model (config.json) nor an adapter (adapter_config.json)",
                          hint="pass a run's model/ directory; an unfinished run has no COMPLETE file")
    tok = AutoTokenizer.from_pretrained(model_dir)
    ensure_pad_token(tok)
    _sync_pad(model, tok)
    model.eval()
    return model, tok


def _load_adapter(model_dir: Path, adapter_cfg: dict, config: dict):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    base = adapter_cfg.get("base_model_name_or_path")
    record = model_dir / BASE_RECORD
    quantized = _quantized_base(record)
    if base and (base.lower().endswith(".gguf") or base.startswith(PACKAGE_SCHEME)):
        _, base = model_location({"name": base}, None)  # the user's GGUF reference: its (re-)converted copy
    elif base and base.startswith("/") and not Path(base).exists() and record.exists():
        info = json.loads(record.read_text())  # an older adapter naming a cleared cache entry: convert again
        _, base = model_location(info["model"], info.get("base_dir"))
    if not base:
        raise SftkitError(f"{model_dir}/adapter_config.json names no base model",
                          hint="set base_model_name_or_path in it to the base model directory or hub id")
    if adapter_cfg.get("task_type") == "SEQ_CLS":
        maps = {}
        if config.get("id2label"):
            id2label = {int(k): v for k, v in config["id2label"].items()}
            maps = {"num_labels": len(id2label), "id2label": id2label,
                    "label2id": {v: k for k, v in id2label.items()}}
        with _quiet_transformers():  # the head is missing from the base: it comes from the adapter
            base_model = AutoModelForSequenceClassification.from_pretrained(base, dtype=resolve_dtype("auto"), **maps,
                                                                            **quantized)
        if config.get("pad_token_id") is not None:
            base_model.config.pad_token_id = config["pad_token_id"]
    else:
        try:
            base_model = AutoModelForCausalLM.from_pretrained(base, dtype=resolve_dtype("auto"), **quantized)
        except OSError as err:
            raise SftkitError(f"the base model {base!r} of the adapter in {model_dir} is gone: {err}",
                              hint="re-create it (a GGUF base is re-converted by any run on the same file) "
                                   "or save with [adapter].merge = true") from err
    if quantized:
        _no_repacking(base_model)  # computes as the run's evaluation did
    return PeftModel.from_pretrained(base_model, model_dir)


def _quantized_base(record: Path) -> dict:
    """``from_pretrained`` arguments that put a QLoRA adapter back on the 4-bit base it was trained on
    (the quantization ``sftkit_base.json`` records); none for a LoRA adapter, or where bitsandbytes has
    no backend here (the base then loads in full precision: answers differ by the quantization error)."""
    try:
        info = json.loads(record.read_text()) if record.is_file() else {}
    except (OSError, ValueError):
        info = {}
    if not info.get("quantization"):
        return {}
    import warnings

    import torch

    from .qlora import backend_problem, config_from_record

    device = "cuda" if torch.cuda.is_available() else "cpu"
    why = backend_problem(device)
    if why:
        warnings.warn(f"{why}: the adapter's 4-bit base is loaded in full precision instead", stacklevel=3)
        return {}
    return {"quantization_config": config_from_record(info["quantization"]), "device_map": {"": device}}


def context_length(model, default: int = 2048) -> int:
    """The longest input ``model`` was built for, from its config (``default`` when it says none)."""
    cfg = getattr(model, "config", None)
    for attr in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(cfg, attr, None)
        if isinstance(value, int) and 0 < value < 10**7:
            return value
    return default
