"""Ranks of a multi-process run, decided once from the environment and handed down.

``torch.distributed.run`` (``torchrun``, ``sftkit run --nproc``) and ``accelerate launch`` start one
process per device and tell each its place through ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE`` and
``LOCAL_WORLD_SIZE``. :func:`world_from_env` reads them without importing torch; :func:`start`
joins the process group (gloo on CPU, pinned to the loopback interface when every process is on
this machine; NCCL on GPUs) through accelerate, the same state transformers' Trainer uses, so
sftkit writes no communication code: DDP, FSDP and DeepSpeed come from Trainer + accelerate, and
:func:`training_kwargs` maps the recipe's ``[distributed]`` table onto ``TrainingArguments``.

The rules a run keeps (sftkit.run.stages): only the main process claims the run directory and
writes the lock file, metrics, report and ``COMPLETE``; data preparation and model conversion run
on the main process first (:func:`main_first`) and the others reuse its caches; evaluation
requests are split across ranks and gathered (:class:`ShardedTarget`).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from sftkit.backends import BACKENDS, backend_of, deepspeed_config, fsdp_config

if TYPE_CHECKING:
    from sftkit.config import Distributed, Training

STRATEGIES = tuple(BACKENDS)  # the [distributed] strategies: one record each in sftkit.backends
__all__ = ["World", "world_from_env", "world_of", "start", "stop", "check_device", "training_kwargs", "strategy_of",
           "fsdp_config", "deepspeed_config", "global_batch", "main_first", "barrier", "STRATEGIES"]


@dataclass(frozen=True)
class World:
    """This process's place: global ``rank`` of ``size`` processes, ``local_rank`` on its machine."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    @property
    def is_main(self) -> bool:
        """The process that writes the run directory (global rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def single_node(self) -> bool:
        return self.local_size >= self.size


def world_from_env(env: Mapping[str, str] | None = None) -> World:
    """The :class:`World` the launcher described in ``env`` (default ``os.environ``); one process
    when no launcher set ``WORLD_SIZE``."""
    env = os.environ if env is None else env

    def num(key: str, default: int) -> int:
        try:
            return int(env.get(key, default))
        except (TypeError, ValueError):
            return default

    size = max(1, num("WORLD_SIZE", 1))
    rank = num("RANK", 0)
    local_rank = num("LOCAL_RANK", rank)
    local_size = num("LOCAL_WORLD_SIZE", size)
    return World(rank=rank, size=size, local_rank=local_rank, local_size=local_size)


def world_of(run: Any) -> World:
    """The processes of ``run`` as the run decided them once (``run.world``, read from the launcher's
    environment by the prepare stage); one process when it names none. Components never read the
    environment themselves."""
    return getattr(run, "world", None) or World()


def start(world: World, table: Distributed | None = None) -> None:
    """Join the process group for ``world`` (no-op for one process): NCCL on GPUs with a gloo group
    for CPU collectives, gloo on CPU (loopback interface pinned unless ``GLOO_SOCKET_IFNAME`` is set,
    when all ranks are local). Raises a one-line error for a ``[distributed]`` strategy this machine
    cannot run (accelerate shards with FSDP / DeepSpeed on accelerators only)."""
    if not world.distributed:
        return
    cuda = check_device(table)
    if not world.is_main:
        os.environ.setdefault("SFTKIT_NO_PROGRESS", "1")  # one progress display: the main process's
    if world.single_node:
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    from accelerate import PartialState

    if cuda:
        PartialState(backend="cuda:nccl,cpu:gloo")
    else:
        PartialState(cpu=True)


def check_device(table: Distributed | None) -> bool:
    """Whether GPUs are used; a one-line error for a backend that cannot train without them (its
    ``cpu_refusal``, e.g. FSDP / DeepSpeed: the Trainer would silently fall back to plain data parallelism)."""
    import torch

    from sftkit.errors import SftkitError

    cuda = torch.cuda.is_available()
    backend = backend_of(table)
    if backend.cpu_refusal and not cuda:
        raise SftkitError(f"strategy {backend.name!r} needs GPUs and this machine has none ({backend.cpu_refusal})",
                          where="[distributed] strategy", hint='use strategy = "ddp" on CPU')
    return cuda


def stop(world: World) -> None:
    """Leave the process group at the end of a run (no-op for one process or when none was
    joined): destroyed by torch before the interpreter exits, not torn down with gloo's threads
    still running (which can abort a finished rank: "terminate called without an active exception")."""
    if not world.distributed:
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(world: World) -> None:
    """Wait until every rank arrives (no-op for one process)."""
    if world.distributed:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.barrier()


@contextmanager
def main_first(world: World) -> Iterator[None]:
    """Run the body on the main process first, then on the others (which then find its caches:
    converted models, Arrow files, tokenized datasets). An error on the main process ends the
    launcher's whole run, so nobody waits forever."""
    if not world.is_main:
        barrier(world)
    yield
    if world.is_main:
        barrier(world)


def gather_lists(world: World, local: list) -> list:
    """Every rank's ``local`` list, concatenated in rank order (the local list alone for one process)."""
    if not world.distributed:
        return list(local)
    import torch.distributed as dist

    parts: list = [None] * world.size
    dist.all_gather_object(parts, list(local))
    return [x for part in parts for x in part]


def shard_indices(n: int, world: World) -> list[int]:
    """The indices of ``n`` items this rank handles: every ``size``-th from ``rank`` (balanced)."""
    return list(range(world.rank, n, world.size))


class ShardedTarget:
    """A :class:`sftkit.evaluation.target.Target` whose batched requests (generation, log-likelihoods,
    classification) are split across ranks and gathered back in the original order, so every rank
    returns the full results and evaluators run unchanged; anything else is the wrapped target's."""

    SHARDED = ("generate", "generate_text", "generate_ids", "loglikelihood", "loglikelihood_tokens", "rolling_loglikelihood",
               "labeled_nll", "classify")

    def __init__(self, target: Any, world: World):
        self._target = target
        self._world = world

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
        else:  # e.g. an evaluator setting batch_size: it is the wrapped target's
            setattr(self._target, name, value)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if name in self.SHARDED and callable(attr):
            return lambda items, *a, **kw: self._sharded(attr, items, *a, **kw)
        return attr

    def _sharded(self, method, items, *args, **kwargs) -> list:
        items = list(items)
        mine = shard_indices(len(items), self._world)
        local = method([items[i] for i in mine], *args, **kwargs) if mine else []
        if len(local) != len(mine):
            raise RuntimeError(f"{getattr(method, '__name__', 'request')} returned {len(local)} results for "
                               f"{len(mine)} items")
        pairs = gather_lists(self._world, list(zip(mine, local)))
        out: list = [None] * len(items)
        for i, value in pairs:
            out[i] = value
        return out


# --------------------------------------------------------------------------- recipe → TrainingArguments

def strategy_of(table: Distributed | None) -> str:
    """The ``[distributed]`` slice's strategy ("ddp" without one)."""
    return backend_of(table).name


def training_kwargs(table: Distributed | None, world: World, *, base_dir=None) -> dict:
    """``TrainingArguments`` keywords for the ``[distributed]`` slice of a run of ``world`` processes
    (nothing for one process: the table only matters when several run): the timeout, then the
    backend's own (:mod:`sftkit.backends`)."""
    if not world.distributed:
        return {}
    from sftkit.config import Distributed

    table = table or Distributed()
    return {"ddp_timeout": int(table.timeout_minutes) * 60, **backend_of(table).training_kwargs(table, base_dir)}


def global_batch(training: Training, world_size: int = 1) -> dict:
    """Rows per optimizer step: per-device batch × gradient accumulation × processes."""
    per_device = int(training.per_device_train_batch_size)
    accumulation = int(training.gradient_accumulation_steps)
    return {"per_device": per_device, "accumulation": accumulation, "world_size": int(world_size),
            "global": per_device * accumulation * int(world_size)}
