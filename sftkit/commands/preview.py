"""``sftkit preview RECIPE``: render rows as the model will see them, trained tokens highlighted,
then the data statistics (rows per source, dropped and skipped rows, token lengths, leakage).

The run's own stages with the rest switched off (:func:`sftkit.run.stages.prepare` and
:func:`~sftkit.run.stages.load_data`, mode ``"preview"``); loads the tokenizer only, never the
model weights, and writes nothing.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from sftkit.errors import DataError, SftkitError


def build_preview(recipe_path, overrides=(), *, n: int = 3, split: str = "train", host=None) -> dict:
    """Everything ``sftkit preview`` shows, as data: ``{"recipe", "split", "examples", "stats", "tokenizer"}``."""
    from sftkit.data import tokenize_bundle
    from sftkit.run import stages

    # the run's own stages with the rest switched off: prepare (recipe, strategy) and load_data
    state = stages.prepare(recipe_path, overrides, host=host, mode="preview")
    config, run = state.config, state.ctx
    tokenizer = _load_tokenizer(config.model, state.recipe.base_dir, state.host)  # fails fast, before the data
    stages.load_data(state)
    bundle, strategy, formatter = run.data, state.strategy, run.formatter
    if formatter is not None:
        formatter.setup(tokenizer)
    run.tokenizer = tokenizer
    name = config.recipe.name
    if callable(getattr(strategy, "preview_encode", None)):  # the strategy encodes rows its own way
        rows = strategy.preview_encode(run, split)
        if rows is not None:
            return {"recipe": name, "split": split, "rows": len(rows), "examples": _strategy_examples(rows, n),
                    "stats": run.data_stats.get("tokens") or bundle.stats, "tokenizer": tokenizer}
        if split == "eval" and (bundle.eval is None or not len(bundle.eval)):
            raise DataError("the recipe has no eval split",
                            hint='set split = "eval" on a [[data]] entry, or [dataset] eval_fraction = 0.1')
    formatter = formatter or _formatter(config.template, state.host, tokenizer)
    from sftkit.config import Tokenization

    tok = Tokenization.of_config(config)
    tb = tokenize_bundle(bundle, formatter, max_length=tok.max_length, truncation=tok.truncation,
                         min_trained_tokens=tok.min_trained_tokens)
    ds = tb.train if split == "train" else tb.eval
    if ds is None:
        raise DataError("the recipe has no eval split",
                        hint='set split = "eval" on a [[data]] entry, or [dataset] eval_fraction = 0.1')
    examples = []
    for i in range(min(n, len(ds))):
        row = ds[i]
        ex = {"index": i, "source": row.get("source"), "input_ids": list(row["input_ids"]),
              "labels": list(row["labels"]), "length": int(row["length"])}
        for key in ("label", "rejected", "cluster"):  # what the token view does not show
            if row.get(key) is not None:
                ex[key] = row[key]
        examples.append(ex)
    return {"recipe": name, "split": split, "rows": len(ds), "examples": examples, "stats": tb.stats,
            "tokenizer": tokenizer}


def _formatter(template, host, tokenizer):
    from sftkit.templates import make_formatter

    formatter = make_formatter(template, host=host)
    formatter.setup(tokenizer)
    return formatter


def _strategy_examples(rows, n: int) -> list[dict]:
    """Examples from a strategy's ``preview_encode`` rows: ``input_ids``, ``labels`` (a list; -100
    where untrained; none: no token trained), ``target`` (a class the head learns), ``source``,
    ``rejected_input_ids`` / ``rejected_labels`` (the rejected answer of a preference pair),
    ``rewards`` (an RL strategy: per reward label, what it compares a sampled completion against)."""
    from sftkit.api import IGNORE_INDEX

    examples = []
    for i in range(min(n, len(rows))):
        row = rows[i]
        ids = list(row["input_ids"])
        labels = row.get("labels")
        labels = list(labels) if isinstance(labels, (list, tuple)) else [IGNORE_INDEX] * len(ids)
        ex = {"index": i, "source": row.get("source"), "input_ids": ids, "labels": labels, "length": len(ids)}
        if row.get("target") is not None:
            ex["label"] = row["target"]
            ex["trains"] = f"the class {row['target']!r} (the head's output), no token of the text"
        if row.get("cluster") is not None:
            ex["cluster"] = row["cluster"]
        if row.get("rewards") is not None:  # an RL strategy: what each reward compares a completion against
            ex["rewards"] = dict(row["rewards"])
        if row.get("rejected_input_ids") is not None:
            ex["rejected_input_ids"] = list(row["rejected_input_ids"])
            ex["rejected_labels"] = list(row["rejected_labels"])
        examples.append(ex)
    return examples


def _load_tokenizer(model, base_dir: Path, host=None):
    """The ``[model]`` slice's tokenizer, without loading weights (a GGUF file's tokenizer is read
    from its metadata, not from the dequantized model a run converts once)."""
    from sftkit.modeling.loaders import model_source
    from sftkit.models import load_tokenizer

    model_section = model.as_dict()
    if not model.name:
        raise SftkitError("[model] name is missing", hint="name a hub id, a local model directory or a .gguf file")
    src = model_source(model_section, base_dir, host=host)
    if src.kind == "gguf" and not model.tokenizer:
        problem = src.problem()
        if problem:
            raise SftkitError(problem, where="[model].name")
        from transformers import AutoTokenizer

        from sftkit.modeling.loading import ensure_pad_token

        tok = AutoTokenizer.from_pretrained(str(src.path.parent), gguf_file=src.path.name)
        ensure_pad_token(tok)
        return tok
    return load_tokenizer(model_section, base_dir, host=host)


def _use_color(choice: bool | None) -> bool:
    if choice is not None:
        return choice
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


def render_text(result: dict, *, color: bool) -> str:
    """The human-readable preview."""
    from sftkit.api import IGNORE_INDEX
    from sftkit.data.render import render_tokens
    from sftkit.data.stats import format_stats

    tok = result["tokenizer"]
    out = []
    legend = "trained tokens in green" if color else "trained tokens inside [[...]]"
    out.append(f"Preview of {result['recipe']} ({result['split']} split, {result['rows']:,} rows; {legend})")
    for ex in result["examples"]:
        trained = sum(1 for x in ex["labels"] if x != IGNORE_INDEX)
        extra = "".join(f" · {k} {ex[k]!r}" for k in ("label", "cluster") if k in ex)
        what = f"trains {ex['trains']}" if ex.get("trains") else f"{trained} trained"
        out.append(f"\n--- example {ex['index'] + 1} · source {ex['source']}{extra} · {ex['length']} tokens, "
                   f"{what} ---")
        out.append(render_tokens(tok, ex["input_ids"], ex["labels"], color=color))
        if "rejected_input_ids" in ex:
            out.append("--- its rejected answer (pushed down) ---")
            out.append(render_tokens(tok, ex["rejected_input_ids"], ex["rejected_labels"], color=color))
        elif "rejected" in ex:
            out.append(f"(rejected answer: {ex['rejected']!r})")
        if "rewards" in ex:
            out.append("--- the model samples its answer here; the rewards compare it against ---")
            out.extend(f"{label}: {target}" for label, target in ex["rewards"].items())
    out.append("")
    out.append(format_stats(result["stats"], result["split"]))
    return "\n".join(out)


def render_json(result: dict) -> str:
    """The machine-readable preview: examples with token ids, labels and masks, and the statistics."""
    from sftkit.api import IGNORE_INDEX
    from sftkit.data.render import render_tokens

    tok = result["tokenizer"]
    examples = []
    for ex in result["examples"]:
        out = {**ex, "mask": [0 if x == IGNORE_INDEX else 1 for x in ex["labels"]],
               "text": render_tokens(tok, ex["input_ids"], ex["labels"], color=False)}
        if "rejected_labels" in ex:
            out["rejected_mask"] = [0 if x == IGNORE_INDEX else 1 for x in ex["rejected_labels"]]
        examples.append(out)
    doc = {"recipe": result["recipe"], "split": result["split"], "rows": result["rows"],
           "examples": examples, "stats": result["stats"]}
    return json.dumps(doc, indent=2, ensure_ascii=False, default=_jsonable)


def _jsonable(value):
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


@click.command("preview")
@click.argument("recipe", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-n", "n", type=click.IntRange(min=0), default=3, show_default=True, help="Examples to render.")
@click.option("--split", type=click.Choice(["train", "eval"]), default="train", show_default=True)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text for people; json with token ids, labels and masks per example.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a recipe key, e.g. --set training.max_length=256 (value parsed as TOML).")
@click.option("--color/--no-color", default=None, help="Colour trained tokens (default: when writing to a terminal).")
def preview(recipe, n, split, fmt, overrides, color):
    """Render N rows of RECIPE's data as the model sees them, trained tokens highlighted, then
    statistics: rows per source, dropped and skipped rows, token lengths against max_length,
    truncation, share of trained tokens, duplicates and train/eval leakage."""
    if not sys.stderr.isatty():
        os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
        try:
            import datasets

            datasets.disable_progress_bars()
        except ImportError:  # pragma: no cover
            pass
    try:
        result = build_preview(recipe, overrides, n=n, split=split)
    except SftkitError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(err.exit_code)
    if fmt == "json":
        click.echo(render_json(result))
    else:
        click.echo(render_text(result, color=_use_color(color)), color=_use_color(color))
