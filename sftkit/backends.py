"""The ways several processes train together (``[distributed] strategy``): one record each.

What sftkit knows about a backend is its :class:`Backend` record here: the name and help the
schema shows, its options sub-table, why it cannot train on a CPU-only machine, which modelled
memory parts it divides among the processes (``sftkit plan``), whether the weights are sharded
when the run saves, and how its options map onto transformers' ``TrainingArguments``. The schema
(:mod:`sftkit.core_schema`), ``validate``, the run (:mod:`sftkit.run.distributed`) and the plan
(:mod:`sftkit.plan.memory`) read these records; the communication itself is torch.distributed
through accelerate and the Trainer, never sftkit's own.

Adding a backend: its record in :data:`BACKENDS`; options of its own go in a sub-table of
``core_schema.DISTRIBUTED_SECTION`` with a typed slice on ``config.Distributed``; its test in
``tests/test_distributed.py``. The bottom of sftkit: imports nothing of its machinery.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

# the slices these functions read (sftkit.config's Distributed, FSDP, DeepSpeed) are not imported,
# not even for type checkers: config reads this module, so the bottom stays at the bottom
Distributed = FSDP = DeepSpeed = Any

ALL_PARTS = ("weights", "gradients", "optimizer")


@dataclass(frozen=True)
class Backend:
    """One ``[distributed] strategy``. ``options``: the name of its sub-table of ``[distributed]``
    (None: it has none); ``cpu_refusal``: why it cannot train without GPUs (None: it can);
    ``sharded(options)``: the modelled memory parts (``weights``, ``gradients``, ``optimizer``) it
    divides among the processes, given its options slice (``config.Distributed`` fills the chosen
    backend's, defaults included);
    ``training_kwargs(table, base_dir)``: its ``TrainingArguments`` keywords for the ``[distributed]``
    slice ``table``; ``shards_saved_weights``: the weights are sharded when the run saves (an adapter
    cannot be merged then); ``gradient_buckets``: it keeps one more float32 copy of the trained
    gradients in its communication buckets (DDP)."""

    name: str
    doc: str
    sharded: Callable[[Any], tuple[str, ...]]
    training_kwargs: Callable[[Any, Any], dict]
    options: str | None = None
    cpu_refusal: str | None = None
    shards_saved_weights: bool = False
    gradient_buckets: bool = False

    def options_of(self, table: Distributed) -> Any:
        """This backend's options slice of ``table`` (None when it has no options table)."""
        return getattr(table, self.options) if self.options else None


# --------------------------------------------------------------------------- ddp

def _ddp_kwargs(table: Distributed, base_dir: Any = None) -> dict:
    return {"ddp_find_unused_parameters": bool(table.find_unused_parameters)}


DDP = Backend(
    name="ddp", doc="a full copy per process",
    sharded=lambda options: (),
    training_kwargs=_ddp_kwargs, gradient_buckets=True,
)


# --------------------------------------------------------------------------- fsdp

FSDP_SHARDED = {"full_shard": ALL_PARTS, "hybrid_shard": ALL_PARTS, "shard_grad_op": ("gradients", "optimizer"),
                "no_shard": ()}


def fsdp_config(fsdp: FSDP) -> dict:
    """transformers' ``fsdp_config`` for the recipe's ``[distributed.fsdp]`` slice."""
    version = int(fsdp.version)
    sharding = str(fsdp.sharding)
    cfg: dict = {
        "version": version,
        "reshard_after_forward": (sharding == "full_shard") if version == 2 else sharding,
        "cpu_offload": bool(fsdp.cpu_offload),
        "activation_checkpointing": bool(fsdp.activation_checkpointing),
        "state_dict_type": "FULL_STATE_DICT",  # the saved model is a plain transformers directory
    }
    layers = fsdp.wrap_layers
    if layers:
        cfg["auto_wrap_policy"] = "TRANSFORMER_BASED_WRAP"
        cfg["transformer_layer_cls_to_wrap"] = list(layers)
    return cfg


def _fsdp_sharded(options: FSDP) -> tuple[str, ...]:
    return FSDP_SHARDED.get(str(options.sharding), ())


def _fsdp_kwargs(table: Distributed, base_dir: Any = None) -> dict:
    assert table.fsdp is not None  # config.Distributed fills the chosen backend's options
    return {"fsdp": True, "fsdp_config": fsdp_config(table.fsdp)}


FSDP_BACKEND = Backend(
    name="fsdp", doc="weights, gradients and optimizer state sharded",
    sharded=_fsdp_sharded, training_kwargs=_fsdp_kwargs, options="fsdp", shards_saved_weights=True,
    # what accelerate (1.15) does on a CPU-only machine; torch's FSDP2 itself trains on gloo (checked
    # with 2-process scripts), accelerate does not use it there
    cpu_refusal="accelerate's AcceleratorState enables FSDP only for GPU-type devices and on CPU silently "
                "trains with DDP",
)


# --------------------------------------------------------------------------- deepspeed

ZERO_SHARDED = {1: ("optimizer",), 2: ("gradients", "optimizer"), 3: ALL_PARTS}


def deepspeed_config(ds: DeepSpeed) -> dict:
    """A DeepSpeed config for ZeRO ``stage`` (1-3) with optional CPU offload; batch sizes, clipping
    and precision are ``"auto"`` so transformers fills them from ``TrainingArguments``."""
    stage = int(ds.stage)
    zero: dict = {"stage": stage, "overlap_comm": True, "contiguous_gradients": True}
    if ds.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
    if ds.offload_params:
        zero["offload_param"] = {"device": "cpu", "pin_memory": True}
    if stage == 3:
        zero["stage3_gather_16bit_weights_on_model_save"] = True  # save a full state dict
    return {
        "train_micro_batch_size_per_gpu": "auto",
        "train_batch_size": "auto",
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
        "bf16": {"enabled": "auto"},
        "fp16": {"enabled": "auto"},
        "zero_optimization": zero,
    }


def _deepspeed_sharded(options: DeepSpeed) -> tuple[str, ...]:
    return ZERO_SHARDED.get(int(options.stage), ())


def _deepspeed_kwargs(table: Distributed, base_dir: Any = None) -> dict:
    ds = table.deepspeed
    assert ds is not None  # config.Distributed fills the chosen backend's options
    if ds.config:
        from sftkit.paths import resolve_path

        return {"deepspeed": str(resolve_path(str(ds.config), base_dir))}
    return {"deepspeed": deepspeed_config(ds)}


DEEPSPEED = Backend(
    name="deepspeed", doc="ZeRO: optimizer state, then gradients, then weights sharded by stage",
    sharded=_deepspeed_sharded, training_kwargs=_deepspeed_kwargs, options="deepspeed", shards_saved_weights=True,
    cpu_refusal="accelerate drops DeepSpeed on CPU (use_cpu) or, without use_cpu, counts one process while "
                "DeepSpeed counts all of them",
)


BACKENDS: dict[str, Backend] = {b.name: b for b in (DDP, FSDP_BACKEND, DEEPSPEED)}
DEFAULT = "ddp"


def backend_of(table: Distributed | None) -> Backend:
    """The backend the ``[distributed]`` slice names (``ddp`` without one)."""
    name = str(getattr(table, "strategy", None) or DEFAULT)
    return BACKENDS[name]
