"""Everything ``sftkit validate`` checks beyond TOML syntax: schema, component names, referenced files,
``requires``, and cross-field rules. Light: never imports torch, transformers, trl, datasets or peft.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from .backends import BACKENDS
from .config import DataEntry, Distributed, Output, Training
from .core_schema import COMPONENT_TABLES
from .detect import count_rows, detect_format, kind_of_format, peek_fields
from .errors import Problem, SftkitError, dotted, shorten
from .paths import resolve_path
from .reading import Recipe, read_recipe
from .registry import SINGULAR
from .schema import component_of, component_options, component_tables, path_options, schema_problems
from .strategies.selection import accepted_kinds, shape_hint


@dataclass
class CheckContext:
    """Handed to a component's ``check(options, ctx)`` by ``sftkit validate``.

    ``options`` are what the factory will receive: the table without the keys sftkit handles
    (``source``, ``format``, ``weight``...; ``name``, ``min``...), with the schema's defaults filled.
    A returned :class:`~sftkit.errors.Problem`'s ``path`` is relative to the table (``"pattern"``
    becomes ``"eval[1].pattern"``; empty means the table itself); start it with ``/`` to point
    elsewhere in the recipe (``"/training.max_length"``). Problems get the file, line and column.
    """

    recipe: dict  # the whole recipe as written (after extends and --set), defaults not filled
    base_dir: Path  # the recipe's directory: relative paths resolve against it
    table_path: str  # e.g. "data[0]" or "strategy"
    data_kinds: list  # canonical kind of each [[data]] entry, None where unknown
    data_fields: list  # field names of each [[data]] entry's first row, None where unknown


def _locator(recipe: Recipe):
    default = str(recipe.path) if recipe.path else None
    return lambda p: recipe.source.locate(tuple(p), default)


def _problem(recipe: Recipe, path: tuple, msg: str, hint: str | None = None) -> Problem:
    f, line, col = _locator(recipe)(path)
    return Problem(msg, file=f, line=line, col=col, path=dotted(path), hint=hint)


def _component_problems(recipe: Recipe, host) -> list[Problem]:
    out = []
    for table, path, item in component_tables(recipe.data):
        kind, key, _common, default = COMPONENT_TABLES[table]
        name = item.get(key, default)
        if not isinstance(name, str) or not name:
            continue  # the schema reports it
        if key not in item and default is not None and not host.has_builtins:
            continue  # a host without sftkit's built-ins (tests of the core): the implicit default is not there
        if host.registry.find(kind, name) is None:
            out.append(_problem(recipe, path + (key,),
                                host.missing_message(kind, name)))
    return out


def _transform_problems(recipe: Recipe, host) -> list[Problem]:
    """``[[data]] transforms``: every name registered, every table's options valid for its transform."""
    from jsonschema import Draft202012Validator

    from .schema import _component_object, error_to_problems

    out: list[Problem] = []
    for i, item in enumerate(recipe.data.get("data") or []):
        specs = item.get("transforms") if isinstance(item, dict) else None
        for j, spec in enumerate(specs if isinstance(specs, list) else []):
            name = spec if isinstance(spec, str) else spec.get("name") if isinstance(spec, dict) else None
            if not isinstance(name, str) or not name:
                continue  # the schema reports it
            path = ("data", i, "transforms", j)
            comp = host.registry.find("transforms", name)
            if comp is None:
                out.append(_problem(recipe, path if isinstance(spec, str) else path + ("name",),
                                    host.missing_message("transforms", name)))
            elif isinstance(spec, dict):
                schema = _component_object({"name": {"type": "string"}}, comp.schema, "name", None)
                for err in Draft202012Validator(schema).iter_errors(spec):
                    for p in error_to_problems(err, lambda rel: _locator(recipe)(path + tuple(rel))):
                        p.path = dotted(path) + ("." + p.path if p.path else "")
                        out.append(p)
    return out


def _format_problems(recipe: Recipe, host) -> list[Problem]:
    """``[[data]] format``: "auto" or a registered format (a plugin's too)."""
    out: list[Problem] = []
    for i, item in enumerate(recipe.data.get("data") or []):
        fmt = item.get("format") if isinstance(item, dict) else None
        if not isinstance(fmt, str) or not fmt or fmt == "auto":
            continue  # the schema reports what is not a name
        if host.registry.find("formats", fmt) is None:
            out.append(_problem(recipe, ("data", i, "format"), host.missing_message("formats", fmt)))
    return out


def _file_problems(recipe: Recipe, host) -> list[Problem]:
    out = []
    for table, path, item in component_tables(recipe.data):
        comp = component_of(table, item, host.registry)
        if comp is None:
            continue
        for key_path, value in path_options(comp.schema, item):
            if "${" not in value:
                out.extend(_check_exists(recipe, path + key_path, value))
    return out


def _check_exists(recipe: Recipe, path: tuple, value: str) -> list[Problem]:
    try:
        resolved = resolve_path(value, recipe.base_dir)
    except SftkitError as exc:
        return [_problem(recipe, path, f"file {value!r}: {exc.message}", exc.hint)]
    from .paths import not_a_regular_file, unreadable_start

    shown = shorten(value)
    try:
        exists = resolved.exists()
        why = not_a_regular_file(resolved) if exists and not resolved.is_dir() else None
    except OSError as exc:  # a name too long for the file system, a loop of links, ...
        return [_problem(recipe, path, f"file {shown!r} cannot be used: {exc.strerror}", "fix the path")]
    if not exists:
        looked = f" (looked at {resolved})" if str(resolved) != value and len(str(resolved)) <= 200 else ""
        return [_problem(recipe, path, f"file not found: {shown!r}{looked}",
                         "fix the path; relative paths are relative to the recipe file")]
    if why:
        return [_problem(recipe, path, f"file {shown!r} {why}", "point at a regular file")]
    corrupt = unreadable_start(resolved) if resolved.is_file() else None
    if corrupt:
        return [_problem(recipe, path, f"file {shown!r}: {corrupt.message}", corrupt.hint)]
    return []


def _inherited_trust_problems(recipe: Recipe) -> list[Problem]:
    """``trust_remote_code = true`` lets a model repository run code: it must be said in the recipe
    itself (or with --set), never arrive silently from a parent through ``extends``."""
    model = recipe.data.get("model")
    if not isinstance(model, dict) or model.get("trust_remote_code") is not True:
        return []
    path = ("model", "trust_remote_code")
    origin = recipe.source.origins.get(path)
    if origin in (None, "--set", str(recipe.path)):
        return []
    return [Problem(f"trust_remote_code = true is inherited from {origin} (code from the model repository would "
                    "run)", file=str(recipe.path), path="model.trust_remote_code",
                    hint=f"if you trust {model.get('name')!r}, set trust_remote_code = true in this recipe too "
                         "(or --set model.trust_remote_code=true)")]


def _requires_problems(recipe: Recipe, host) -> list[Problem]:
    from importlib.metadata import PackageNotFoundError, version

    from packaging.requirements import InvalidRequirement, Requirement

    reqs = (recipe.data.get("recipe") or {}).get("requires") or []
    out = []
    if not isinstance(reqs, list):
        return out
    failed = {(p.dist or "").lower(): p for p in host.failures}
    failed.update({p.name.lower(): p for p in host.failures})
    for i, text in enumerate(reqs):
        if not isinstance(text, str):
            continue
        path = ("recipe", "requires", i)
        try:
            req = Requirement(text)
        except InvalidRequirement as exc:
            out.append(_problem(recipe, path, f"requirement {text!r} is not valid: {exc}",
                                'write it like "sftkit-medical>=0.2"'))
            continue
        key = req.name.lower()
        if key in failed or key.replace("_", "-") in failed:
            info = failed.get(key) or failed.get(key.replace("_", "-"))
            out.append(_problem(recipe, path, f"requires {text!r}, but plugin {info.name!r} failed to load: {info.error}",
                                "fix or reinstall that plugin"))
            continue
        try:
            installed = version(req.name)
        except PackageNotFoundError:
            out.append(_problem(recipe, path, f"requires {text!r}, which is not installed", f"pip install '{text}'"))
            continue
        if req.specifier and not req.specifier.contains(installed, prereleases=True):
            out.append(_problem(recipe, path, f"requires {text!r}, but version {installed} is installed",
                                f"pip install '{text}'"))
    return out


def _data_shape(recipe: Recipe, host, broken: set = frozenset()) -> tuple[list, list]:
    """Canonical kind and first-row fields of each [[data]] entry (None where unknown or the entry
    has schema problems of its own)."""
    kinds, fields_all = [], []
    for i, item in enumerate(recipe.data.get("data") or []):
        fmt = item.get("format", DataEntry().format) if isinstance(item, dict) else None
        if not isinstance(item, dict) or f"data[{i}]" in broken or not isinstance(fmt, str):
            kinds.append(None)
            fields_all.append(None)
            continue
        comp = component_of("data", item, host.registry)
        emits = comp.meta.get("emits") if comp is not None else None
        path = None
        if isinstance(item.get("path"), str):
            try:
                path = resolve_path(item["path"], recipe.base_dir)
            except SftkitError:
                path = None
        fields = peek_fields(item, path)
        if (fmt == "auto" or fmt is None) and emits:
            kinds.append(emits)  # the source declared the kind of records it gives
            fields_all.append(fields)
            continue
        if fmt == "auto" or fmt is None:
            fmt = detect_format(fields, host.registry) if fields else None
        kinds.append(kind_of_format(fmt, host.registry))
        fields_all.append(fields)
    return kinds, fields_all


def _table_of(path: str) -> str:
    """``"data[0].greting"`` -> ``"data[0]"``."""
    return path.split(".", 1)[0]


def _relative_to(table_path: str, path: str) -> str:
    if path.startswith("/"):
        return path[1:]
    if not path or path == table_path or path.startswith((table_path + ".", table_path + "[")):
        return path or table_path
    return f"{table_path}.{path}" if not path.startswith("[") else table_path + path


def _what_entry_gives(item: dict, kind: str, fields: list | None, host) -> str:
    """What a [[data]] entry gives, for a kind-mismatch message: a source's declaration (``emits``:
    the fields of its rows, not the file's columns it reads), else the fields found."""
    from .data.formats import formats_emitting, row_shape

    comp = component_of("data", item, host.registry)
    emits = comp.meta.get("emits") if comp is not None else None
    if emits and DataEntry.of(item).format in ("auto", None):
        row = next((row_shape(f) for f in formats_emitting(emits, host.registry)), "?")
        return f"; source {comp.name!r} from plugin {comp.origin!r} declares emits={emits!r}, rows of {row}"
    return f"; its fields: {', '.join(fields)}" if fields else ""


def _cross_field_problems(recipe: Recipe, host, broken: set) -> list[Problem]:
    """Kind fit and components' checks, for every table that has no schema problem of its own."""
    out: list[Problem] = []
    kinds, fields = _data_shape(recipe, host, broken)
    strategy = recipe.data.get("strategy")
    comp = component_of("strategy", strategy, host.registry) if isinstance(strategy, dict) else None
    if comp is not None and "strategy" not in broken and "data" not in broken:
        accepts = accepted_kinds(comp)
        if accepts:
            for i, (kind, flds) in enumerate(zip(kinds, fields)):
                if kind is None or kind in accepts or f"data[{i}]" in broken:
                    continue
                found = _what_entry_gives(recipe.data["data"][i], kind, flds, host)
                out.append(_problem(
                    recipe, ("data", i),
                    f"strategy {comp.name!r} trains on {' or '.join(accepts)} data, but this entry is {kind} data{found}",
                    shape_hint(comp, accepts)))
    for table, path, item in component_tables(recipe.data):
        c = component_of(table, item, host.registry)
        table_path = dotted(path)
        if c is None or c.check is None or table_path in broken or table in broken:
            continue
        ctx = CheckContext(recipe.data, recipe.base_dir, table_path, kinds, fields)
        try:
            found = c.load_check()(component_options(table, item, c), ctx) or []
        except Exception as exc:  # a plugin's check must not crash validate
            found = [Problem(f"check of {SINGULAR[c.kind]} {c.name!r} from plugin {c.origin!r} raised "
                             f"{type(exc).__name__}: {exc}")]
        for p in found:
            if not isinstance(p, Problem):
                p = Problem(f"check of {SINGULAR[c.kind]} {c.name!r} from plugin {c.origin!r} returned "
                            f"{p!r}, not a sftkit.errors.Problem")
            p.path = _relative_to(table_path, p.path or "")
            if p.file is None:
                p.file, p.line, p.col = _locator(recipe)(tuple(_parse_dotted(p.path)))
            out.append(p)
    return out


def _reward_problems(recipe: Recipe, host, broken: set) -> list[Problem]:
    """``[[reward]]`` tables against the strategy (registration metadata ``rewards=True``: it trains
    on rewards and needs at least one; any other strategy takes none), labels unique, and every
    column a reward ``reads`` present in the training data whose fields can be peeked."""
    from .rewards.base import describe, missing_columns

    data = recipe.data
    tables = [t for t in data.get("reward") or [] if isinstance(t, dict)]
    strategy = data.get("strategy")
    comp = component_of("strategy", strategy, host.registry) if isinstance(strategy, dict) else None
    if comp is None or "strategy" in broken:
        return []
    takers = sorted(c.name for c in host.registry.all("strategies") if c.meta.get("rewards"))
    out: list[Problem] = []
    if tables and not comp.meta.get("rewards"):
        return [_problem(recipe, ("reward", 0), f"[[reward]] tables have no effect: strategy {comp.name!r} does not "
                         "train on rewards", f"use a strategy that does ({', '.join(takers) or 'none installed'}), "
                         "or remove the [[reward]] tables")]
    if comp.meta.get("rewards") and not tables:
        return [_problem(recipe, ("strategy", "name"), f"strategy {comp.name!r} trains on rewards, but the recipe has "
                         "no [[reward]] table", "add one, e.g. [[reward]] name = \"numeric_answer\" (`sftkit "
                         "plugins --all` lists the rewards)")]
    seen: dict[str, int] = {}
    for i, table in enumerate(data.get("reward") or []):
        label = table.get("label", table.get("name")) if isinstance(table, dict) else None
        if not isinstance(label, str) or f"reward[{i}]" in broken:
            continue
        if label in seen:
            key = "label" if "label" in table else "name"
            out.append(_problem(recipe, ("reward", i, key), f"two [[reward]] tables are labelled {label!r} "
                                f"(reward[{seen[label]}] and this one): their metrics would mix",
                                "give this one its own label = \"...\""))
        seen.setdefault(label, i)
    if "data" in broken or not tables:
        return out
    fields = _data_shape(recipe, host, broken)[1]
    entries = data.get("data") or []
    for i, table in enumerate(data.get("reward") or []):
        reward = component_of("reward", table, host.registry) if isinstance(table, dict) else None
        reads = reward.meta.get("reads") if reward is not None else None
        if not reads or f"reward[{i}]" in broken:
            continue
        try:
            options = component_options("reward", table, reward)
            for j, (entry, flds) in enumerate(zip(entries, fields)):
                if flds is None or not isinstance(entry, dict) or entry.get("split") == "eval":
                    continue
                mapped = entry.get("columns") if isinstance(entry.get("columns"), dict) else {}
                gone = missing_columns(reads, options, set(flds) | set(mapped.values()))
                if gone:
                    out.append(_problem(recipe, ("reward", i, "name"),
                                        f"reward {reward.name!r} reads column {describe(gone[0])}, which data[{j}] "
                                        f"lacks (its fields: {', '.join(flds) or 'none'})",
                                        "add the column, map it with columns = {...} in that [[data]] table, or set "
                                        "the reward's column option"))
        except Exception as exc:  # a plugin's reads callable must not crash validate
            out.append(_problem(recipe, ("reward", i, "name"), f"reads of reward {reward.name!r} from plugin "
                                f"{reward.origin!r} raised {type(exc).__name__}: {exc}"))
    return out


def _training_problems(recipe: Recipe) -> list[Problem]:
    from .modeling.precision import requested

    training = recipe.data.get("training")
    if not isinstance(training, dict):
        return []
    _want, conflict = requested(Training.of(training))
    if not conflict:
        return []
    key = "precision" if "precision" in training else next(k for k in ("bf16", "fp16") if k in training)
    return [_problem(recipe, ("training", key), conflict)]


def _setting_problems(recipe: Recipe, host) -> list[Problem]:
    """Settings that can never take effect: a gate threshold outside its metric's range (registration
    metadata ``range``), ``gate_on`` without a threshold, ``eval_steps`` without an eval split."""
    out: list[Problem] = []
    data = recipe.data
    for _table, path, item in component_tables({"eval": data.get("eval")}):
        comp = component_of("eval", item, host.registry)
        rng = comp.meta.get("range") if comp is not None else None
        if rng:
            lo, hi = rng
            span = f"{lo:g}..{hi:g}" if hi is not None else f"{lo:g} or more"
            for key in ("min", "max"):
                v = item.get(key)
                if isinstance(v, (int, float)) and not isinstance(v, bool) and (v < lo or (hi is not None and v > hi)):
                    hint = (f"write it as a fraction: {key} = {v / 100:g}" if hi == 1 and 1 < v <= 100
                            else f"use a value in {span}")
                    out.append(_problem(recipe, (*path, key), f"gate {key} = {v:g} is outside the range of "
                                        f"{comp.name}'s metric ({span}): the gate can never {'pass' if key == 'min' else 'fail'}", hint))
            reg = item.get("max_regression")
            if isinstance(reg, (int, float)) and hi is not None and reg > hi - lo:
                out.append(_problem(recipe, (*path, "max_regression"), f"max_regression = {reg:g} is larger than the "
                                    f"whole range of {comp.name}'s metric ({span}): the gate can never fail",
                                    f"use a value below {hi - lo:g}, e.g. 0.05"))
        if item.get("gate_on") == "lower_bound" and item.get("min") is None and item.get("max") is None:
            out.append(_problem(recipe, (*path, "gate_on"), "gate_on = \"lower_bound\" has no effect without min or max",
                                "add min = ... (checked against the lower bound of the 95% interval)"))
    holdout = (data.get("dataset") or {}).get("holdout_clusters")
    if holdout and not any(isinstance(d, dict) and (d.get("cluster_column") or d.get("cluster"))
                           for d in data.get("data") or []):
        out.append(_problem(recipe, ("dataset", "holdout_clusters"), "holdout_clusters needs clusters, but no [[data]] "
                            "entry has cluster_column or cluster", "add cluster_column = \"your_column\" (or "
                            "cluster = \"name\") to the [[data]] entries"))
    training = data.get("training") or {}
    if training.get("best_metric") is not None and (training.get("eval_steps") is None
                                                    or training.get("eval_strategy") in ("end", "no")):
        out.append(_problem(recipe, ("training", "best_metric"), "best_metric needs evaluations during training to "
                            "choose from", "set [training] eval_steps = N (a checkpoint is saved at each evaluation)"))
    if training.get("eval_steps") is not None:
        ds = data.get("dataset") or {}
        has_eval = (float(ds.get("eval_fraction", 0) or 0) > 0 or bool(ds.get("holdout_clusters"))
                    or any(isinstance(d, dict) and d.get("split") == "eval" for d in data.get("data") or []))
        if not has_eval:
            out.append(_problem(recipe, ("training", "eval_steps"), "eval_steps has no effect: the recipe has no eval split",
                                "set [dataset] eval_fraction = 0.1 (or a [[data]] entry with split = \"eval\"), "
                                "or remove eval_steps"))
    return out


def _baseline_problems(recipe: Recipe, host) -> list[Problem]:
    """``[[baseline]]`` tables that cannot run or cannot take effect: no [[eval]] table to run them
    through, system_prompt without ``system``, few-shot options on a system prompt, few-shot
    examples from data that holds no question and answer (raw text)."""
    data = recipe.data
    tables = data.get("baseline") or []
    out: list[Problem] = []
    if tables and not data.get("eval"):
        out.append(_problem(recipe, ("baseline", 0), "[[baseline]] has no effect: the recipe has no [[eval]] table "
                            "to run it through", "add an [[eval]] table (e.g. name = \"exact_match\"), or remove [[baseline]]"))
    kinds = None
    for i, table in enumerate(tables):
        kind = table.get("kind")
        if kind == "system_prompt":
            if not table.get("system"):
                out.append(_problem(recipe, ("baseline", i), "a system_prompt baseline needs its system prompt",
                                    "add system = \"You are ...\""))
            for key in ("k", "seed"):
                if key in table:
                    out.append(_problem(recipe, ("baseline", i, key), f"{key} has no effect on a system_prompt "
                                        "baseline (it draws no examples)", f"remove {key}, or set kind = \"few_shot\""))
        elif kind == "few_shot":
            if kinds is None:
                kinds = _data_shape(recipe, host)[0]
            if kinds and all(k == "text" for k in kinds):
                out.append(_problem(recipe, ("baseline", i, "kind"), "few-shot examples need questions and answers, "
                                    "but the training data is raw text", "use kind = \"system_prompt\", or remove the table"))
    return out


def _run_dir_problems(recipe: Recipe) -> list[Problem]:
    """The run directory ``sftkit run`` (and ``--smoke``, the longest) would create, by the run's own
    rule, within what the file system holds: blamed on ``[recipe] name`` when a short name would fit,
    else on ``[output] dir``."""
    from .run.rundir import path_for, path_problem
    from .run.smoke import SUFFIX

    output = recipe.data.get("output") or {}
    folder = output.get("dir", Output().dir)
    name = (recipe.data.get("recipe") or {}).get("name")
    if not isinstance(folder, str) or not isinstance(name, str) or "${" in folder:
        return []
    why = path_problem(path_for(folder, name))
    said = f"the run directory {why}"
    if why is None:
        why = path_problem(path_for(folder, name, smoke=True))
        said = f"the run directory of a --smoke run (with {SUFFIX!r} added) {why}"
    if why is None:
        return []
    if path_problem(path_for(folder, "x", smoke=True)) is None:
        return [_problem(recipe, ("recipe", "name"), said, "use a shorter name")]
    return [_problem(recipe, ("output", "dir") if "dir" in output else ("recipe", "name"), said,
                     "choose a shorter directory, without control characters")]


def _parse_dotted(text: str) -> list:
    import re

    out: list = []
    for part in text.split("."):
        m = re.fullmatch(r"([^\[]+)((?:\[\d+\])*)", part)
        if not m:
            continue
        out.append(m.group(1))
        out.extend(int(i) for i in re.findall(r"\[(\d+)\]", m.group(2)))
    return out


def _distributed_problems(recipe: Recipe) -> list[Problem]:
    """``[distributed]`` against what is installed and what the model is (no torch import)."""
    import importlib.util
    import json

    table = recipe.data.get("distributed")
    if not isinstance(table, dict):
        return []
    out: list[Problem] = []
    strategy = table.get("strategy", Distributed().strategy)
    fsdp, ds = table.get("fsdp"), table.get("deepspeed")
    here = ("distributed",)
    for other in BACKENDS.values():  # options of a backend the recipe does not use
        if other.options and other.name != strategy and isinstance(table.get(other.options), dict):
            out.append(_problem(recipe, here + (other.options,),
                                f"[distributed.{other.options}] options given but strategy is {strategy!r}",
                                f'set distributed.strategy = "{other.name}" or remove [distributed.{other.options}]'))
    if strategy == "fsdp" and isinstance(fsdp, dict):
        if fsdp.get("version", 2) == 2 and fsdp.get("sharding") in ("hybrid_shard", "no_shard"):
            out.append(_problem(recipe, here + ("fsdp", "sharding"),
                                f"sharding {fsdp['sharding']!r} exists only in FSDP version 1",
                                'use "full_shard" or "shard_grad_op", or set version = 1'))
    if strategy == "fsdp":
        model = recipe.data.get("model")
        source = None
        from .modeling.loaders import reads_own_reference

        if (isinstance(model, dict) and isinstance(model.get("name"), str) and "${" not in model["name"]
                and reads_own_reference(model)):
            from .models import describe_model_source

            source = describe_model_source(model, recipe.base_dir)
        config = source.path / "config.json" if source is not None and source.kind == "dir" and source.path else None
        try:
            quantized = bool(config and config.is_file()
                             and json.loads(config.read_text(encoding="utf-8")).get("quantization_config"))
        except (OSError, ValueError):
            quantized = False
        if quantized:
            out.append(_problem(recipe, here + ("strategy",),
                                "FSDP cannot shard a quantized base model (its config.json has quantization_config)",
                                'use strategy = "ddp" with an [adapter] (QLoRA), or a full-precision base model'))
    adapter = recipe.data.get("adapter")
    backend = BACKENDS.get(str(strategy))
    if backend is not None and backend.shards_saved_weights and isinstance(adapter, dict) and adapter.get("merge"):
        out.append(_problem(recipe, ("adapter", "merge"), f"merging the adapter is not done under strategy {strategy!r} "
                            "(the weights are sharded when the run saves)",
                            "remove merge and merge the saved adapter afterwards, or use strategy = \"ddp\""))
    if strategy == "deepspeed":
        if importlib.util.find_spec("deepspeed") is None:
            out.append(_problem(recipe, here + ("strategy",), "strategy 'deepspeed' needs the deepspeed package, "
                                "which is not installed", 'pip install deepspeed, or use strategy = "fsdp"'))
        if isinstance(ds, dict):
            if ds.get("config") is not None and any(k in ds for k in ("stage", "offload_optimizer", "offload_params")):
                out.append(_problem(recipe, here + ("deepspeed", "config"),
                                    "a DeepSpeed JSON config is used as is; stage and offload options would be ignored",
                                    "put them in the JSON file, or remove config"))
            elif ds.get("offload_params") and ds.get("stage", 2) != 3:
                out.append(_problem(recipe, here + ("deepspeed", "offload_params"),
                                    "offloading weights needs ZeRO stage 3", "set stage = 3 or remove offload_params"))
            if isinstance(ds.get("config"), str):
                out.extend(_check_exists(recipe, here + ("deepspeed", "config"), ds["config"]))
    return out


def _well_shaped(data: dict) -> bool:
    """Every section a table and every [[data]] / [[eval]] entry a table."""
    for key, value in data.items():
        if key in ("data", "eval", "reward", "baseline"):
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                return False
        elif not isinstance(value, dict):
            return False
    return True


def check_recipe(recipe: Recipe, host) -> list[Problem]:
    """Every problem of an already-read recipe (schema, names, files, requires, cross-field rules)."""
    problems = schema_problems(recipe.data, host.registry, _locator(recipe))
    if not _well_shaped(recipe.data):
        return problems  # a section that is not a table: the schema said so; the checks below need tables
    problems += _component_problems(recipe, host)
    problems += _transform_problems(recipe, host)
    problems += _format_problems(recipe, host)
    problems += _file_problems(recipe, host)
    problems += _requires_problems(recipe, host)
    problems += _inherited_trust_problems(recipe)
    if not any(p.path.startswith("distributed") for p in problems):
        problems += _distributed_problems(recipe)
    earlier = list(problems)
    broken = {_table_of(p.path) for p in earlier if p.path}
    problems += _cross_field_problems(recipe, host, broken)
    problems += _reward_problems(recipe, host, broken)
    if not any(p.path.startswith(("eval", "training", "dataset")) for p in earlier):
        problems += _setting_problems(recipe, host)
    if not any(p.path.startswith("training") for p in earlier):
        problems += _training_problems(recipe)
    if not any(p.path.startswith("baseline") for p in earlier):
        problems += _baseline_problems(recipe, host)
    if not any(p.path.startswith(("recipe", "output")) for p in earlier):
        problems += _run_dir_problems(recipe)
    if not any(p.path.startswith(("adapter", "distributed", "freeze", "strategy")) for p in earlier):
        problems += _adapter_problems(recipe, host)
    return problems


def _adapter_problems(recipe: Recipe, host) -> list[Problem]:
    """``[adapter] kind = "qlora"`` against what cannot train in 4-bit (:func:`sftkit.modeling.qlora.recipe_problems`);
    whether the strategy trains a new classification head is its registration's ``accepts``."""
    from .config import Adapter
    from .modeling.qlora import recipe_problems

    data = recipe.data
    strategy = data.get("strategy") or {}
    comp = host.registry.find("strategies", str(strategy.get("name"))) if strategy.get("name") else None
    adapter = Adapter.of(data["adapter"]) if isinstance(data.get("adapter"), dict) else None
    distributed = Distributed.of(data["distributed"]) if isinstance(data.get("distributed"), dict) else None
    found = recipe_problems(adapter, freeze=isinstance(data.get("freeze"), dict), distributed=distributed,
                            trains_classifier="classification" in accepted_kinds(comp))
    return [_problem(recipe, path, msg, hint) for path, msg, hint in found]


ROW_COUNT_LIMIT = 1_000_000  # validate counts at most this many rows of a data file


def _eval_split_warnings(recipe: Recipe) -> list[Problem]:
    """A located warning when the eval split will hold fewer rows than a verdict needs
    (:data:`sftkit.evaluation.verdict.MIN_EVIDENCE_ITEMS`), where every entry's rows can be counted
    without reading data the heavy way; the split's own rule (:func:`sftkit.data.mixing.plan_splits`)
    applied to those counts gives the most eval rows the run can have."""
    from .evaluation.verdict import MIN_EVIDENCE_ITEMS as MIN

    ds, entries = recipe.data.get("dataset") or {}, recipe.data.get("data") or []
    fraction = ds.get("eval_fraction") or 0
    if ds.get("holdout_clusters") or not isinstance(fraction, (int, float)) or isinstance(fraction, bool):
        return []  # held-out clusters add rows validate cannot count
    needed = ROW_COUNT_LIMIT if fraction <= (MIN - 0.5) / ROW_COUNT_LIMIT else math.ceil((MIN - 0.5) / fraction)
    total, counted, where = 0, [], None
    for i, item in enumerate(entries):
        split = item.get("split", DataEntry().split)
        if split == "train" or (split == "auto" and fraction <= 0):
            continue
        path = None
        if isinstance(item.get("path"), str):
            try:
                path = resolve_path(item["path"], recipe.base_dir)
            except SftkitError:
                return []
        limit = MIN if split == "eval" else needed
        n = count_rows(item, path, limit)
        if n is not None and isinstance(item.get("max_rows"), int):
            n = min(n, item["max_rows"])  # sampled before the split
        if n is None or n > limit:
            return []  # unknown, or enough rows
        k = n if split == "eval" else max(int(round(n * fraction)), 1 if n >= 2 else 0)
        total += k
        counted.append(f"{k} of {n} in data[{i}]")
        where = where or (("dataset", "eval_fraction") if split == "auto" else ("data", i, "split"))
    if where is None or total >= MIN:
        return []
    return [_problem(recipe, where, f"the eval split will hold at most {total} row(s) ({', '.join(counted)}): a "
                     f"verdict needs at least {MIN} items, so every evaluator on it says \"not enough evidence\" and "
                     "a gate on it fails", "raise [dataset] eval_fraction, add rows, or add a [[data]] entry with "
                     "split = \"eval\"")]


def recipe_warnings(recipe: Recipe) -> list[Problem]:
    """What is valid but leaves a run unable to show anything (``sftkit validate`` prints them, exit 0)."""
    if not _well_shaped(recipe.data):
        return []
    return _eval_split_warnings(recipe)


def validate_file(path: Path, host, overrides=(), warnings: list | None = None) -> list[Problem]:
    """All problems of one recipe file; its warnings (:func:`recipe_warnings`, when it has no
    problem) and notes (``level="note"``: an earlier step not done yet, :mod:`.prerequisites`) are
    added to ``warnings`` when it is given."""
    from .prerequisites import awaiting

    recipe, problems = read_recipe(path, overrides, host=host)
    if recipe is not None:
        found = awaiting(problems + check_recipe(recipe, host), recipe.data, recipe.base_dir, host)
        problems = [p for p in found if p.level == "error"]
        if warnings is not None:
            warnings += sorted((p for p in found if p.level != "error"), key=lambda p: (p.line or 10**9, p.col or 0))
            if not problems:
                warnings += recipe_warnings(recipe)
    return sorted(problems, key=lambda p: (p.file != str(path), p.file or "", p.line or 10**9, p.col or 0))


IGNORED_TOML = {"pyproject.toml", "pre-commit-config.toml", "taplo.toml", ".taplo.toml", "ruff.toml"}


def collect_recipe_files(paths) -> tuple[list[Path], list[Problem]]:
    """Expand files and directories (recursively) into recipe files."""
    files: list[Path] = []
    problems: list[Problem] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*.toml")
                           if f.name not in IGNORED_TOML and not any(part.startswith(".") for part in f.relative_to(p).parts))
            if not found:
                problems.append(Problem("no recipes (*.toml files) in this directory", file=str(p),
                                        hint="point at a recipe file or a directory holding some"))
            files.extend(found)
        else:
            files.append(p)
    return files, problems
