"""``sftkit eval RECIPE --model DIR``: evaluate a model trained elsewhere with a recipe's [[eval]] tables."""

from __future__ import annotations

import gc
import json
import shutil
import sys
from pathlib import Path

import click

from sftkit.errors import GateError, SftkitError
from sftkit.reporting.accounting import EvaluationFailed


def _fail(err: SftkitError) -> None:
    click.echo(f"error: {err}", err=True)
    sys.exit(err.exit_code)


def _write_json(path: Path, obj) -> None:
    from sftkit.redaction import scrub

    path.write_text(scrub(json.dumps(obj, indent=2, default=str)) + "\n", encoding="utf-8")


def default_output(recipe_data: dict) -> Path:
    name = str(recipe_data.get("recipe", {}).get("name", "recipe"))
    text = str(recipe_data.get("output", {}).get("dir", "runs/{recipe.name}")).replace("{recipe.name}", name)
    return Path(text.rstrip("/") + "-eval").expanduser()


def evaluate_model(recipe_path: Path, model_dir: Path, *, base: bool = False, output: Path | None = None,
                   overrides=(), console=None) -> dict:
    """Evaluate ``model_dir`` (and, with ``base``, the recipe's base model) into ``output``; returns metrics.

    Writes metrics.json, data_stats.json, recipe.toml, the report (and train_log.jsonl copied from
    the model's run directory when there is one). Raises GateError (exit 3) after writing when a gate failed.
    """
    from sftkit.api import RunContext
    from sftkit.evaluation import Target, compare, evaluate_all, gate_failures
    from sftkit.plugins import get_host
    from sftkit.recipe import load_recipe

    say = console or (lambda msg: None)
    host = get_host()
    recipe = load_recipe(recipe_path, list(overrides), host=host)
    data = recipe.data
    model_dir = Path(model_dir)
    from sftkit.strategies import rundir

    if rundir.state(model_dir.parent) == "unfinished":
        say(f"warning: {model_dir.parent} is an unfinished run (no COMPLETE file): its model may be partial "
            "or from before the last step; continue it with `sftkit run RECIPE --output DIR --resume`")
    out = Path(output) if output else default_output(data)
    if (out / "model").exists() or out.resolve() == model_dir.resolve():
        raise SftkitError(f"{out} holds a trained model (a run directory); evaluation results would overwrite its "
                          "metrics and report", hint="pass --output DIR to write the evaluation elsewhere")
    out.mkdir(parents=True, exist_ok=True)

    data_problem = None
    bundle = None
    try:
        from sftkit.data import load_data

        bundle = load_data(data, recipe.base_dir, host=host)
    except SftkitError as err:  # evaluators that need no data still run; the report says why others failed
        data_problem = str(err)
        say(f"warning: the recipe's data could not be loaded ({err}); evaluators that need the eval split will fail")

    from sftkit.models import load_trained

    is_classifier, labels = _saved_kind(model_dir)
    run = RunContext(recipe=data, recipe_path=Path(recipe_path), base_dir=recipe.base_dir, run_dir=out, host=host,
                     data=bundle, formatter=None, console=say)
    batch = data.get("training", {}).get("per_device_eval_batch_size")  # None: chosen for the device
    from sftkit.modeling.precision import for_run

    precision = for_run(run)
    say(precision.describe())

    base_results: dict = {}
    base_done = False
    if base and (not is_classifier or labels):
        # the base model first, freed before the tuned one is loaded: one model in memory at a time
        base_model, base_tok = _load_base(data, recipe.base_dir, labels, is_classifier, say)
        base_formatter = _formatter(data, host, base_tok, base_model, is_classifier)
        run.formatter, run.tokenizer = base_formatter, base_tok
        say("evaluating the base model")
        base_results = evaluate_all(run, Target(base_model, base_tok, base_formatter, "base", batch_size=batch, precision=precision))
        del base_model
        gc.collect()
        base_done = True
    say(f"loading {model_dir}")
    model, tokenizer = load_trained(model_dir)
    is_classifier = is_classifier or "SequenceClassification" in type(model).__name__
    formatter = _formatter(data, host, tokenizer, model, is_classifier)
    run.formatter, run.tokenizer = formatter, tokenizer
    if base and not base_done:  # a classifier whose labels only the loaded model knows
        id2label = getattr(model.config, "id2label", None) or {}
        labels = [id2label[k] for k in sorted(id2label, key=int)]
        base_model, base_tok = _load_base(data, recipe.base_dir, labels, True, say)
        say("evaluating the base model")
        base_results = evaluate_all(run, Target(base_model, base_tok, None, "base", batch_size=batch, precision=precision))
        del base_model
        gc.collect()
    say("evaluating the model")
    tuned_results = evaluate_all(run, Target(model, tokenizer, formatter, "tuned", batch_size=batch, precision=precision))
    rows = compare(run, base_results, tuned_results)
    failures = gate_failures(rows)

    stats = dict(getattr(bundle, "stats", None) or {})
    metrics = {
        "recipe": recipe.name,
        "strategy": data.get("strategy", {}).get("name"),
        "model_dir": str(model_dir),
        "base_model": data.get("model", {}).get("name") if base else None,
        "train": {},
        "data": {"kind": getattr(bundle, "kind", None),
                 "train_rows": len(bundle.train) if bundle is not None and bundle.train is not None else 0,
                 "eval_rows": len(bundle.eval) if bundle is not None and bundle.eval is not None else 0,
                 **({"error": data_problem} if data_problem else {})},
        "eval": rows,
        "gates": {"passed": not failures, "failures": failures},
        "precision": precision.as_dict(),
    }
    _write_json(out / "metrics.json", metrics)
    _write_json(out / "data_stats.json", stats)
    try:
        from sftkit.pipeline import write_recipe

        write_recipe(out, data, getattr(recipe, "secrets", ()))
    except Exception as exc:  # the recipe copy is a convenience
        say(f"warning: recipe.toml not written: {exc}")
    log = model_dir.parent / "train_log.jsonl"
    if log.exists() and log.resolve() != (out / "train_log.jsonl").resolve():
        shutil.copyfile(log, out / "train_log.jsonl")
    from sftkit.reporting import write_report

    try:
        write_report(out, run=run, host=host)
    except SftkitError:
        raise
    except Exception as exc:  # a broken report must not lose the metrics
        say(f"warning: the report could not be written: {type(exc).__name__}: {exc}")
    from sftkit.reporting.accounting import evaluation_errors

    errors = evaluation_errors(rows)
    if errors:
        err = EvaluationFailed(f"{len(errors)} evaluation(s) failed: " + "; ".join(errors),
                               where=str(out / "metrics.json"), hint="see the report; fix the cause and re-run")
        err.metrics = metrics
        raise err
    if failures:
        err = GateError(f"{len(failures)} evaluation gate(s) failed: " + "; ".join(failures),
                        where=str(out / "metrics.json"))
        err.metrics = metrics
        raise err
    return metrics


def _formatter(data: dict, host, tokenizer, model, is_classifier: bool):
    if is_classifier:
        return None
    from sftkit.templates import make_formatter

    formatter = make_formatter(data, host=host)
    formatter.setup(tokenizer, model)
    return formatter


def _saved_kind(model_dir: Path) -> tuple[bool, list]:
    """(is a sequence classifier, its labels) from the saved config, without loading weights."""
    is_cls, labels = False, []
    try:
        cfg = json.loads((model_dir / "config.json").read_text()) if (model_dir / "config.json").exists() else {}
        adapter = json.loads((model_dir / "adapter_config.json").read_text()) \
            if (model_dir / "adapter_config.json").exists() else {}
    except (OSError, ValueError):
        return False, []
    is_cls = any("SequenceClassification" in str(a) for a in cfg.get("architectures") or []) \
        or adapter.get("task_type") == "SEQ_CLS"
    id2label = cfg.get("id2label") or {}
    if is_cls and id2label:
        labels = [id2label[k] for k in sorted(id2label, key=int)]
    return is_cls, labels


def _load_base(data: dict, base_dir: Path, labels: list, is_classifier: bool, say):
    from sftkit import models

    say(f"loading the base model {data['model']['name']}")
    if is_classifier:
        from transformers import set_seed

        set_seed(int(data.get("recipe", {}).get("seed", 42)))  # its new head: the same as the run's base
        return models.load_sequence_classifier(data["model"], base_dir, labels=labels)
    return models.load_causal_lm(data["model"], base_dir)


def summary_lines(metrics: dict, out: Path) -> list[str]:
    from sftkit.evaluation.verdict import summary_line

    lines = [summary_line(row) for row in metrics.get("eval", [])]
    lines.append(f"report: {out / 'report.html'}")
    return lines


@click.command("eval")
@click.argument("recipe", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--model", "model_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The model to evaluate: a run's model/ directory (full model or LoRA adapter) or any saved model dir.")
@click.option("--base", is_flag=True, help="Also evaluate the recipe's [model] for the before/after comparison.")
@click.option("--output", "-o", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where metrics.json and the report go (default: the recipe's output dir + '-eval').")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe key (value parsed as TOML).")
def eval_command(recipe, model_dir, base, output, overrides):
    """Evaluate a model trained elsewhere with RECIPE's [[eval]] tables and write metrics and a report.

    Exit codes: 0 done, 1 invalid input, 2 usage error, 3 an evaluation gate failed, 4 an evaluator
    failed (metrics and report written).
    """
    echo = lambda msg: click.echo(msg, err=True)  # noqa: E731
    out = Path(output) if output else None
    try:
        metrics = evaluate_model(recipe, model_dir, base=base, output=out, overrides=overrides, console=echo)
    except (GateError, EvaluationFailed) as err:
        if getattr(err, "metrics", None):
            for line in summary_lines(err.metrics, Path(err.where).parent if err.where else Path(".")):
                click.echo(line)
        _fail(err)
    except SftkitError as err:
        _fail(err)
    if out is None:
        from sftkit.recipe import load_recipe

        out = default_output(load_recipe(recipe, list(overrides)).data)
    for line in summary_lines(metrics, out):
        click.echo(line)
