"""The resolved recipe as frozen, typed slices: one class per table, built after validation.

``resolve(data)`` turns a checked recipe dict into a :class:`Config`. A default is declared once, in
the JSON Schema (:mod:`sftkit.core_schema` and the components' option schemas), and filled by one
function, :func:`fill`: :func:`sftkit.schema.fill_defaults` fills the recipe dict with it (what
``recipe.toml`` holds and what is hashed), and the slices are built from that dict; a slice fills
with it only what the dict does not hold (a table the recipe leaves out that ``recipe.toml`` never
carries, such as ``[verdict]``; a slice built in code, ``Training()``). A field's default in code
is :data:`FROM_SCHEMA`, never a value. ``tests/test_config.py`` proves every schema key is a field
with the schema's default and every field a schema key.

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
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, cast

from . import core_schema as S


def fill(schema: dict, value: Any) -> Any:
    """Fill the table ``value`` in place with the defaults ``schema`` declares for its absent keys,
    and so on into the nested tables it has; returns it. The one function that fills defaults: the
    recipe dict (:func:`sftkit.schema.fill_defaults`), a component's options and a slice's fields."""
    if not isinstance(value, dict) or not isinstance(schema, dict):
        return value
    for key, sub in schema.get("properties", {}).items():
        if key not in value and isinstance(sub, dict) and "default" in sub:
            value[key] = copy.deepcopy(sub["default"])
        elif key in value and isinstance(sub, dict) and sub.get("type") == "object":
            fill(sub, value[key])
    return value


class _FromSchema:
    def __repr__(self) -> str:
        return "FROM_SCHEMA"


# a field's default: the schema's default for that key (None where it has none), given by :func:`fill`
FROM_SCHEMA: Any = _FromSchema()


class Slice:
    """A typed table, read by attribute; built from the checked table by :meth:`of`. Fields left at
    :data:`FROM_SCHEMA` get the schema's default (``_props``: the table's keys in the schema) from
    :func:`fill` when the slice is built."""

    _props: ClassVar[dict] = {}

    def __post_init__(self) -> None:
        unset = [f.name for f in fields(cast(Any, self)) if getattr(self, f.name) is FROM_SCHEMA]
        if unset:
            defaults = fill({"properties": self._props}, {})
            for name in unset:
                object.__setattr__(self, name, defaults.get(name))

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

    _props = _R

    name: str | None = FROM_SCHEMA
    description: str | None = FROM_SCHEMA
    seed: int = FROM_SCHEMA
    requires: list | None = FROM_SCHEMA
    extends: str | None = FROM_SCHEMA
    after: list | None = FROM_SCHEMA


@dataclass(frozen=True)
class Model(Slice):
    """``[model]``: what the load-model stage loads, and the ``loader`` component's own ``options``."""

    _props = _M

    name: str | None = FROM_SCHEMA
    revision: str | None = FROM_SCHEMA
    tokenizer: str | None = FROM_SCHEMA
    trust_remote_code: bool = FROM_SCHEMA
    dtype: str = FROM_SCHEMA
    loader: str = FROM_SCHEMA
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class DataEntry(Slice):
    """One ``[[data]]`` entry: the keys sftkit handles, and the source's ``options``."""

    _props = S.DATA_COMMON

    source: str | None = FROM_SCHEMA
    name: str | None = FROM_SCHEMA
    format: str = FROM_SCHEMA
    split: str = FROM_SCHEMA
    weight: float = FROM_SCHEMA
    max_rows: int | None = FROM_SCHEMA
    columns: dict | None = FROM_SCHEMA
    cluster_column: str | None = FROM_SCHEMA
    cluster: str | None = FROM_SCHEMA
    on_error: str = FROM_SCHEMA
    transforms: list | None = FROM_SCHEMA
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Dataset(Slice):
    """``[dataset]``: how the entries are combined, split and filtered."""

    _props = _DS

    eval_fraction: float = FROM_SCHEMA
    holdout_clusters: list | None = FROM_SCHEMA
    dedupe: bool = FROM_SCHEMA
    shuffle: bool = FROM_SCHEMA
    truncation: str = FROM_SCHEMA
    min_trained_tokens: int = FROM_SCHEMA


@dataclass(frozen=True)
class Template(Slice):
    """``[template]``: the formatter's name and its options (``system`` is one of them)."""

    _props = S.TEMPLATE_COMMON

    formatter: str = FROM_SCHEMA
    system: str | None = FROM_SCHEMA
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class StrategyTable(Slice):
    """``[strategy]``: the strategy's name and its options."""

    _props = S.STRATEGY_COMMON

    name: str | None = FROM_SCHEMA
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Training(Slice):
    """``[training]``: hyperparameters, named as in transformers' TrainingArguments."""

    _props = _T

    max_steps: int | None = FROM_SCHEMA
    num_train_epochs: float = FROM_SCHEMA
    per_device_train_batch_size: int = FROM_SCHEMA
    per_device_eval_batch_size: int | None = FROM_SCHEMA
    gradient_accumulation_steps: int = FROM_SCHEMA
    learning_rate: float = FROM_SCHEMA
    warmup_ratio: float = FROM_SCHEMA
    warmup_steps: int | None = FROM_SCHEMA
    lr_scheduler_type: str = FROM_SCHEMA
    weight_decay: float = FROM_SCHEMA
    max_grad_norm: float = FROM_SCHEMA
    max_length: int = FROM_SCHEMA
    packing: bool | None = FROM_SCHEMA
    group_by_length: bool = FROM_SCHEMA
    gradient_checkpointing: bool = FROM_SCHEMA
    logging_steps: int = FROM_SCHEMA
    eval_steps: int | None = FROM_SCHEMA
    eval_strategy: str | None = FROM_SCHEMA
    eval_max_rows: int | None = FROM_SCHEMA
    device: str = FROM_SCHEMA
    threads: int | None = FROM_SCHEMA
    report_to: list = FROM_SCHEMA
    save_steps: int | None = FROM_SCHEMA
    save_total_limit: int = FROM_SCHEMA
    best_metric: str | None = FROM_SCHEMA
    greater_is_better: bool | None = FROM_SCHEMA
    optim: str = FROM_SCHEMA
    seed: int | None = FROM_SCHEMA
    precision: str = FROM_SCHEMA
    bf16: bool | None = FROM_SCHEMA
    fp16: bool | None = FROM_SCHEMA
    chunked_loss: bool = FROM_SCHEMA
    compile: bool = FROM_SCHEMA

    @property
    def per_step_rows(self) -> int:
        """Rows per optimizer step in one process (batch size x gradient accumulation)."""
        return int(self.per_device_train_batch_size) * int(self.gradient_accumulation_steps)


@dataclass(frozen=True)
class Adapter(Slice):
    """``[adapter]`` (present: train a LoRA adapter instead of all weights; ``kind = "qlora"``: on a
    4-bit base)."""

    _props = _A

    kind: str = FROM_SCHEMA
    r: int = FROM_SCHEMA
    alpha: float = FROM_SCHEMA
    dropout: float = FROM_SCHEMA
    target_modules: Any = FROM_SCHEMA
    merge: bool = FROM_SCHEMA
    double_quant: bool = FROM_SCHEMA

    @property
    def quantized(self) -> bool:
        """Whether the base is held in 4-bit (QLoRA)."""
        return self.kind == "qlora"


@dataclass(frozen=True)
class Freeze(Slice):
    """``[freeze]`` (present: freeze parts of the model)."""

    _props = _F

    layers: str | None = FROM_SCHEMA
    train_last_layers: int | None = FROM_SCHEMA
    patterns: list | None = FROM_SCHEMA
    embeddings: bool | None = FROM_SCHEMA

    @property
    def given(self) -> bool:
        """Whether the table sets anything (an empty ``[freeze]`` freezes nothing)."""
        return any(getattr(self, name) is not None for name in self._names())


@dataclass(frozen=True)
class EvalEntry(Slice):
    """One ``[[eval]]`` table: label and gates (sftkit's), and the evaluator's ``options``."""

    _props = S.EVAL_COMMON

    name: str | None = FROM_SCHEMA
    label: str | None = FROM_SCHEMA
    min: float | None = FROM_SCHEMA
    max: float | None = FROM_SCHEMA
    max_regression: float | None = FROM_SCHEMA
    max_contamination: float | None = FROM_SCHEMA
    gate_on: str = FROM_SCHEMA
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RewardSpec(Slice):
    """One ``[[reward]]`` table: the reward's ``name``, ``weight`` and ``label`` (sftkit's), and its
    ``options``. What :func:`sftkit.rewards.build_rewards` builds."""

    _props = S.REWARD_COMMON

    name: str | None = FROM_SCHEMA
    weight: float = FROM_SCHEMA
    options: dict = field(default_factory=dict)
    label: str | None = FROM_SCHEMA


@dataclass(frozen=True)
class Output(Slice):
    """``[output]``."""

    _props = _O

    dir: str = FROM_SCHEMA
    save_model: bool = FROM_SCHEMA
    report: bool = FROM_SCHEMA
    keep_checkpoints: bool = FROM_SCHEMA


@dataclass(frozen=True)
class FSDP(Slice):
    """``[distributed.fsdp]``."""

    _props = _FS

    version: int = FROM_SCHEMA
    sharding: str = FROM_SCHEMA
    cpu_offload: bool = FROM_SCHEMA
    wrap_layers: list | None = FROM_SCHEMA
    activation_checkpointing: bool = FROM_SCHEMA


@dataclass(frozen=True)
class DeepSpeed(Slice):
    """``[distributed.deepspeed]``."""

    _props = _DP

    stage: int = FROM_SCHEMA
    offload_optimizer: bool = FROM_SCHEMA
    offload_params: bool = FROM_SCHEMA
    config: str | None = FROM_SCHEMA


@dataclass(frozen=True)
class Distributed(Slice):
    """``[distributed]``."""

    _props = _D

    strategy: str = FROM_SCHEMA
    timeout_minutes: int = FROM_SCHEMA
    find_unused_parameters: bool = FROM_SCHEMA
    fsdp: FSDP | None = None
    deepspeed: DeepSpeed | None = None

    def __post_init__(self):
        """The chosen backend's options slice is always there (its defaults when the table is absent)."""
        super().__post_init__()
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

    _props = _V

    alpha: float = FROM_SCHEMA
    collapse_share: float = FROM_SCHEMA


@dataclass(frozen=True)
class Plan(Slice):
    """``[plan]``."""

    _props = _P

    max_hours: float | None = FROM_SCHEMA
    max_memory_gb: float | None = FROM_SCHEMA


@dataclass(frozen=True)
class Baseline(Slice):
    """One ``[[baseline]]`` table: a prompt-only baseline (the base model prompted, not trained)."""

    _props = _B

    kind: str | None = FROM_SCHEMA
    label: str | None = FROM_SCHEMA
    system: str | None = FROM_SCHEMA
    k: int = FROM_SCHEMA
    seed: int | None = FROM_SCHEMA


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
