"""Memory: the process's measured peak, and a model of what training needs (for ``sftkit plan``).

Measured: on CUDA ``torch.cuda.max_memory_allocated``; on the CPU the resident high-water mark
(``VmHWM`` in /proc/self/status, reset through /proc/self/clear_refs where Linux allows).

Modelled (bytes), for ``P`` parameters of which ``T`` train, weights of ``w`` bytes:
weights ``P*w``; gradients ``T*4``; AdamW state ``T*8`` (two float32 moments); activations
``tokens * layers * hidden * 34 * a`` (the per-layer tensors autograd keeps, Korthikanti et al.
2022, without the attention matrix, which SDPA does not keep) plus the output layer's logits
``tokens * vocab * 4 * 3`` (logits, their float32 copy and gradient), where ``a`` is 2 bytes under
bf16/fp16 autocast and 4 in fp32. With the chunked loss (``sftkit.strategies.loss``) the logits are
one chunk's, at most ``CHUNK_ELEMENTS * 4 * 3``, plus the float32 gradient of the output weights
``vocab * hidden * 4``.

QLoRA (``[adapter] kind = "qlora"``): of the ``P`` parameters, the ``Q`` held in 4-bit NF4 take
``Q * 0.516`` bytes (4 bits, plus the blocks' scales: :data:`sftkit.modeling.qlora.NF4_BYTES`), the
others ``w`` each (peft's ``prepare_model_for_kbit_training`` casts them to float32, so ``w`` = 4);
the adapter is among those: peft keeps LoRA weights in float32, so gradients ``T*4`` and AdamW
``T*8`` as above. Activations as above (the compute dtype is the run's precision).

Several processes (:func:`per_process`): what one process holds, by the way they train together.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sftkit.config import Distributed

GB = 1024 ** 3
STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def _cuda() -> bool:
    import sys

    torch = sys.modules.get("torch")
    return bool(torch is not None and torch.cuda.is_available())


def reset_peak() -> None:
    """Start measuring the peak from now (where the platform allows; else it stays since start)."""
    if _cuda():
        import torch

        torch.cuda.reset_peak_memory_stats()
        return
    try:
        CLEAR_REFS.write_text("5")
    except OSError:
        pass


def peak_bytes() -> int | None:
    """The peak since :func:`reset_peak` (GPU memory on CUDA, resident memory on the CPU), or None."""
    if _cuda():
        import torch

        return int(torch.cuda.max_memory_allocated())
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
    except (ImportError, OSError):  # pragma: no cover - non-Unix
        return None


def training_memory(*, parameters: int, trainable: int, weight_bytes: int, tokens_per_step: int,
                    layers: int, hidden: int, vocab: int, autocast: bool, chunked: bool = False,
                    quantized: int = 0, double_quant: bool = True) -> dict:
    """The modelled peak of one training step, by part, in bytes (see the module docstring);
    ``quantized``: how many of the ``parameters`` are held in 4-bit (QLoRA)."""
    from sftkit.modeling.qlora import NF4_BYTES
    from sftkit.strategies.loss import CHUNK_ELEMENTS

    act_bytes = 2 if autocast else 4
    logits = tokens_per_step * vocab * 4 * 3
    if chunked:
        logits = min(tokens_per_step * vocab, CHUNK_ELEMENTS) * 4 * 3 + vocab * hidden * 4
    parts = {
        "weights": (parameters - quantized) * weight_bytes + round(quantized * NF4_BYTES[bool(double_quant)]),
        "gradients": trainable * 4,
        "optimizer": trainable * 8,
        "activations": tokens_per_step * layers * hidden * 34 * act_bytes + logits,
    }
    parts["total"] = sum(parts.values())
    return parts


def per_process(parts: dict, *, processes: int, distributed: Distributed | None) -> dict:
    """The modelled peak of one of ``processes`` processes, by part, in bytes.

    Each process holds the activations of its own per-device batch (``parts`` already counts those).
    The backend (:mod:`sftkit.backends`) says which parts it divides among the processes: ddp none
    (a whole copy per process, plus its gradient buckets: one more float32 copy of the trained
    gradients); fsdp ``full_shard`` / ``hybrid_shard`` weights, gradients and optimizer state,
    ``shard_grad_op`` gradients and optimizer state; DeepSpeed ZeRO stage 1 the optimizer state,
    2 also gradients, 3 also weights."""
    from sftkit.backends import backend_of
    from sftkit.config import Distributed

    d = distributed or Distributed()
    backend = backend_of(d)
    n = max(1, int(processes))
    shard = backend.sharded(backend.options_of(d)) if n > 1 else ()
    out = {k: (-(-v // n) if k in shard else v) for k, v in parts.items() if k != "total"}
    out["buckets"] = parts["gradients"] if (n > 1 and backend.gradient_buckets) else 0
    out["total"] = sum(out.values())
    return out
