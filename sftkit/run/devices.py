"""Where a run computes: the device (``[training] device``: CUDA, then Apple MPS, else the CPU) and
the CPU threads torch uses (``[training] threads``).

Decided once by the run (:func:`setup`) and handed down: models are placed on the device right
after loading, so the base evaluation and ``sftkit eval`` run where training runs; precision is
decided for that device (``sftkit.modeling.precision``). In a multi-process run each rank has its
own GPU (:func:`for_rank`).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from sftkit.errors import SftkitError

if TYPE_CHECKING:
    from sftkit.config import Training

DEVICES = ("auto", "cuda", "mps", "cpu")


def available() -> list[str]:
    """The device types torch can use here, best first."""
    import torch

    found = []
    if torch.cuda.is_available():
        found.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    return found + ["cpu"]


def choose(training: Training) -> str:
    """``[training] device`` ("auto": the best available); one-line error when it is not available."""
    want = str(training.device or "auto")
    have = available()
    if want == "auto":
        return have[0]
    if want not in have:
        raise SftkitError(f"device {want!r} is not available on this machine (available: {', '.join(have)})",
                          where="[training] device", hint='use device = "auto" or one of the available ones')
    return want


def busy(load: float, cores: int, threads: int) -> str | None:
    """A warning when the machine is busier than its cores: torch threads then slow each other down."""
    if cores and load > cores and threads > 1:
        return (f"the machine is busy (load average {load:.1f} on {cores} cores): {threads} torch threads may run "
                f"several times slower than 1; set [training] threads = 1 to use one")
    return None


def set_threads(training: Training, say) -> int:
    """Apply ``[training] threads`` (default: what torch picks, with a warning on a busy machine)."""
    import torch

    threads = training.threads
    if threads:
        torch.set_num_threads(int(threads))
        return int(threads)
    current = torch.get_num_threads()
    try:
        load = os.getloadavg()[0]
    except OSError:
        return current
    warning = busy(load, os.cpu_count() or 1, current)
    if warning:
        say(f"warning: {warning}")
    return current


def for_rank(device: str, local_rank: int = 0, distributed: bool = False) -> str:
    """The device one process of a run uses: in a multi-process run each rank on a CUDA machine has
    its own GPU (``cuda:LOCAL_RANK``), as the trainer places it; otherwise ``device`` itself."""
    return f"cuda:{local_rank}" if distributed and device == "cuda" else device


def place(model, device: str):
    """``model`` on ``device`` (a type such as ``"cuda"`` or one device such as ``"cuda:1"``; left
    where it is when already there, or spread by ``device_map``)."""
    if model is None or getattr(model, "hf_device_map", None):
        return model
    try:
        current = next(model.parameters()).device
    except (StopIteration, AttributeError):
        return model
    there = current.type == device if ":" not in device else str(current) == device
    return model if there else model.to(device)


def setup(ctx) -> str:
    """Decide the run's device and threads; returns the device type."""
    training = ctx.training
    device = choose(training)
    set_threads(training, ctx.console or (lambda msg: None))
    ctx.device = device
    return device
