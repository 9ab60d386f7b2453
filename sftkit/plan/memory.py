"""Memory: the process's measured peak, and a model of what training needs (for ``sftkit plan``).

Measured: on CUDA ``torch.cuda.max_memory_allocated``; on the CPU the resident high-water mark
(``VmHWM`` in /proc/self/status, reset through /proc/self/clear_refs where Linux allows).

Modelled (bytes), for ``P`` parameters of which ``T`` train, weights of ``w`` bytes:
weights ``P*w``; gradients ``T*4``; AdamW state ``T*8`` (two float32 moments); activations
``tokens * layers * hidden * 34 * a`` (the per-layer tensors autograd keeps, Korthikanti et al.
2022, without the attention matrix, which SDPA does not keep) plus the output layer's logits
``tokens * vocab * 4 * 3`` (logits, their float32 copy and gradient), where ``a`` is 2 bytes under
bf16/fp16 autocast and 4 in fp32.
"""

from __future__ import annotations

from pathlib import Path

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
                    layers: int, hidden: int, vocab: int, autocast: bool) -> dict:
    """The modelled peak of one training step, by part, in bytes (see the module docstring)."""
    act_bytes = 2 if autocast else 4
    parts = {
        "weights": parameters * weight_bytes,
        "gradients": trainable * 4,
        "optimizer": trainable * 8,
        "activations": tokens_per_step * layers * hidden * 34 * act_bytes + tokens_per_step * vocab * 4 * 3,
    }
    parts["total"] = sum(parts.values())
    return parts
