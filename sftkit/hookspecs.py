"""The plugin contract. Every hook sftkit calls is declared here; each docstring is its reference.

A plugin is any object or module with functions decorated ``@sftkit.hookimpl`` whose names match a
spec below (misspelled names are rejected when the plugin is loaded). Third-party plugins are found
through the ``sftkit`` entry-point group::

    [project.entry-points.sftkit]
    medical = "sftkit_medical.plugin"

Registration hooks receive a ``register`` callback. Components are named, and a recipe picks them by
name, so every plugin may register several components and none "wins" a call::

    @sftkit.hookimpl
    def sftkit_register_sources(register):
        register("pubmed", "sftkit_medical.sources:load_pubmed",
                 schema={"type": "object", "properties": {"year": {"type": "integer"}}},
                 doc="PubMed abstracts from a local dump.")

``register(name, factory, *, schema=None, doc="", check=None, **meta)``:

- ``factory``: the component itself, or a lazy ``"package.module:attr"`` string imported only
  when a recipe uses the component, so listing plugins and validating recipes stay light.
- ``schema``: a JSON Schema (``type: object``) for the component's own options, the keys that sit
  beside its name in the recipe table. Unknown keys are errors unless the schema allows them.
- ``check``: optional ``"module:attr"`` (or callable) run by ``sftkit validate`` with
  ``(options, ctx)`` returning a list of ``sftkit.errors.Problem``: cross-field rules that need no
  heavy import. ``options`` are exactly what the factory receives (defaults filled);
  ``ctx`` is a :class:`sftkit.validate.CheckContext`. A problem's ``path`` is relative to the
  table (``"pattern"`` is reported as ``eval[1].pattern`` with its line); start it with ``/`` for
  a path elsewhere in the recipe. Each table's check runs unless that table has schema problems.
  It must not import torch, transformers, trl, datasets or peft.
- ``meta``: facts other stages read: a strategy's ``accepts=[kinds]``, a source's ``emits="kind"``
  (the canonical kind of the records it always gives, so ``sftkit validate`` catches a
  source/strategy mismatch without reading data). Both are checked when registered.

A plugin whose registration hook raises, or registers an invalid schema or name, is removed
entirely (see "When a plugin breaks" on docs/plugins.md). A name two plugins register is disabled
for both; each stays reachable as ``"plugin:name"``. A plugin's name that is a built-in's
leaves the bare name to the built-in; the plugin's stays reachable as ``"plugin:name"``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import pluggy

if TYPE_CHECKING:  # real types for readers and type checkers, at no import cost (pytest's hookspec.py does the same)
    import click
    from transformers import TrainerCallback

    from .api import RunContext

hookspec = pluggy.HookspecMarker("sftkit")

Register = Callable[..., None]
Finding = dict  # {"level": "error" | "warning" | "info", "code", "title", "detail", "fix"}


@hookspec
def sftkit_register_sources(register: Register) -> None:
    """Register data sources, used in ``[[data]]`` tables as ``source = "NAME"``.

    The factory is called as ``factory(options, ctx)`` with the table's options (common keys like
    ``format``, ``split`` and ``weight`` removed) and a :class:`sftkit.api.SourceContext`, and
    returns a ``datasets.Dataset`` of raw rows (or an iterable of dicts). sftkit converts the rows
    to canonical records afterwards, so a source only reads.
    """


@hookspec
def sftkit_register_formats(register: Register) -> None:
    """Register input record formats, used in ``[[data]]`` tables as ``format = "NAME"`` (or picked
    by ``format = "auto"``).

    ``register(name, convert, *, emits, fields, optional=(), detect=None, match=None, doc="")``.
    ``convert(row)`` turns one raw row (a dict, the entry's ``columns`` renames applied) into one
    canonical record of kind ``emits`` (see :mod:`sftkit.api`); for a bad row it raises
    :class:`sftkit.api.RowError` (reported with the row's location, or counted and skipped under
    ``on_error = "skip"``). Any other exception, or a record of the wrong shape, stops the run with
    one line naming the format and its plugin. ``fields``: what a row needs (each a name, or a list
    of alternative names), checked before converting; ``optional``: fields it reads too (a row's
    other fields are kept for strategies registered with ``row_fields``). ``detect``: a number lets
    ``format = "auto"`` pick it, trying formats from the highest down, sftkit's own first (installing
    a plugin never changes how other data is read), and taking the first whose ``fields`` a row has,
    or whose ``match(columns, first_row) -> bool`` says so (``first_row`` is None when only the names
    are known); None (the default): only when named. ``convert`` and ``match`` may be lazy
    ``"module:attr"`` strings; ``sftkit validate`` reads the declaration and calls ``match``, so keep
    ``match`` light.
    """


@hookspec
def sftkit_register_formatters(register: Register) -> None:
    """Register template formatters, used as ``[template] formatter = "NAME"``.

    The factory is called as ``factory(options)`` and returns a :class:`sftkit.api.Formatter`: the
    object that turns canonical records into token ids and loss masks and renders prompts for
    generation.
    """


@hookspec
def sftkit_register_strategies(register: Register) -> None:
    """Register training strategies, used as ``[strategy] name = "NAME"``.

    The factory is called as ``factory(options)`` and returns a :class:`sftkit.api.Strategy`
    (extend that class: the run calls ``check_data``, ``load`` for the base model it evaluates, and
    ``train``, whose result carries the trained model it evaluates). Pass ``accepts=[...]``
    (canonical data kinds) in ``meta`` so ``sftkit validate`` can tell when the data does not fit
    the strategy, ``data_hint="..."`` to tell the user what data it needs, ``rewards=True`` when it
    trains on the recipe's ``[[reward]]`` tables (``sftkit validate`` then requires one, and refuses
    them for every other strategy; the strategy builds them with :func:`sftkit.rewards.build_rewards`
    and checks its rows' columns with :func:`sftkit.rewards.check_columns`), ``row_fields=True`` when
    it reads each row's other columns (kept as JSON in a ``fields`` column,
    :func:`sftkit.records.row_fields` unpacks them), and optionally
    ``starter={"model": ..., "rows": [...], "template": bool, "rewards": [...]}``: what ``sftkit init
    --strategy NAME`` writes (default: a small causal model and example rows of the first accepted
    kind, with a ``[template]`` table; ``rewards``: its ``[[reward]]`` tables).
    """


@hookspec
def sftkit_register_evaluators(register: Register) -> None:
    """Register evaluators, used in ``[[eval]]`` tables as ``name = "NAME"``.

    The factory is called as ``factory(options)`` and returns a :class:`sftkit.api.Evaluator`,
    run on the base and on the tuned model. Thresholds (``min``, ``max``, ``max_regression``) are
    handled by sftkit for every evaluator; the schema only describes the evaluator's own options.
    """


@hookspec
def sftkit_register_rewards(register: Register) -> None:
    """Register rewards, used in ``[[reward]]`` tables as ``name = "NAME"`` by RL strategies
    (``[strategy] name = "reasoning"``).

    The factory is called as ``factory(options)`` with the table's own options (``name``,
    ``weight`` and ``label`` removed, schema defaults filled, file options resolved against the
    recipe) and returns a :class:`sftkit.api.Reward`. Its ``score(prompts, completions, rows,
    step)`` returns one float per completion, or None where the reward does not apply to that row:
    ``prompts[i]`` is the conversation (list of ``{"role", "content"}``) completion i answered,
    ``rows[i]`` the data row it came from (all its columns), ``step`` the optimizer step. The
    strategy sums ``weight * score`` over the rewards. Pass ``reads=[...]`` in ``meta``: the row
    columns it needs (a column name, or a list of alternative names; or a callable
    ``reads(options) -> list``), so a run whose data lacks one stops before training. A reward that
    raises, or returns NaN, inf, a non-number or the wrong number of scores, stops the run with one
    line naming it and its plugin.
    """


@hookspec
def sftkit_register_transforms(register: Register) -> None:
    """Register record transforms, used in ``[[data]]`` tables as ``transforms = ["NAME", ...]`` (or
    ``{name = "NAME", option = ...}`` tables, whose other keys are the transform's options).

    The factory is called once per entry as ``factory(options)`` and returns a callable
    ``transform(record) -> record | None`` applied, in the listed order, to every canonical record
    (see :mod:`sftkit.api`) after conversion; returning None drops the row (counted in the data
    statistics as skipped, with the transform named). It must return a record of the same kind.
    """


@hookspec
def sftkit_register_model_loaders(register: Register) -> None:
    """Register model loaders, used as ``[model] loader = "NAME"``: how a model reference becomes
    files transformers loads. Without ``loader`` a recipe gets sftkit's own ``transformers`` loader
    (hub ids, model directories and ``.gguf`` files), as ``"sftkit:transformers"``, which a plugin
    registering another ``transformers`` cannot take over.

    The factory is called as ``factory(options)`` with the ``[model]`` table minus ``loader``
    (``name``, ``revision``, ``tokenizer``, ``trust_remote_code``, ``dtype`` and the loader's own
    options, defaults filled) and returns a :class:`sftkit.api.ModelLoader`. Its
    ``source(ref, base_dir, console)`` returns a :class:`sftkit.api.ModelSource` for ``ref`` (the
    ``[model] name``, or its ``tokenizer``): usually a local directory written by
    ``save_pretrained`` (``ModelSource(ref, "dir", path)``), converted once and cached, since it is
    called several times per run. sftkit loads from it whatever the strategy needs (causal LM,
    classifier, tokenizer, the tiny model of ``--smoke``, the base of a saved adapter). Use
    ``check=`` for what ``sftkit validate`` should report (a missing file), at path ``"name"``.
    """


@hookspec
def sftkit_register_recipes(register: Register) -> None:
    """Register recipes shipped as package data.

    ``register(name, "package://import_name/path/recipe.toml", doc=...)``: the recipe then shows in
    ``sftkit recipes list``, can be copied with ``sftkit recipes copy`` and extended by name
    (``[recipe] extends = "NAME"``). Data files the recipe references relative to itself are copied with it.
    """


@hookspec
def sftkit_register_commands(cli: click.Group) -> None:
    """Add click commands to ``cli``, a click group of this plugin's own: sftkit adds them to
    ``sftkit`` unless they clash, and each also as ``sftkit PLUGIN:NAME`` (core commands are not in
    ``cli`` and cannot be replaced).

    Import heavy libraries inside the command function, never at module level: every ``sftkit``
    invocation loads every plugin's commands.
    """


@hookspec
def sftkit_run_start(run: RunContext) -> None:
    """Called once a run's data is loaded and before training starts.

    ``run`` is the :class:`sftkit.api.RunContext`: the typed recipe (``run.config``), run
    directory, data, formatter, tokenizer and what the run decided (``smoke``, ``world``,
    ``device``, ``precision``).
    Later sftkit versions may add attributes to it, never remove them. In a run of several
    processes it is called on the main process only (``run.world.rank == 0``), which owns the run
    directory.
    """


@hookspec
def sftkit_training_callbacks(run: RunContext) -> list[TrainerCallback]:
    """Return ``transformers.TrainerCallback`` objects for the run's trainer (may be empty).

    Called once per trainer a built-in strategy builds, with the :class:`sftkit.api.RunContext`.
    The callbacks see every optimizer step (``on_step_end``) and every logged dict of per-step
    metrics (``on_log``: loss, learning rate, grad norm, eval loss), and may stop training through
    ``control``. Import transformers inside the hook, never at module level. Callbacks can change
    what training does, so this hook or a callback raising stops the run with one line naming the
    plugin (and the callback and event), never a traceback; the run is not marked finished.
    """


@hookspec
def sftkit_run_end(run: RunContext, metrics: dict) -> None:
    """Called after training and evaluation finished and ``metrics.json`` was written (on the main
    process only, in a run of several processes)."""


@hookspec
def sftkit_health_findings(run: RunContext, metrics: dict) -> list[Finding]:
    """Return health findings for a finished run, shown with sftkit's own in the report: dicts with
    ``level`` ("error", "warning" or "info"), ``code``, ``title``, ``detail`` and ``fix``.

    Called when the report is written and again by ``sftkit report``, where ``run`` is rebuilt from
    the run directory (no data or model): compute findings from ``metrics`` (keep your numbers
    there with ``run.plugin_metrics``). A plugin that raises gets a finding naming it.
    """


@hookspec
def sftkit_report_sections(run: RunContext, metrics: dict) -> list[tuple[str, str]]:
    """Return extra report sections as a list of ``(title, markdown)`` pairs (may be empty)."""
