"""QLoRA: LoRA adapters trained on a base model whose linear layers are held in 4-bit NF4.

``[adapter] kind = "qlora"`` loads the base through bitsandbytes (``BitsAndBytesConfig``: NF4, double
quantization unless ``double_quant = false``, compute dtype = the run's precision: bf16 → bfloat16,
fp16 → float16, fp32 → float32), then prepares it as peft's ``prepare_model_for_kbit_training`` does
(every base weight frozen, the weights left in 16-bit cast to float32; gradient checkpointing stays
``[training] gradient_checkpointing``'s) and wraps it in the LoRA adapter ``[adapter]`` describes.
The output layer and a classifier's head (:data:`~sftkit.modeling.heads.HEAD_NAMES`) stay out of
4-bit: the head is new and trains whole.

Saving: an adapter naming the base the user named, with the quantization recorded beside it
(``sftkit_base.json``), so :func:`sftkit.modeling.loading.load_trained` puts it back on the same 4-bit
base and answers as the run did. ``merge = true`` (and ``--smoke``) de-quantizes every 4-bit layer to
the compute dtype and adds the adapter there (:func:`dequantized_merge`): a full-size model, never a
4-bit one (peft's own merge would re-quantize the sum and lose most of the adapter's small update).

On a CPU with ``avx512_bf16``, bitsandbytes 0.50 repacks a 4-bit weight for fast inference the
first time it runs without gradients (the base evaluation); backward through the repacked weight has
no autograd kernel and silently gives wrong gradients (half the norm off, measured). :func:`prepare`
switches that repacking off on every 4-bit layer.

Light at import: :func:`recipe_problems` (``sftkit validate``) reads installed versions only.
"""

from __future__ import annotations

from typing import Any

from ..errors import SftkitError, shorten

KIND = "qlora"
EXTRA = "pip install 'sftkit[qlora]'"
# NF4: 4 bits a weight, plus one absmax per block of 64 (8-bit, with a float32 per 256 of them, under
# double quantization; float32 without)
NF4_BYTES = {True: 0.5 + 1 / 64 + 4 / (64 * 256), False: 0.5 + 4 / 64}
# FSDP1 shards 4-bit weights stored in a float dtype (bnb_4bit_quant_storage): the versions that added it
# (transformers#29587, peft#1550, bitsandbytes#970). FSDP2 turns a Params4bit into a plain parameter and
# loses its quantization state (accelerate#3874, #3983: at best it leaves them unsharded): refused.
FSDP_MINIMUM = {"accelerate": "0.28.0", "bitsandbytes": "0.43.0", "transformers": "4.39.0", "peft": "0.10.0"}
COMPUTE_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def is_qlora(adapter) -> bool:
    """Whether an ``[adapter]`` slice (or None) asks for QLoRA."""
    return bool(adapter is not None and getattr(adapter, "quantized", False))


def installed_version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def recipe_problems(adapter, *, freeze: bool, distributed, trains_classifier: bool,
                    version=installed_version) -> list[tuple]:
    """What cannot work with ``[adapter] kind = "qlora"``, as ``(key path, message, hint)``; light (no
    torch). ``adapter`` / ``distributed``: the typed slices of the tables being validated (None when
    absent); ``freeze``: the recipe has a ``[freeze]`` table; ``trains_classifier``: the strategy trains
    a new classification head; ``version(dist)``: the installed version of a distribution, or None."""
    from packaging.version import Version

    if not is_qlora(adapter):
        return []
    out = []
    if freeze:
        out.append((("freeze",), "[freeze] trains the weights it leaves unfrozen in full, which 4-bit (QLoRA) weights "
                    "cannot: QLoRA trains the adapter only", 'remove [freeze], or use [adapter] kind = "lora" '
                    "(LoRA on full-precision weights) with it"))
    if trains_classifier and isinstance(adapter.target_modules, list):
        from .heads import HEAD_NAMES

        named = [t for t in adapter.target_modules if t in HEAD_NAMES]
        if named:
            out.append((("adapter", "target_modules"), f"target_modules names the classification head ({', '.join(named)}): "
                        "under QLoRA the head is kept out of 4-bit and trains whole, it cannot also carry an adapter",
                        f"remove {', '.join(named)} from target_modules"))
    if distributed is not None and distributed.strategy == "fsdp":
        if distributed.fsdp is None or int(distributed.fsdp.version) == 2:
            out.append((("distributed", "fsdp", "version"), "FSDP2 does not shard 4-bit (QLoRA) weights with accelerate "
                        f"{version('accelerate') or '(not installed)'}: FSDP-QLoRA is accelerate's FSDP1 path",
                        "set [distributed.fsdp] version = 1, or strategy = \"ddp\""))
        old = [f"{d} {version(d) or 'missing'} (needs >= {v})" for d, v in FSDP_MINIMUM.items()
               if version(d) is None or Version(version(d) or "0") < Version(v)]
        if old:
            out.append((("distributed", "strategy"), "FSDP cannot shard 4-bit (QLoRA) weights with what is installed: "
                        + ", ".join(old), f"{EXTRA} (and upgrade what is listed), or use strategy = \"ddp\""))
    return out


def backend_problem(device: str) -> str | None:
    """Why bitsandbytes cannot quantize to 4-bit on ``device`` (a torch device type) here, or None."""
    if installed_version("bitsandbytes") is None:
        return f"[adapter] kind = \"qlora\" needs bitsandbytes, which is not installed ({EXTRA})"
    try:
        bitsandbytes = _import_quietly()
    except Exception as exc:  # a broken native library fails here, in many ways
        return f"bitsandbytes {installed_version('bitsandbytes')} does not load here: {type(exc).__name__}: {exc}"
    supported = set(getattr(bitsandbytes, "supported_torch_devices", ()) or ())
    if device not in supported:
        return (f"bitsandbytes {bitsandbytes.__version__} has no 4-bit backend for {device!r} on this machine "
                f"(it has: {', '.join(sorted(supported)) or 'none'})")
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        return f"bitsandbytes {bitsandbytes.__version__}: no CUDA device is visible to torch"
    try:  # the backend itself: a 4-bit round trip of one block on the device
        from bitsandbytes.functional import dequantize_4bit, quantize_4bit

        block = torch.linspace(-1, 1, 64, device=device)
        packed, state = quantize_4bit(block, quant_type="nf4")
        if not torch.allclose(dequantize_4bit(packed, state).float(), block, atol=0.2):
            return f"bitsandbytes {bitsandbytes.__version__}'s 4-bit backend for {device!r} gives wrong values here"
    except Exception as exc:  # a missing native kernel surfaces here, in many ways
        return (f"bitsandbytes {bitsandbytes.__version__} cannot quantize to 4-bit on {device!r} here: "
                + shorten(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"))
    return None


def _import_quietly():
    """``import bitsandbytes`` without the two lines its CPU backend logs when it cannot fetch an optional
    hub kernel (``kernels-community``) for the inference repacking :func:`no_repacking` switches off."""
    import logging

    loggers = [logging.getLogger(n) for n in ("bitsandbytes.backends.cpu.ops", "kernels._internals.hf_hub")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        import bitsandbytes
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
    return bitsandbytes


def require_backend(device: str) -> None:
    """Refuse, in one line, a QLoRA run where bitsandbytes has no backend for its device."""
    why = backend_problem(device)
    if why:
        raise SftkitError(why, where="[adapter].kind",
                          hint=f'{EXTRA} on a machine it supports (CUDA, or a recent x86 CPU), or use kind = "lora"')


def compute_dtype_name(precision: str) -> str:
    """The 4-bit layers' compute dtype for the run's precision name ("bf16", "fp16", "fp32")."""
    return COMPUTE_DTYPES.get(precision, "float32")


def quantization_config(*, precision: str, double_quant: bool = True, keep: tuple = (), storage: str | None = None):
    """The ``BitsAndBytesConfig`` of a QLoRA base. ``keep``: module names left out of 4-bit (none: the
    loader's default, the output layer); ``storage``: a float dtype to pack the 4-bit weights in
    (FSDP shards only float tensors)."""
    import torch
    from transformers import BitsAndBytesConfig

    kwargs: dict[str, Any] = {}
    if keep:
        kwargs["llm_int8_skip_modules"] = list(keep)
    if storage:
        kwargs["bnb_4bit_quant_storage"] = getattr(torch, storage)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=bool(double_quant),
                              bnb_4bit_compute_dtype=getattr(torch, compute_dtype_name(precision)), **kwargs)


def load_arguments(adapter, *, precision: str, device: str, classifier: bool = False, sharded: bool = False) -> dict:
    """What ``from_pretrained`` gets for a QLoRA base on ``device`` (``"cuda:1"``, ``"cpu"``): the
    quantization config and the device it is quantized on (bitsandbytes quantizes as it places)."""
    from .heads import HEAD_NAMES

    storage = compute_dtype_name(precision) if sharded else None
    config = quantization_config(precision=precision, double_quant=getattr(adapter, "double_quant", True),
                                 keep=HEAD_NAMES if classifier else (), storage=storage)
    out: dict[str, Any] = {"quantization_config": config}
    if not sharded:  # sharded: loaded on the CPU, accelerate places the shards
        out["device_map"] = {"": device}
    return out


def quantized_layers(model) -> list:
    """``(name, module)`` of every 4-bit linear layer in ``model`` (bitsandbytes' own, not the peft
    wrapper of the same class name around it)."""
    return [(n, m) for n, m in model.named_modules() if _is_4bit(m)]


def _is_4bit(module) -> bool:
    return type(module).__name__ == "Linear4bit" and type(module).__module__.startswith("bitsandbytes")


def no_repacking(model) -> None:
    """Switch bitsandbytes' one-way CPU inference repacking off on every 4-bit layer (see the module
    docstring): training after an evaluation then gets true gradients, and every evaluation computes alike."""
    for _name, module in quantized_layers(model):
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


def prepare(model):
    """``prepare_model_for_kbit_training`` without its gradient checkpointing (``[training]`` decides
    that), and :func:`no_repacking`."""
    from peft import prepare_model_for_kbit_training

    no_repacking(model)
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)


def run_load_arguments(run, *, classifier: bool = False) -> dict | None:
    """The 4-bit loading arguments of a run's base (None unless ``[adapter] kind = "qlora"``), after
    refusing, in one line, a machine where bitsandbytes has no backend for the run's device. The
    device is the run's (each rank's own GPU in a multi-process run); the compute dtype its precision."""
    config = getattr(run, "config", None)
    adapter = getattr(config, "adapter", None)
    if not is_qlora(adapter):
        return None
    precision = getattr(run, "precision", None)
    device = getattr(run, "device", None) or getattr(precision, "device", None) or "cpu"
    require_backend(device.split(":")[0])
    world = getattr(run, "world", None)
    several = bool(world is not None and world.distributed)
    if several and device == "cuda":
        device = f"cuda:{world.local_rank}"
    strategy = getattr(getattr(config, "distributed", None), "strategy", "ddp")
    return load_arguments(adapter, precision=getattr(precision, "name", "fp32"), device=device,
                          classifier=classifier, sharded=several and strategy != "ddp")


def check_head(model) -> None:
    """Refuse a classifier whose head would be 4-bit (a head name sftkit does not know): it could not train."""
    from .heads import HEAD_NAMES, classifier_head_names

    heads = classifier_head_names(model)
    frozen = [n for n, _m in quantized_layers(model) if n.split(".")[0] in HEAD_NAMES]
    if not heads or frozen:
        arch = type(model).__name__
        raise SftkitError(f"the classification head of {arch} cannot train under QLoRA: "
                          + (f"it is 4-bit ({', '.join(frozen)})" if frozen else
                             f"it is none of the heads sftkit keeps out of 4-bit ({', '.join(HEAD_NAMES)})"),
                          where="[adapter].kind", hint='use kind = "lora" for this model')


def parameter_count(model) -> int:
    """Parameters of ``model``, a 4-bit weight counted as the weights it holds (its storage packs several)."""
    total = 0
    for p in model.parameters():
        state = getattr(p, "quant_state", None)
        total += int(state.shape.numel()) if state is not None and hasattr(state.shape, "numel") else p.numel()
    return total


def quantized_parameter_count(model) -> int:
    """Weights held in 4-bit."""
    return sum(int(m.weight.quant_state.shape.numel()) for _n, m in quantized_layers(model)
               if getattr(m.weight, "quant_state", None) is not None)


def clear_quantization(model) -> None:
    """A de-quantized model (a GGUF file read, a QLoRA merge) still says it is quantized; make it trainable and savable."""
    model.hf_quantizer = None
    try:
        model.is_quantized = False
    except AttributeError:  # a read-only property in some versions
        pass
    if hasattr(model.config, "quantization_config"):
        try:
            delattr(model.config, "quantization_config")
        except AttributeError:
            model.config.quantization_config = None
    if hasattr(model, "quantization_method"):
        model.quantization_method = None


def record(model) -> dict | None:
    """The quantization of a QLoRA base, as :mod:`sftkit.modeling.adapters` records it beside an adapter
    (``BitsAndBytesConfig.to_dict()``), or None for a base not in 4-bit."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = getattr(getattr(base, "config", None), "quantization_config", None)
    if config is None or not quantized_layers(base):
        return None
    return config.to_dict() if hasattr(config, "to_dict") else dict(config)


def config_from_record(data: dict):
    """A ``BitsAndBytesConfig`` from :func:`record`'s dict."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig.from_dict(dict(data))


def dequantized_merge(model, dtype_name: str):
    """A plain model: every 4-bit layer de-quantized to ``dtype_name`` with the adapter's update added in
    float32 first, the rest of the adapter merged by peft, every floating weight in ``dtype_name``."""
    import torch
    from bitsandbytes.functional import dequantize_4bit

    dtype = getattr(torch, dtype_name)

    def plain(module4, delta=None):
        weight = module4.weight
        w = dequantize_4bit(weight.data, weight.quant_state).to(torch.float32)
        if delta is not None:
            w = w + delta.to(torch.float32)
        out = torch.nn.Linear(w.shape[1], w.shape[0], bias=module4.bias is not None, device=w.device, dtype=dtype)
        with torch.no_grad():
            out.weight.copy_(w.to(dtype))
            if module4.bias is not None:
                out.bias.copy_(module4.bias.to(dtype))
        return out

    def replace(root, name, new):
        parent_name, _, child = name.rpartition(".")
        setattr(root.get_submodule(parent_name) if parent_name else root, child, new)

    for name, module in list(model.named_modules()):
        base = getattr(module, "base_layer", None)
        if base is not None and _is_4bit(base) and hasattr(module, "get_delta_weight"):
            delta = None
            for adapter_name in module.active_adapters:
                if adapter_name in getattr(module, "lora_A", {}):
                    d = module.get_delta_weight(adapter_name)
                    delta = d if delta is None else delta + d
            replace(model, name, plain(base, delta))
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    for name, module in quantized_layers(model):  # layers the adapter did not target
        replace(model, name, plain(module))
    clear_quantization(model)
    for p in model.parameters():
        if p.is_floating_point():
            p.data = p.data.to(dtype)
    return model
