"""What components exchange: canonical records, and the protocols of formatters, strategies and evaluators.

Nothing here imports a heavy library; type names from torch/transformers/datasets are strings.

Canonical records
-----------------
Every input record format (a registered component, ``sftkit_register_formats``; ``sftkit plugins
--all`` lists them) is converted once to one of five *kinds*; later stages only see these:

============== ==============================================================================
kind           columns
============== ==============================================================================
messages       ``messages``: list of ``{"role": system|user|assistant|tool, "content": str}``
text           ``text``: str (raw documents for continued pretraining)
preference     ``prompt``: list of messages (ends with a user turn), ``chosen``: str, ``rejected``: str
labeled        ``prompt``: list of messages, ``completion``: str, ``label``: bool (good answer?)
classification ``text``: str, ``label``: str
============== ==============================================================================

Every kind may also carry ``cluster`` (str, task cluster for held-out evaluation) and ``source``
(str, the name of the ``[[data]]`` entry the row came from).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol, runtime_checkable

from .modeling.source import ModelSource  # noqa: F401  (part of the model-loader contract)
from .records import IGNORE_INDEX, KINDS, RowError  # noqa: F401  (the canonical records, a format's bad row)
from .rewards.base import Reward  # noqa: F401  (the reward contract, sftkit_register_rewards)

if TYPE_CHECKING:  # types only: importing the contract costs nothing
    from transformers import PreTrainedTokenizerBase

    from .config import Config, Tokenization, Training
    from .data.bundle import DataBundle
    from .modeling.precision import Precision
    from .run.distributed import World


class PluginHost(Protocol):
    """What a component may use of the run's plugin host (:class:`sftkit.plugins.Host`): the
    registry of named components and pluggy's plugin manager (``pm.hook.<name>``)."""

    registry: Any
    pm: Any


@dataclass
class SourceContext:
    """Handed to a source factory: where the recipe lives (relative paths resolve against it)."""

    base_dir: Path
    name: str  # the [[data]] entry's display name
    seed: int = 42
    max_rows: int | None = None
    on_error: str = "error"  # "skip": a reader skips bad rows (and counts them) instead of stopping

    def resolve(self, path: str) -> Path:
        """Resolve a recipe path: absolute, relative to the recipe, or ``package://mod/path``."""
        from .paths import resolve_path

        return resolve_path(path, self.base_dir)


@runtime_checkable
class Formatter(Protocol):
    """Turns canonical records into token ids and loss masks, and renders prompts for generation."""

    name: str

    def setup(self, tokenizer: "Any", model: "Any" = None) -> None:
        """Install the chat template (and special tokens, resizing ``model``'s embeddings if needed)."""

    @property
    def chat_template(self) -> str | None:
        """The Jinja chat template saved with the model, so serving renders what training rendered."""

    def encode_messages(self, messages: list[dict], max_length: int | None = None) -> dict:
        """Return ``{"input_ids": [...], "labels": [...]}``: labels are the token ids on assistant
        turns (content and end-of-turn/EOS token) and ``IGNORE_INDEX`` elsewhere."""

    def encode_text(self, text: str, max_length: int | None = None) -> dict:
        """Raw text for continued pretraining: every token trained, EOS appended."""

    def render_prompt(self, messages: list[dict]) -> str:
        """The prompt text for generation (history rendered, assistant turn opened)."""


class Strategy:
    """The Strategy contract: what the run calls, in this order, and a base class a plugin may extend.

    1. the data kinds it trains on (the registration's ``accepts=[...]``, else ``accepts`` here) and
       ``check_data(bundle)``: the loaded data must fit.
    2. ``uses_formatter``: when true the run builds the recipe's ``[template]`` formatter
       (``run.formatter``) before loading the model.
    3. ``load(run) -> (model, tokenizer)``: the base model. The run evaluates it before training
       (``[[eval]]`` tables); ``train`` may call ``load`` again and gets the same objects.
    4. ``train(run) -> TrainResult``: train on ``run.data``, save into ``run.model_dir`` and return
       the trained ``model`` and ``tokenizer`` in the result; the run evaluates that model. A result
       without a model is evaluated from what was saved in ``run.model_dir``; with neither, a run
       with ``[[eval]]`` tables is an error.

    Facts about the data found while training (class balance, dropped rows) go into
    ``run.data_stats`` (written to ``data_stats.json`` and ``metrics.json``).

    ``sftkit preview`` calls an optional ``preview_encode(run, split)`` (``run`` holds the typed recipe,
    data, formatter and tokenizer, no model): the rows of ``split`` exactly as training feeds them,
    each with ``input_ids`` and ``labels`` (-100 where untrained; not a list: no token trained),
    optionally ``target`` (what a head learns), ``source`` and ``rejected_input_ids`` /
    ``rejected_labels`` (a preference pair's rejected side); None: the template tokenization that
    instruction training uses.
    """

    name: str = "strategy"
    accepts: tuple = ("messages",)  # canonical kinds it trains on, when its registration declares no accepts=[...]
    uses_formatter: bool = True

    def __init__(self, options: dict | None = None):
        self.options = dict(options or {})

    def check_data(self, bundle: "Any") -> None:
        """Raise :class:`sftkit.errors.DataError` when ``bundle`` (a DataBundle) cannot be trained on."""

    def load(self, run: "RunContext") -> tuple:
        """The base model and tokenizer. Default: the recipe's ``[model]`` as a causal LM with the
        formatter's chat template installed, loaded once per run."""
        if run.base is not None:
            return run.base
        if run.load_model is None:
            raise TypeError("RunContext.load_model is unset: the run hands strategies its loader of [model]")
        model, tokenizer = run.load_model(run)
        if run.formatter is not None:
            run.formatter.setup(tokenizer, model)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        run.base = (model, tokenizer)
        run.tokenizer = tokenizer
        return model, tokenizer

    def train(self, run: "RunContext") -> "TrainResult":
        """Train on ``run.data``; save the model (or adapter) + tokenizer into ``run.model_dir``."""
        raise NotImplementedError(f"strategy {self.name!r} does not implement train(run)")


class ModelLoader:
    """The model-loader contract (``[model] loader = "NAME"``) and a base class a plugin may extend.

    ``options`` is the ``[model]`` table without ``loader``, defaults filled: ``name``, ``revision``,
    ``tokenizer``, ``trust_remote_code``, ``dtype`` and the loader's own options. ``source`` is the
    only method sftkit calls; everything after it (causal LM or classifier, tokenizer, dtype, the
    tiny model of ``--smoke``, the base of a saved adapter) is loaded by sftkit from what it returns.
    """

    def __init__(self, options: dict | None = None):
        self.options = dict(options or {})

    def source(self, ref: str, base_dir: "Path | None", console: Any = None) -> ModelSource:
        """Where transformers loads ``ref`` (``[model] name``, or its ``tokenizer``) from: usually
        ``ModelSource(ref, "dir", path)`` for a directory written by ``save_pretrained`` (kinds:
        ``"dir"``, ``"hub"`` with ``name`` a hub id, ``"gguf"`` with ``path`` a .gguf file).
        ``base_dir`` is the recipe's directory (relative references resolve against it); ``console``
        prints progress lines. Called several times per run: convert once and cache."""
        raise NotImplementedError(f"{type(self).__name__} does not implement source(ref, base_dir, console)")

    def converted(self, path: "Path | str", fill: Any, *, tag: str = "") -> Path:
        """A directory that ``fill(tmp_dir)`` fills once per content of the file ``path`` (e.g. with
        ``save_pretrained``), kept in sftkit's cache (``sftkit cache`` lists and cleans it): written
        atomically, reused while the file is unchanged. ``tag`` separates conversions of one file."""
        from .modeling.cache import cached_entry, content_digest, write_entry

        path = Path(path)
        digest = content_digest(path, "loader", type(self).__qualname__, tag)
        return cached_entry("models", digest) or write_entry(
            "models", digest, fill, {"source": str(path.resolve()), "kind": type(self).__qualname__})


@dataclass
class TrainResult:
    """What ``Strategy.train`` returns: where the model was saved, the trained model itself (the run
    evaluates it), and training metrics (``train_loss``, ``train_runtime``, ``steps``, ...)."""

    model_dir: Path
    metrics: dict = field(default_factory=dict)
    log_history: list = field(default_factory=list)
    model: Any = None
    tokenizer: Any = None


@dataclass
class EvalResult:
    """What one evaluator reports for one model."""

    metrics: dict  # name -> float
    primary: str  # the metric thresholds apply to
    samples: list = field(default_factory=list)  # e.g. {"prompt", "output", "expected", "score"}
    details: dict = field(default_factory=dict)  # e.g. a confusion matrix
    error: str | None = None  # a scored failure: the evaluator could not run on this model
    # one record per item, in item order (the same order for base and tuned): "score" (the item's share
    # of the primary metric; its (weighted) mean is the primary value), optional "weight", "answer"
    # (the model's answer, for collapse detection), "expected", "options" (number of choices, for
    # chance), "prompt". Intervals, the paired base-vs-tuned test and baselines are computed from these.
    items: list = field(default_factory=list)


@runtime_checkable
class Evaluator(Protocol):
    name: str

    def evaluate(self, target: "Any", run: "RunContext") -> EvalResult:
        """Score ``target`` (a :class:`sftkit.evaluation.Target`: model, tokenizer, formatter,
        ``label`` "base" or "tuned") and return metrics."""


@dataclass
class RunContext:
    """One run: the resolved recipe's typed slices and everything built from it, handed to
    strategies, evaluators and lifecycle hooks. A component reads its own slice (``run.training``,
    ``run.config.adapter``); the recipe as a dict is not reachable from here. Attributes may be
    added in later versions, never removed."""

    config: Config  # the resolved recipe: typed slices, defaults filled (sftkit.config.Config)
    recipe_path: Path | None
    base_dir: Path  # the recipe's directory: its relative paths resolve against it
    run_dir: Path
    host: PluginHost | None = None  # the run's plugin host (sftkit.plugins.Host)
    data: DataBundle | None = None
    formatter: Formatter | None = None
    tokenizer: PreTrainedTokenizerBase | None = None
    smoke: bool = False  # decided by the run (sftkit run --smoke): load the tiny stand-in model
    resume: bool = False
    console: Callable[[str], None] | None = None  # progress lines
    extras: dict = field(default_factory=dict)  # a plugin's own values for the length of the run
    data_stats: dict = field(default_factory=dict)  # a strategy's facts about its data -> data_stats.json
    # the run's loader of ``[model]`` (the smoke stand-in, cache and plugin loaders are decided by the
    # run, not by components): ``load_model(run) -> (model, tokenizer)``; see Strategy.load
    load_model: Callable[[RunContext], tuple] | None = None
    world: World | None = None  # this process's rank among the run's processes, read once by the run
    precision: Precision | None = None  # decided once per run (sftkit.modeling.precision)
    device: str | None = None  # "cuda", "mps" or "cpu": decided once per run (sftkit.run.devices)
    # numbers a plugin keeps with the run: plugin_metrics["my-plugin"] = {...}; written to metrics.json
    # under "plugins", so report sections and health findings computed from metrics re-render the
    # same with `sftkit report` (set them before the report: in run_start, a component or an evaluator)
    plugin_metrics: dict = field(default_factory=dict)
    step: int = 0  # the optimizer step training reached (the trainer keeps it; a stopped run names it)
    parameters: dict | None = None  # {"trainable": n, "total": n} once the model is set up for training
    step_seconds: list = field(default_factory=list)  # seconds per optimizer step, in order
    token_counter: Any = None  # the tokens of the batches trained (sftkit.strategies.collate.TokenCounter)
    base: tuple | None = None  # (model, tokenizer) of the base model once Strategy.load loaded it
    frozen: dict | None = None  # what [freeze] (or a strategy's own freezing) left trainable
    evaluators: list | None = None  # the [[eval]] tables with their evaluators, created once per run
    train_index: Any = None  # the training rows indexed for contamination checks, built once per run

    @property
    def model_dir(self) -> Path:
        return self.run_dir / "model"

    @property
    def training(self) -> Training:
        """``[training]`` (sftkit.config.Training: typed, defaults filled)."""
        return self.config.training

    @property
    def seed(self) -> int:
        """The recipe's seed."""
        return self.config.seed

    @property
    def tokenization(self) -> Tokenization:
        """How training rows become token ids, as the run decides it from ``[training] max_length``
        and ``[dataset]`` (sftkit.config.Tokenization)."""
        from .config import Tokenization

        return Tokenization.of_config(self.config)
