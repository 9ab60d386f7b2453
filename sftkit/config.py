"""The resolved recipe as frozen, typed slices: one class per table, built after validation.

``resolve(data)`` turns a checked recipe dict into a :class:`Config`. Each field's default is the
JSON Schema's (:mod:`sftkit.core_schema`), read from there, so a default is declared once;
``tests/test_config.py`` proves every schema key is a field and every field a schema key.

The run hands each stage its own slice (``config.training`` to the trainer, ``config.data`` and
``config.dataset`` to the data loader); a value a stage needs from another table is passed
explicitly. Slices are read by attribute only (``slice.max_length``): they are not mappings, so no
reader can fall back to the dict the recipe was read from.

Component tables (``[[data]]``, ``[template]``, ``[strategy]``, ``[[eval]]``, ``[[reward]]``) split into the keys
sftkit handles and ``options``: what the component's factory receives (:func:`factory_options`,
the one rule for that split). Light: imports nothing heavy.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, cast

from . import core_schema as S


def _default(props: dict, name: str):
    """A dataclass field whose default is the schema's (None where the schema has none)."""
    value = props[name].get("default")
    if isinstance(value, (list, dict)):
        return field(default_factory=functools.partial(copy.deepcopy, value))
    return field(default=value)


class Slice:
    """A typed table, read by attribute; built from the checked table by :meth:`of`."""

    @classmethod
    def _names(cls) -> tuple:
        return tuple(f.name for f in fields(cast(Any, cls)))  # every subclass is a dataclass

    @classmethod
    def of(cls, table: Mapping | None):
        """Build from a table, ignoring keys that are not fields (the schema already refused them)."""
        table = dict(table or {})
        names = set(cls._names())
        known = {k: copy.deepcopy(v) for k, v in table.items() if k in names and k != "options"}
        if "options" in names:
            known["options"] = {k: copy.deepcopy(v) for k, v in table.items() if k not in names or k == "options"}
        return cls(**known)

    def as_dict(self) -> dict:
        """The table as a plain dict (keys with a value; component options merged back), for what
        is written or hashed: never read back as the recipe."""
        out = {}
        for name in self._names():
            value = getattr(self, name)
            if name == "options" or value is None:
                continue
            out[name] = value.as_dict() if isinstance(value, Slice) else copy.deepcopy(value)
        options = getattr(self, "options", None)
        if isinstance(options, dict) and "options" in self._names():
            out.update({k: copy.deepcopy(v) for k, v in options.items() if k not in out})
        return out


_R = S.RECIPE_SECTION["properties"]
_M = S.MODEL_SECTION["properties"]
_DS = S.DATASET_SECTION["properties"]
_T = S.TRAINING_SECTION["properties"]
_A = S.ADAPTER_SECTION["properties"]
_F = S.FREEZE_SECTION["properties"]
_O = S.OUTPUT_SECTION["properties"]
_D = S.DISTRIBUTED_SECTION["properties"]
_FS = _D["fsdp"]["properties"]
_DP = _D["deepspeed"]["properties"]
_V = S.VERDICT_SECTION["properties"]
_P = S.PLAN_SECTION["properties"]
_B = S.BASELINE_ITEM["properties"]


@dataclass(frozen=True)
class RecipeInfo(Slice):
    """``[recipe]``."""

    name: str | None = _default(_R, "name")
    description: str | None = _default(_R, "description")
    seed: int = _default(_R, "seed")
    requires: list | None = _default(_R, "requires")
    extends: str | None = _default(_R, "extends")
    after: list | None = _default(_R, "after")


@dataclass(frozen=True)
class Model(Slice):
    """``[model]``: what the load-model stage loads, and the ``loader`` component's own ``options``."""

    name: str | None = _default(_M, "name")
    revision: str | None = _default(_M, "revision")
    tokenizer: str | None = _default(_M, "tokenizer")
    trust_remote_code: bool = _default(_M, "trust_remote_code")
    dtype: str = _default(_M, "dtype")
    loader: str = _default(_M, "loader")
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class DataEntry(Slice):
    """One ``[[data]]`` entry: the keys sftkit handles, and the source's ``options``."""

    source: str | None = _default(S.DATA_COMMON, "source")
    name: str | None = _default(S.DATA_COMMON, "name")
    format: str = _default(S.DATA_COMMON, "format")
    split: str = _default(S.DATA_COMMON, "split")
    weight: float = _default(S.DATA_COMMON, "weight")
    max_rows: int | None = _default(S.DATA_COMMON, "max_rows")
    columns: dict | None = _default(S.DATA_COMMON, "columns")
    cluster_column: str | None = _default(S.DATA_COMMON, "cluster_column")
    cluster: str | None = _default(S.DATA_COMMON, "cluster")
    on_error: str = _default(S.DATA_COMMON, "on_error")
    transforms: list | None = _default(S.DATA_COMMON, "transforms")
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Dataset(Slice):
    """``[dataset]``: how the entries are combined, split and filtered."""

    eval_fraction: float = _default(_DS, "eval_fraction")
    holdout_clusters: list | None = _default(_DS, "holdout_clusters")
    dedupe: bool = _default(_DS, "dedupe")
    shuffle: bool = _default(_DS, "shuffle")
    truncation: str = _default(_DS, "truncation")
    min_trained_tokens: int = _default(_DS, "min_trained_tokens")


@dataclass(frozen=True)
class Template(Slice):
    """``[template]``: the formatter's name and its options (``system`` is one of them)."""

    formatter: str = _default(S.TEMPLATE_COMMON, "formatter")
    system: str | None = _default(S.TEMPLATE_COMMON, "system")
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class StrategyTable(Slice):
    """``[strategy]``: the strategy's name and its options."""

    name: str | None = _default(S.STRATEGY_COMMON, "name")
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Training(Slice):
    """``[training]``: hyperparameters, named as in transformers' TrainingArguments."""

    max_steps: int | None = _default(_T, "max_steps")
    num_train_epochs: float = _default(_T, "num_train_epochs")
    per_device_train_batch_size: int = _default(_T, "per_device_train_batch_size")
    per_device_eval_batch_size: int | None = _default(_T, "per_device_eval_batch_size")
    gradient_accumulation_steps: int = _default(_T, "gradient_accumulation_steps")
    learning_rate: float = _default(_T, "learning_rate")
    warmup_ratio: float = _default(_T, "warmup_ratio")
    warmup_steps: int | None = _default(_T, "warmup_steps")
    lr_scheduler_type: str = _default(_T, "lr_scheduler_type")
    weight_decay: float = _default(_T, "weight_decay")
    max_grad_norm: float = _default(_T, "max_grad_norm")
    max_length: int = _default(_T, "max_length")
    packing: bool | None = _default(_T, "packing")
    group_by_length: bool = _default(_T, "group_by_length")
    gradient_checkpointing: bool = _default(_T, "gradient_checkpointing")
    logging_steps: int = _default(_T, "logging_steps")
    eval_steps: int | None = _default(_T, "eval_steps")
    eval_strategy: str | None = _default(_T, "eval_strategy")
    eval_max_rows: int | None = _default(_T, "eval_max_rows")
    device: str = _default(_T, "device")
    threads: int | None = _default(_T, "threads")
    report_to: list = _default(_T, "report_to")
    save_steps: int | None = _default(_T, "save_steps")
    save_total_limit: int = _default(_T, "save_total_limit")
    best_metric: str | None = _default(_T, "best_metric")
    greater_is_better: bool | None = _default(_T, "greater_is_better")
    optim: str = _default(_T, "optim")
    seed: int | None = _default(_T, "seed")
    precision: str = _default(_T, "precision")
    bf16: bool | None = _default(_T, "bf16")
    fp16: bool | None = _default(_T, "fp16")
    chunked_loss: bool = _default(_T, "chunked_loss")
    compile: bool = _default(_T, "compile")

    @property
    def per_step_rows(self) -> int:
        """Rows per optimizer step in one process (batch size x gradient accumulation)."""
        return int(self.per_device_train_batch_size) * int(self.gradient_accumulation_steps)


@dataclass(frozen=True)
class Adapter(Slice):
    """``[adapter]`` (present: train a LoRA adapter instead of all weights; ``kind = "qlora"``: on a
    4-bit base)."""

    kind: str = _default(_A, "kind")
    r: int = _default(_A, "r")
    alpha: float = _default(_A, "alpha")
    dropout: float = _default(_A, "dropout")
    target_modules: Any = _default(_A, "target_modules")
    merge: bool = _default(_A, "merge")
    double_quant: bool = _default(_A, "double_quant")

    @property
    def quantized(self) -> bool:
        """Whether the base is held in 4-bit (QLoRA)."""
        return self.kind == "qlora"


@dataclass(frozen=True)
class Freeze(Slice):
    """``[freeze]`` (present: freeze parts of the model)."""

    layers: str | None = _default(_F, "layers")
    train_last_layers: int | None = _default(_F, "train_last_layers")
    patterns: list | None = _default(_F, "patterns")
    embeddings: bool | None = _default(_F, "embeddings")

    @property
    def given(self) -> bool:
        """Whether the table sets anything (an empty ``[freeze]`` freezes nothing)."""
        return any(getattr(self, name) is not None for name in self._names())


@dataclass(frozen=True)
class EvalEntry(Slice):
    """One ``[[eval]]`` table: label and gates (sftkit's), and the evaluator's ``options``."""

    name: str | None = _default(S.EVAL_COMMON, "name")
    label: str | None = _default(S.EVAL_COMMON, "label")
    min: float | None = _default(S.EVAL_COMMON, "min")
    max: float | None = _default(S.EVAL_COMMON, "max")
    max_regression: float | None = _default(S.EVAL_COMMON, "max_regression")
    max_contamination: float | None = _default(S.EVAL_COMMON, "max_contamination")
    gate_on: str = _default(S.EVAL_COMMON, "gate_on")
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RewardSpec(Slice):
    """One ``[[reward]]`` table: the reward's ``name``, ``weight`` and ``label`` (sftkit's), and its
    ``options``. What :func:`sftkit.rewards.build_rewards` builds."""

    name: str | None = _default(S.REWARD_COMMON, "name")
    weight: float = _default(S.REWARD_COMMON, "weight")
    options: dict = field(default_factory=dict)
    label: str | None = _default(S.REWARD_COMMON, "label")


@dataclass(frozen=True)
class Output(Slice):
    """``[output]``."""

    dir: str = _default(_O, "dir")
    save_model: bool = _default(_O, "save_model")
    report: bool = _default(_O, "report")
    keep_checkpoints: bool = _default(_O, "keep_checkpoints")


@dataclass(frozen=True)
class FSDP(Slice):
    """``[distributed.fsdp]``."""

    version: int = _default(_FS, "version")
    sharding: str = _default(_FS, "sharding")
    cpu_offload: bool = _default(_FS, "cpu_offload")
    wrap_layers: list | None = _default(_FS, "wrap_layers")
    activation_checkpointing: bool = _default(_FS, "activation_checkpointing")


@dataclass(frozen=True)
class DeepSpeed(Slice):
    """``[distributed.deepspeed]``."""

    stage: int = _default(_DP, "stage")
    offload_optimizer: bool = _default(_DP, "offload_optimizer")
    offload_params: bool = _default(_DP, "offload_params")
    config: str | None = _default(_DP, "config")


@dataclass(frozen=True)
class Distributed(Slice):
    """``[distributed]``."""

    strategy: str = _default(_D, "strategy")
    timeout_minutes: int = _default(_D, "timeout_minutes")
    find_unused_parameters: bool = _default(_D, "find_unused_parameters")
    fsdp: FSDP | None = None
    deepspeed: DeepSpeed | None = None

    def __post_init__(self):
        """The chosen backend's options slice is always there (its defaults when the table is absent)."""
        from .backends import BACKENDS

        backend = BACKENDS.get(str(self.strategy))
        if backend is not None and backend.options and getattr(self, backend.options) is None:
            object.__setattr__(self, backend.options, _BACKEND_OPTIONS[backend.options]())

    @classmethod
    def of(cls, table):
        table = dict(table or {})
        sub = {k: _BACKEND_OPTIONS[k].of(table[k]) for k in _BACKEND_OPTIONS if isinstance(table.get(k), Mapping)}
        return cls(**{k: v for k, v in table.items() if k in cls._names() and k not in sub}, **sub)


_BACKEND_OPTIONS: dict[str, type[Slice]] = {"fsdp": FSDP, "deepspeed": DeepSpeed}  # [distributed.NAME] slices


@dataclass(frozen=True)
class Verdict(Slice):
    """``[verdict]``."""

    alpha: float = _default(_V, "alpha")
    collapse_share: float = _default(_V, "collapse_share")


@dataclass(frozen=True)
class Plan(Slice):
    """``[plan]``."""

    max_hours: float | None = _default(_P, "max_hours")
    max_memory_gb: float | None = _default(_P, "max_memory_gb")


@dataclass(frozen=True)
class Baseline(Slice):
    """One ``[[baseline]]`` table: a prompt-only baseline (the base model prompted, not trained)."""

    kind: str | None = _default(_B, "kind")
    label: str | None = _default(_B, "label")
    system: str | None = _default(_B, "system")
    k: int = _default(_B, "k")
    seed: int | None = _default(_B, "seed")


# table -> slice class (arrays of tables: the class of one entry)
SLICES = {"recipe": RecipeInfo, "model": Model, "data": DataEntry, "dataset": Dataset, "template": Template,
          "strategy": StrategyTable, "training": Training, "adapter": Adapter, "freeze": Freeze,
          "eval": EvalEntry, "reward": RewardSpec, "baseline": Baseline, "output": Output, "distributed": Distributed, "verdict": Verdict,
          "plan": Plan}


@dataclass(frozen=True)
class Config:
    """A resolved recipe: one typed slice per table. ``adapter`` and ``freeze`` are None when the
    recipe has no such table; array tables are tuples."""

    recipe: RecipeInfo
    model: Model
    data: tuple
    dataset: Dataset
    template: Template
    strategy: StrategyTable
    training: Training
    adapter: Adapter | None
    freeze: Freeze | None
    eval: tuple
    rewards: tuple  # [[reward]] tables: RewardSpec entries
    baseline: tuple
    output: Output
    distributed: Distributed
    verdict: Verdict
    plan: Plan

    @property
    def seed(self) -> int:
        """The recipe's seed (data splits, shuffling; training unless ``[training] seed``)."""
        return int(self.recipe.seed)

    @property
    def name(self) -> str:
        return str(self.recipe.name or "recipe")


def resolve(data: Mapping) -> Config:
    """The typed slices of a (checked) recipe dict; tables it lacks get their defaults."""
    data = dict(data or {})

    def one(table):
        value = data.get(table)
        return SLICES[table].of(value if isinstance(value, Mapping) else None)

    def many(table):
        return tuple(SLICES[table].of(t) for t in (data.get(table) or []) if isinstance(t, Mapping))

    def optional(table):
        return one(table) if isinstance(data.get(table), Mapping) else None

    return Config(recipe=one("recipe"), model=one("model"), data=many("data"), dataset=one("dataset"),
                  template=one("template"), strategy=one("strategy"), training=one("training"),
                  adapter=optional("adapter"), freeze=optional("freeze"), eval=many("eval"), rewards=many("reward"),
                  baseline=many("baseline"),
                  output=one("output"), distributed=one("distributed"), verdict=one("verdict"),
                  plan=one("plan"))


@dataclass(frozen=True)
class Tokenization:
    """What tokenizing training rows needs, from two tables (passed to the train stage by the run):
    ``[training] max_length`` and ``[dataset] truncation`` / ``min_trained_tokens``."""

    max_length: int
    truncation: str
    min_trained_tokens: int

    @classmethod
    def of_config(cls, config: Config) -> "Tokenization":
        return cls(max_length=int(config.training.max_length), truncation=str(config.dataset.truncation),
                   min_trained_tokens=int(config.dataset.min_trained_tokens))


def of_run(run: Any) -> Config:
    """The typed recipe of a run context (``run.config``; an empty recipe's for a stand-in without one)."""
    config = getattr(run, "config", None)
    return config if isinstance(config, Config) else resolve({})


# common keys the factory receives too: ``[template] system`` is the formatter's option as well, and
# a model loader gets the whole ``[model]`` table but its own name
FACTORY_SHARES = {"template": ("system",), "model": tuple(k for k in _M if k != "loader")}


def factory_options(table: str, item: Mapping) -> dict:
    """What the factory of a component table receives: the table minus the keys sftkit handles
    (``core_schema.COMPONENT_TABLES``' common keys), except those in :data:`FACTORY_SHARES`.
    The one rule for ``[[data]]``, ``[template]``, ``[strategy]``, ``[[eval]]`` and ``[[reward]]``."""
    _kind, _key, common, _default_name = S.COMPONENT_TABLES[table]
    drop = set(common) - set(FACTORY_SHARES.get(table, ()))
    values = item.as_dict() if isinstance(item, Slice) else dict(item or {})  # a slice, or a table being checked
    return {k: copy.deepcopy(v) for k, v in values.items() if k not in drop}


def saved_config(run_dir: Path | str | None) -> Config:
    """The typed slices of the recipe a run saved (``recipe.toml``, written by
    :func:`sftkit.run.outputs.write_recipe`):
    what a finished run directory's readers (report, model card, export) know of its recipe. A
    missing or unreadable file gives the defaults."""
    import tomllib

    path = Path(run_dir) / "recipe.toml" if run_dir else None
    try:
        saved = tomllib.loads(path.read_text(encoding="utf-8")) if path and path.is_file() else {}
    except (OSError, ValueError):
        saved = {}
    try:
        return resolve(saved)
    except (TypeError, ValueError):  # hand-edited into something no run wrote
        return resolve({})
