"""The arithmetic precision of a run, decided once for training and evaluation alike.

``[training] precision`` is ``"auto"`` (the default), ``"fp32"``, ``"bf16"`` or ``"fp16"``; the
TrainingArguments flags ``bf16 = true`` / ``fp16 = true`` say the same and refine ``auto``.

``auto`` picks bf16 *mixed* precision where the hardware computes bfloat16 natively and fp32
elsewhere:

=====================================  ==========================================
hardware                               auto
=====================================  ==========================================
CUDA GPU with bf16 support             bf16
CUDA GPU without                       fp32
CPU with ``avx512_bf16`` or AMX        bf16 (``amx_bf16`` in /proc/cpuinfo flags)
any other CPU                          fp32 (bf16 would be emulated: slower)
=====================================  ==========================================

Mixed precision means the weights, gradients and optimizer state keep their dtype (float32 unless
``[model] dtype`` says otherwise) while matrix products run in bf16/fp16 under ``torch.autocast``.
Evaluation runs under the same autocast (:meth:`Precision.autocast`), so base and tuned numbers are
computed the way the model trains.

:func:`requested` is light (no torch): ``sftkit validate`` uses it to report contradictory flags.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import SftkitError

if TYPE_CHECKING:
    from ..config import Training

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
NATIVE_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
CPUINFO = Path("/proc/cpuinfo")


@dataclass(frozen=True)
class Precision:
    """The decision: ``name`` ("fp32" | "bf16" | "fp16"), what was asked, on which device, and why."""

    name: str
    requested: str
    device: str  # torch device type: "cpu", "cuda", ...
    reason: str

    @property
    def dtype_name(self) -> str | None:
        """torch dtype name of the autocast, None for fp32."""
        return {"bf16": "bfloat16", "fp16": "float16"}.get(self.name)

    def autocast(self):
        """A context manager running matrix products in this precision (a no-op for fp32)."""
        if self.name == "fp32":
            return contextlib.nullcontext()
        import torch

        return torch.autocast(self.device, dtype=getattr(torch, self.dtype_name))

    def training_flags(self) -> dict:
        """The TrainingArguments flags for this precision."""
        return {"bf16": self.name == "bf16", "fp16": self.name == "fp16"}

    def describe(self) -> str:
        """One line for the console: ``precision bf16 mixed (auto: ...)``."""
        kind = "fp32" if self.name == "fp32" else f"{self.name} mixed"
        return f"precision {kind} on {self.device} ({self.reason})"

    def as_dict(self) -> dict:
        return {"name": self.name, "requested": self.requested, "device": self.device, "reason": self.reason}


def requested(training: Training) -> tuple[str, str | None]:
    """``(precision asked for, contradiction or None)`` from a ``[training]`` slice; light (no torch)."""
    p = training.precision or "auto"
    if p not in PRECISIONS:
        return "auto", f"precision must be one of {', '.join(PRECISIONS)}, not {p!r}"
    flags = [n for n in ("bf16", "fp16") if getattr(training, n) is True]
    if len(flags) == 2:
        return p, "bf16 = true and fp16 = true contradict each other; keep one (or set precision)"
    if flags:
        flag = flags[0]
        if p not in ("auto", flag):
            return p, f"precision = {p!r} contradicts {flag} = true; keep one of them"
        return flag, None
    if p == "auto" and training.bf16 is False and training.fp16 is not True:
        return "fp32", None  # bf16 = false: the TrainingArguments way of saying full precision
    if p in ("bf16", "fp16") and getattr(training, p) is False:
        return p, f"precision = {p!r} contradicts {p} = false; keep one of them"
    return p, None


def cpu_flags(path: Path = CPUINFO) -> set[str]:
    """The CPU feature flags (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")) and ":" in line:
            return set(line.split(":", 1)[1].split())
    return set()


def _cpu_choice(flags: set[str]) -> tuple[str, str]:
    native = [f for f in NATIVE_BF16_CPU_FLAGS if f in flags]
    if native:
        return "bf16", f"auto: this CPU computes bfloat16 natively ({', '.join(native)})"
    return "fp32", "auto: this CPU has no native bfloat16 (no avx512_bf16 or amx_bf16 flag)"


def _cuda_bf16() -> tuple[bool, str]:
    import torch

    name = torch.cuda.get_device_name(0)
    return bool(torch.cuda.is_bf16_supported(including_emulation=False)), name


def default_device() -> str:
    """The device type training uses when nothing else decides: "cuda" when available, else "cpu"."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def decide(training: Training, device: str | None = None, *, flags: set[str] | None = None) -> Precision:
    """The precision for a ``[training]`` slice on ``device`` (a torch device type; default: CUDA
    when available, else CPU). ``flags`` replaces /proc/cpuinfo (tests). Raises SftkitError when the
    request cannot run there."""
    want, conflict = requested(training)
    if conflict:
        raise SftkitError(conflict, where="[training] precision")
    device = (device or default_device()).split(":")[0]
    if device == "cuda":
        bf16_ok, gpu = _cuda_bf16()
        if want == "auto":
            if bf16_ok:
                return Precision("bf16", want, device, f"auto: {gpu} supports bfloat16")
            return Precision("fp32", want, device, f"auto: {gpu} has no bfloat16 support")
        if want == "bf16" and not bf16_ok:
            raise SftkitError(f"precision bf16 was asked for, but {gpu} does not support bfloat16",
                              where="[training] precision", hint='use precision = "fp16" or "fp32"')
        return Precision(want, want, device, "requested")
    if device == "cpu":
        flags = cpu_flags() if flags is None else flags
        if want == "auto":
            name, why = _cpu_choice(flags)
            return Precision(name, want, device, why)
        if want == "fp16":
            raise SftkitError("precision fp16 needs a CUDA GPU; this run trains on the CPU",
                              where="[training] precision", hint='use precision = "bf16", "fp32" or "auto"')
        if want == "bf16" and not any(f in flags for f in NATIVE_BF16_CPU_FLAGS):
            return Precision("bf16", want, device, "requested; this CPU emulates bfloat16, which is slower than fp32")
        return Precision(want, want, device, "requested")
    # other devices (mps, xpu, ...): only what was asked for explicitly; auto stays exact
    if want == "auto":
        return Precision("fp32", want, device, f"auto: no mixed-precision rule for {device}")
    return Precision(want, want, device, "requested")


def for_run(run, device: str | None = None) -> Precision:
    """The run's precision: decided on first use from ``run.training`` and kept on ``run.precision``,
    so training and both evaluations use the same one."""
    found = getattr(run, "precision", None)
    if isinstance(found, Precision):
        return found
    from ..config import Training

    decided = decide(getattr(run, "training", None) or Training(), device)
    try:
        run.precision = decided
    except AttributeError:  # a context object that does not take attributes: decide each time
        pass
    return decided
