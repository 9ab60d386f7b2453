"""What a run writes besides the model: the resolved recipe, JSON files, the report, and the
short summary printed at the end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sftkit.errors import SftkitError


def _toml_clean(node):
    if isinstance(node, dict):
        return {str(k): _toml_clean(v) for k, v in node.items() if v is not None}
    if isinstance(node, (list, tuple)):
        return [_toml_clean(v) for v in node if v is not None]
    if isinstance(node, Path):
        return str(node)
    return node


def write_recipe(run_dir: Path, data: dict, secrets=()) -> None:
    """The resolved recipe, as TOML (secret-looking values redacted)."""
    import tomli_w

    from sftkit.recipe import redact
    from sftkit.redaction import scrub_obj

    body = tomli_w.dumps(_toml_clean(scrub_obj(redact(data, set(secrets)))))
    (Path(run_dir) / "recipe.toml").write_text("# resolved recipe of this run (sftkit)\n" + body, encoding="utf-8")


def write_json(path: Path, obj: Any) -> None:
    """``obj`` as JSON, secret values scrubbed."""
    from sftkit.redaction import scrub

    Path(path).write_text(scrub(json.dumps(obj, indent=2, default=str)) + "\n", encoding="utf-8")


def copy_train_log(model_ref, out: Path) -> None:
    """An evaluated run's ``train_log.jsonl`` (beside its ``model/``) travels into the evaluation, for the report."""
    import shutil

    log = Path(str(model_ref)).expanduser().parent / "train_log.jsonl"
    if log.is_file() and log.resolve() != (Path(out) / "train_log.jsonl").resolve():
        shutil.copyfile(log, Path(out) / "train_log.jsonl")


def write_report(run_dir: Path, run, say, host=None) -> None:
    """report.html / report.md; a broken report never loses a finished run (a warning instead)."""
    from sftkit.reporting import write_report as write

    try:
        write(run_dir, run=run, host=host)
    except SftkitError:
        raise
    except Exception as exc:
        say(f"warning: the report could not be written: {type(exc).__name__}: {exc}")


def summary_lines(outcome) -> list[str]:
    """A short human summary of a finished run (a :class:`sftkit.run.RunOutcome`)."""
    m = outcome.metrics
    if outcome.mode == "eval":
        return _eval_summary(m, outcome.run_dir)
    t = m.get("train", {})
    lines = [f"finished {m.get('recipe')} ({m.get('strategy')}) in {outcome.elapsed:.1f}s"]
    parts = [f"steps {t.get('steps')}"]
    if t.get("train_runtime") is not None:
        parts.append(f"train time {float(t['train_runtime']):.1f}s")
    if t.get("trained_tokens_per_second") is not None:
        parts.append(f"trained tokens/s {float(t['trained_tokens_per_second']):,.0f}")
    if t.get("padding_fraction") is not None:
        parts.append(f"padding {100 * float(t['padding_fraction']):.1f}%")
    if t.get("final_loss") is not None:
        parts.append(f"final loss {float(t['final_loss']):.4f}")
    if t.get("eval_loss") is not None:
        parts.append(f"eval loss {float(t['eval_loss']):.4f}")
    if t.get("eval_accuracy") is not None:
        parts.append(f"eval accuracy {float(t['eval_accuracy']):.3f}")
    lines.append(", ".join(parts))
    from sftkit.evaluation.verdict import summary_line

    lines.extend(summary_line(row) for row in m.get("eval", []))
    lines.append(f"saved: {t.get('model_dir') or outcome.run_dir / 'model'} ({t.get('saved', 'model')})")
    lines.append(f"run directory: {outcome.run_dir}")
    return lines


def _eval_summary(metrics: dict, out: Path) -> list[str]:
    from sftkit.evaluation.verdict import summary_line

    lines = [summary_line(row, labels=metrics.get("labels")) for row in metrics.get("eval", [])]
    lines.append(f"report: {Path(out) / 'report.html'}")
    return lines
