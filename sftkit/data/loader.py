"""``load_data``: every ``[[data]]`` entry read, converted once to canonical records, split and mixed."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from ..api import SourceContext
from ..errors import DataError, PluginError, did_you_mean
from ..records import FIELDS
from . import formats
from .bundle import DataBundle
from .readers import RawRows

if TYPE_CHECKING:
    from ..config import DataEntry, Dataset

CONVERTER_VERSION = "3"
INTERNAL = ("_hash", "_phash", "_error")


def canonical_features(kind: str, fields: bool = False):
    """The ``datasets.Features`` of converted rows of ``kind`` (plus source/cluster and internals;
    ``fields``: plus the row's other columns as one JSON text, :data:`FIELDS`)."""
    from datasets import Features, List, Value

    msg = List({"role": Value("string"), "content": Value("string")})
    cols = {
        "messages": {"messages": msg},
        "text": {"text": Value("string")},
        "preference": {"prompt": msg, "chosen": Value("string"), "rejected": Value("string")},
        "labeled": {"prompt": msg, "completion": Value("string"), "label": Value("bool")},
        "classification": {"text": Value("string"), "label": Value("string")},
    }[kind]
    extra = {FIELDS: Value("string")} if fields else {}
    return Features({**cols, "source": Value("string"), "cluster": Value("string"), **extra,
                     "_hash": Value("int64"), "_phash": Value("int64"), "_error": Value("string")})


def other_fields(row: dict, fmt) -> str:
    """The columns of a raw ``row`` that format ``fmt`` (a registered format) does not read, as JSON
    text (values JSON cannot hold become their ``str``): what rewards read beside the record
    (``tests``, ``entry_point``). Lists of turns (``messages``, ``conversations``) are never kept."""
    used = formats.reads(fmt) | {"messages", "conversations"}
    return json.dumps({k: v for k, v in row.items() if k not in used}, ensure_ascii=False, default=str)


PLACEHOLDER = {
    "messages": {"messages": []},
    "text": {"text": ""},
    "preference": {"prompt": [], "chosen": "", "rejected": ""},
    "labeled": {"prompt": [], "completion": "", "label": False},
    "classification": {"text": "", "label": ""},
}


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(),
                          "little", signed=True)


class BatchConverter:
    """The ``Dataset.map(batched=True)`` function turning raw rows into canonical records."""

    def __init__(self, fmt, kind: str, name: str, cluster: str | None, on_error: str, describe,
                 transforms: tuple = (), tag: str | None = None, fields: bool = False):
        self.fmt, self.kind, self.name = fmt, kind, name  # fmt: the registered format (a Component)
        self.fields = fields  # keep the row's other columns (JSON) in FIELDS
        self.cluster, self.on_error, self.describe = cluster, on_error, describe
        self.transforms = transforms  # ((label, callable), ...) from [[data]] transforms
        self.tag = tag  # [[data]] cluster = "NAME": every row of the entry is in this cluster

    def _transform(self, record: dict, index: int) -> tuple[dict, str]:
        for label, fn in self.transforms:
            try:
                new = fn(dict(record))
            except Exception as exc:
                raise DataError(f"{label} failed on this row: {type(exc).__name__}: {exc}", where=self.describe(index),
                                hint="fix the transform or the row, or remove the transform") from None
            if new is None:
                return PLACEHOLDER[self.kind], f"dropped by {label}"
            missing = [k for k in PLACEHOLDER[self.kind] if k not in new] if isinstance(new, dict) else ["a dict"]
            if missing:
                raise DataError(f"{label} returned {type(new).__name__} without {', '.join(missing)}: a transform "
                                f"returns a {self.kind} record (or None to drop the row)", where=self.describe(index))
            record = new
        return record, ""

    def __call__(self, batch: dict, indices: list) -> dict:
        keys = list(batch)
        out = {k: [] for k in canonical_features(self.kind, self.fields)}
        fields = [k for k in out if k not in ("source", "cluster", FIELDS, *INTERNAL)]
        for j, index in enumerate(indices):
            row = {k: batch[k][j] for k in keys}
            try:
                record = formats.convert(row, self.fmt, self.kind)
                error = ""
                if self.transforms:
                    record, error = self._transform(record, index)
            except formats.RowError as exc:
                if self.on_error != "skip":
                    raise DataError(exc.detail, where=self.describe(index),
                                    hint='fix the row, or set on_error = "skip" in this [[data]] entry') from None
                record, error = PLACEHOLDER[self.kind], exc.reason
            except PluginError as exc:  # the format's plugin failed: not the row's fault, never skipped
                raise PluginError(exc.message, where=self.describe(index), hint=exc.hint) from None
            for k in fields:
                out[k].append(record[k])
            cluster = self.tag if self.tag is not None else (row.get(self.cluster) if self.cluster else None)
            out["source"].append(self.name)
            out["cluster"].append(None if cluster is None else str(cluster))
            out["_error"].append(error)
            if self.fields:
                out[FIELDS].append(other_fields(row, self.fmt))
            if error:
                out["_hash"].append(0)
                out["_phash"].append(0)
            else:
                out["_hash"].append(_digest(formats.record_key(record, self.kind)))
                out["_phash"].append(_digest(formats.prompt_key(record, self.kind)))
        return out


@dataclass
class _Entry:
    index: int
    name: str
    table: DataEntry
    raw: RawRows
    fmt: str  # the format's name, as written or detected
    spec: Any  # the registered format (a sftkit.registry.Component)
    split: str
    weight: float
    on_error: str
    cluster: str | None
    where: str
    transforms: tuple = ()
    tag: str | None = None


def _entry_name(table: DataEntry, index: int, used: set) -> str:
    name = table.name
    if not name:
        src = table.source or "?"
        target = table.options.get("path") or table.options.get("id")
        name = f"{src}:{Path(str(target)).name}" if target else src
    base, n = name, 2
    while name in used:
        name = f"{base}#{n}"
        n += 1
    used.add(name)
    return name


def _to_raw(result: Any, name: str, comp: Any = None) -> RawRows:
    """Accept what a source factory returns: RawRows, a Dataset, or an iterable of dicts. Anything
    else, an iterable that raises, or rows a dataset cannot hold is the source's fault: the error
    names the source and its plugin (``comp``)."""
    if isinstance(result, RawRows):
        return result
    import datasets

    who = f"source {comp.name!r} from plugin {comp.origin!r}" if comp is not None else f"source of entry {name!r}"
    if isinstance(result, datasets.DatasetDict):
        result = result["train"] if "train" in result else next(iter(result.values()))
    if not isinstance(result, datasets.Dataset):
        if isinstance(result, (str, bytes, dict)) or not hasattr(result, "__iter__"):
            raise PluginError(f"{who} returned {type(result).__name__}: a source returns rows (an iterable of "
                              "dicts), a datasets.Dataset or RawRows", where=f"entry {name!r}")
        try:
            rows = list(result)
        except Exception as exc:
            raise PluginError(f"{who} failed while yielding rows: {type(exc).__name__}: {exc}",
                              where=f"entry {name!r}") from None
        bad = next((i for i, r in enumerate(rows) if not isinstance(r, dict)), None)
        if bad is not None:
            raise PluginError(f"{who} returned rows that are not dicts (row {bad + 1} is "
                              f"{type(rows[bad]).__name__})", where=f"entry {name!r}")
        try:
            result = datasets.Dataset.from_list(rows)
        except Exception as exc:  # pyarrow: a field with mixed types (text an int among strings)
            raise PluginError(f"{who} returned rows a dataset cannot hold: {type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''} (each field must have one type "
                              "in every row)", where=f"entry {name!r}") from None
    return RawRows(result, lambda i: f"{name} row {i + 1}", [], {})


def _check_emits(comp: Any, table, cols: list[str], sample: dict | None, where: str, registry) -> None:
    """A source declaring ``emits`` must give rows of that kind: otherwise the plugin is wrong,
    not the user's data (only checked when the entry leaves format and columns to the source)."""
    emits = (getattr(comp, "meta", None) or {}).get("emits")
    if not emits or table.format != "auto" or table.columns:
        return
    try:
        found = formats.emits(formats.find_format(formats.detect_format(cols, sample, where, registry), registry))
    except DataError:
        found = None
    if found == emits:
        return
    needs = " or ".join(formats.row_shape(f) for f in formats.formats_emitting(emits, registry))
    got = f"{found} rows" if found else "rows of no known kind"
    raise PluginError(f"source {comp.name!r} from plugin {comp.origin!r} declares emits={emits!r} but gave {got} "
                      f"(fields: {', '.join(cols) or 'none'}; a {emits} row needs {needs})", where=where,
                      hint="the plugin's source must yield what it declares: report it to the plugin's author")


def _read(index: int, table: DataEntry, base_dir: Path, host, seed: int, used: set) -> _Entry:
    name = _entry_name(table, index, used)
    where = f"data[{index}] ({name})"
    source = table.source
    if not source:
        raise DataError('missing "source" (e.g. source = "jsonl")', where=f"data[{index}]")
    comp = host.registry.find("sources", source)
    if comp is None:
        raise DataError(host.missing_message("sources", source), where=f"data[{index}]")
    from ..config import factory_options

    options = factory_options("data", table)
    on_error = table.on_error
    # max_rows samples with the seed (stratified by cluster / label): the source reads every row
    ctx = SourceContext(base_dir=Path(base_dir), name=name, seed=seed, max_rows=None, on_error=on_error)
    raw = _to_raw(comp.create(options, ctx), name, comp)
    max_rows = table.max_rows
    if max_rows is not None and len(raw.dataset) > max_rows:
        from ..sampling import sample_indices

        renamed = table.columns or {}
        column = next((c for c in (table.cluster_column, renamed.get("cluster"), renamed.get("label"),
                                   "cluster", "label", "subject", "topic")
                       if c and c in raw.dataset.column_names), None)
        strata = raw.dataset[column] if column else None
        raw.dataset = raw.dataset.select(sample_indices(len(raw.dataset), int(max_rows), seed=seed, strata=strata))
    if len(raw.dataset) == 0:
        skipped = ", ".join(f"{r}: {n}" for r, n in raw.skipped.items())
        raise DataError("no rows" + (f" left after skipping bad lines ({skipped})" if skipped else " (the input is empty)"),
                        where=where, hint="point this [[data]] entry at data, or remove it")
    cols = raw.dataset.column_names
    renames = formats.column_plan(cols, table.columns or {}, where)
    cluster = table.cluster_column
    if cluster is not None and cluster not in cols:
        hint = did_you_mean(cluster, cols)
        raise DataError(f'cluster_column = "{cluster}", but the data has no such field (fields: {", ".join(cols)})'
                        + (f"; {hint}" if hint else ""), where=where)
    if renames:
        clash = [c for c in set(renames.values()) if c in cols and c not in renames]
        if cluster in clash:
            raise DataError(f'cluster_column "{cluster}" is replaced by a columns mapping', where=where)
        ds = raw.dataset.remove_columns(clash) if clash else raw.dataset
        raw.dataset = ds.rename_columns(renames)
        cluster = renames.get(cluster, cluster)
    cols = raw.dataset.column_names
    fmt = table.format
    sample = raw.dataset[0] if len(raw.dataset) else None
    registry = host.registry
    _check_emits(comp, table, cols, sample, where, registry)
    if fmt == "auto":
        fmt = formats.detect_format(cols, sample, where, registry)
    spec = formats.find_format(fmt, registry)
    if spec is None:
        raise DataError(host.missing_message("formats", fmt), where=f"data[{index}].format")
    if table.format != "auto":
        formats.check_fields(spec, cols, where, name=fmt)
    if table.cluster is not None and table.cluster_column is not None:
        raise DataError("give cluster (one cluster for every row) or cluster_column (a column per row), not both",
                        where=where)
    return _Entry(index, name, table, raw, fmt, spec, table.split, float(table.weight),
                  on_error, cluster, where, _transforms(table, index, host), table.cluster)


def _transforms(table: DataEntry, index: int, host) -> tuple:
    """``((label, callable), ...)`` for the entry's ``transforms`` list, built by their factories."""
    from ..schema import fill_component_defaults

    out = []
    for j, spec in enumerate(table.transforms or []):
        name, options = (spec, {}) if isinstance(spec, str) else (spec.get("name"), {k: v for k, v in spec.items()
                                                                                     if k != "name"})
        comp = host.registry.find("transforms", str(name))
        if comp is None:
            raise DataError(host.missing_message("transforms", str(name)), where=f"data[{index}].transforms[{j}]")
        fn = comp.create(fill_component_defaults(comp.schema, options))
        out.append((f"transform {comp.name!r} from plugin {comp.origin!r}", fn))
    return tuple(out)


# kinds a record converts into when a strategy trains on the other (chat rows become plain text)
CONVERTS_TO = {"messages": ("text",)}


def _target_kind(entries: list[_Entry], accepts: tuple) -> str:
    kinds = {e.name: formats.emits(e.spec) for e in entries}
    distinct = set(kinds.values())
    if len(distinct) == 1:
        return distinct.pop()
    first = accepts[0] if accepts else None
    if first in distinct and all(first in CONVERTS_TO.get(k, ()) for k in distinct - {first}):
        return first
    listing = ", ".join(f"{n} ({k})" for n, k in kinds.items())
    hint = ("a strategy that trains on text (accepts text first) converts chat rows to text"
            if distinct == {"messages", "text"} else "split them into separate recipes")
    raise DataError(f"[[data]] entries hold different kinds of records: {listing}; all entries must share one kind",
                    hint=hint)


def _code_of(spec) -> list:
    """The modules whose code decides the converted rows: this machinery and the format's converter
    (a plugin's own module), so a changed converter is never served from the cache."""
    import inspect

    modules = [formats]
    module = inspect.getmodule(spec.load())
    if module is not None and module is not formats:
        modules.append(module)
    return modules


def _convert(entry: _Entry, kind: str, fields: bool = False):
    ds = entry.raw.dataset
    fn = BatchConverter(entry.spec, kind, entry.name, entry.cluster, entry.on_error, entry.raw.describe,
                        entry.transforms, entry.tag, fields)
    fp_src = getattr(ds, "_fingerprint", None) if not entry.transforms else None  # transforms: no reuse
    fingerprint = None
    if fp_src:
        from .arrowcache import code_version

        fingerprint = hashlib.sha256(json.dumps(
            [CONVERTER_VERSION, code_version(*_code_of(entry.spec)), fp_src, entry.fmt, kind, entry.name, entry.cluster,
             entry.on_error, entry.tag, fields]).encode()).hexdigest()[:32]
    return ds.map(fn, batched=True, with_indices=True, remove_columns=ds.column_names,
                  features=canonical_features(kind, fields), new_fingerprint=fingerprint,
                  desc=f"Converting {entry.name}")


def _error_counts(ds) -> dict:
    import pyarrow.compute as pc

    counts = pc.value_counts(ds.data.column("_error"))
    return {str(v["values"]): int(v["counts"]) for v in counts.to_pylist() if v["values"]}


def _zero_rows_message(stats: dict, split_note: str) -> str:
    parts = []
    for name, s in stats["sources"].items():
        bits = [f"{s['rows']} usable"]
        if s.get("skipped"):
            bits.append("skipped as bad: " + ", ".join(f"{r}: {n}" for r, n in s["skipped"].items()))
        if s.get("eval"):
            bits.append(f"{s['eval']} in eval")
        parts.append(f"{name}: " + "; ".join(bits))
    if stats.get("duplicates"):
        parts.append(f"{stats['duplicates']} duplicates removed")
    return f"no train rows left{split_note} ({' | '.join(parts) or 'no entries'})"


def load_data(recipe, base_dir: Path, *, host=None, require_train: bool = True, accepts=(),
              fields: bool = False) -> DataBundle:
    """Read every ``[[data]]`` entry of ``recipe`` (a recipe dict or :class:`sftkit.config.Config`)
    and return canonical train/eval rows with statistics: :func:`load_entries` on its slices."""
    from ..config import Config, resolve

    config = recipe if isinstance(recipe, Config) else resolve(recipe)
    return load_entries(config.data, config.dataset, base_dir, seed=config.seed, host=host,
                        require_train=require_train, accepts=accepts, fields=fields)


def load_entries(tables: Sequence[DataEntry], dataset_cfg: Dataset, base_dir: Path, *, seed: int, host=None, require_train: bool = True,
                 accepts=(), fields: bool = False) -> DataBundle:
    """Read the ``[[data]]`` entries (``sftkit.config.DataEntry`` slices), combined as ``[dataset]``
    says (a ``sftkit.config.Dataset``), and return canonical train/eval rows with statistics.

    Raises :class:`sftkit.errors.DataError` (one line naming file and line/row) for bad input, and
    when no train row is left (unless ``require_train`` is false: ``sftkit eval`` needs none).
    ``accepts``: the data kinds the strategy trains on, preferred first; entries of different kinds
    are converted to the first when they can be (chat rows to text). ``fields``: keep each row's
    other columns (those its format does not read) as JSON in a :data:`FIELDS` column
    (:func:`sftkit.records.row_fields` unpacks them), for strategies whose rewards read them.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    from datasets import concatenate_datasets

    if host is None:
        from ..plugins import get_host

        host = get_host()
    tables = list(tables or ())
    if not tables:
        raise DataError("the recipe has no [[data]] entries", hint='add [[data]] with source = "jsonl" and path = ...')

    used: set = set()
    entries = [_read(i, t, Path(base_dir), host, seed, used) for i, t in enumerate(tables)]
    kind = _target_kind(entries, tuple(accepts or ()))

    converted, stats_sources, skipped_all, files = [], {}, {}, []
    for e in entries:
        ds = _convert(e, kind, fields)
        skipped = dict(e.raw.skipped)
        for reason, n in _error_counts(ds).items():
            skipped[reason] = skipped.get(reason, 0) + n
        for reason, n in skipped.items():
            skipped_all[reason] = skipped_all.get(reason, 0) + n
        files.extend(e.raw.files)
        stats_sources[e.name] = {"format": e.fmt, "split": e.split, "read": len(ds) + sum(e.raw.skipped.values()),
                                 "rows": 0, "skipped": skipped}
        converted.append(ds)

    big = concatenate_datasets(converted) if len(converted) > 1 else converted[0]
    offsets = np.cumsum([0] + [len(d) for d in converted])
    valid = pc.equal(big.data.column("_error"), "").to_numpy(zero_copy_only=False)
    hashes = big.data.column("_hash").to_numpy()
    phashes = big.data.column("_phash").to_numpy()
    for e, ds, start, stop in zip(entries, converted, offsets[:-1], offsets[1:]):
        stats_sources[e.name]["rows"] = int(valid[start:stop].sum())

    held = None
    holdout = list(dataset_cfg.holdout_clusters or [])
    if holdout:
        if not any(e.cluster or e.tag for e in entries):
            raise DataError("[dataset] holdout_clusters needs a cluster column",
                            hint='set cluster_column = "your_column" (or cluster = "name") in the [[data]] entries')
        known = set(pc.unique(big.data.column("cluster")).drop_null().to_pylist())
        for c in holdout:
            if c not in known:
                hint = did_you_mean(c, sorted(known))
                raise DataError(f'holdout_clusters: "{c}" is not a cluster in the data'
                                + (f"; {hint}" if hint else "") + f" (clusters: {', '.join(sorted(known)[:20])}"
                                + (", ..." if len(known) > 20 else "") + ")", where="[dataset]")
        mask = pc.is_in(big.data.column("cluster"), value_set=pa.array(holdout, pa.string()))
        held = pc.fill_null(mask, False).to_numpy(zero_copy_only=False)

    from .mixing import Entry, plan_splits

    plan = plan_splits(
        [Entry(e.name, e.split, e.weight, int(s), int(t)) for e, s, t in zip(entries, offsets[:-1], offsets[1:])],
        valid, hashes, phashes, held,
        eval_fraction=float(dataset_cfg.eval_fraction or 0.0),
        dedupe=bool(dataset_cfg.dedupe), shuffle=bool(dataset_cfg.shuffle), seed=seed)

    leak_examples = []
    for i in plan.leaked[:5]:
        rec = big[int(i)]
        leak_examples.append(formats.prompt_text(rec, kind)[:200])
    for name, counts in plan.per_entry.items():
        stats_sources[name].update(counts)
    stats = {
        "kind": kind,
        "sources": stats_sources,
        "dropped": {"duplicate": plan.duplicates} if plan.duplicates else {},
        "duplicates": plan.duplicates,
        "held_out": {"clusters": holdout, "rows": plan.held_out} if holdout else None,
        "leakage": {"exact": int(len(plan.leaked)), "examples": leak_examples},
        "skipped": skipped_all,
        "train_rows": int(len(plan.train)),
        "eval_rows": int(len(plan.eval)),
        "files": files,
    }
    if not len(plan.train) and require_train:
        raise DataError(_zero_rows_message(stats, ""), hint="check the messages above, split and holdout settings")

    keep = [c for c in big.column_names if c not in INTERNAL]
    train = big.select(plan.train).select_columns(keep)
    evals = big.select(plan.eval).select_columns(keep) if len(plan.eval) else None
    if kind == "classification" and len(train):
        _check_classes(train, entries)
    return DataBundle(kind=kind, train=train, eval=evals, stats=stats)


def _check_classes(train, entries: list[_Entry]) -> None:
    import pyarrow.compute as pc

    labels = pc.unique(train.with_format("arrow")["label"]).to_pylist()
    if len(labels) < 2:
        mapped = [f'{e.name}: columns.label = "{(e.table.columns or {}).get("label")}"'
                  for e in entries if (e.table.columns or {}).get("label")]
        raise DataError(f"classification needs at least two classes, but every train row has label {labels[0]!r}"
                        + (f" ({'; '.join(mapped)})" if mapped else ""),
                        hint="check the label column, or add rows of the other classes")
