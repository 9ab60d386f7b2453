"""Run reports: ``report.html`` (self-contained), ``report.md`` and ``loss.png`` from a run directory.

``write_report(run_dir)`` reads ``metrics.json`` (required), ``train_log.jsonl`` and
``data_stats.json`` (optional), runs the health checks, asks plugins for extra sections
(``sftkit_report_sections``) and writes the files. Re-running it re-renders the same report.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import SftkitError

__all__ = ["write_report", "read_log", "load_run_files"]


def read_log(path: Path) -> list[dict]:
    """Entries of a train_log.jsonl (unreadable lines are skipped)."""
    from ..jsonl import read_jsonl

    return read_jsonl(path, on_error="skip") if Path(path).exists() else []


def _read_json(path: Path, default: Any = None) -> Any:
    if not path.exists():
        return default
    try:
        return json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except ValueError as exc:
        raise SftkitError(f"{path}: not valid JSON ({exc})", hint="re-run the evaluation to rewrite it") from None


def load_run_files(run_dir: Path) -> tuple[dict, list, dict]:
    """(metrics, log_history, data_stats) of a run directory."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise SftkitError(f"{run_dir}: no such run directory")
    metrics = _read_json(run_dir / "metrics.json")
    if not isinstance(metrics, dict):
        raise SftkitError(f"{run_dir}: no metrics.json — not a finished run directory",
                          hint="run `sftkit run RECIPE` or `sftkit eval RECIPE --model DIR` first")
    return metrics, read_log(run_dir / "train_log.jsonl"), _read_json(run_dir / "data_stats.json", {}) or {}


def _atomic_write(path: Path, text: str) -> None:
    from ..redaction import scrub

    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(scrub(text), encoding="utf-8", errors="replace")
    os.replace(tmp, path)


def _run_context(run_dir: Path, host: Any) -> Any:
    from ..api import RunContext
    from ..config import saved_config

    path = run_dir / "recipe.toml"
    return RunContext(config=saved_config(run_dir), recipe_path=path if path.exists() else None, base_dir=run_dir,
                      run_dir=run_dir, host=host)


def plugin_sections(run: Any, metrics: dict, host: Any) -> list[tuple[str, str]]:
    """Sections returned by every ``sftkit_report_sections`` implementation; a plugin that raises
    or returns garbage gets a section saying so (the report is still written)."""
    out: list[tuple[str, str]] = []
    if host is None:
        return out
    caller = host.pm.hook.sftkit_report_sections
    for impl in caller.get_hookimpls():
        args = {"run": run, "metrics": metrics}
        try:
            result = impl.function(*[args[a] for a in impl.argnames])
            out.extend([(str(title), str(md)) for title, md in result or []])  # all of a plugin's, or none
        except (Exception, SystemExit) as exc:
            out.append((f"Plugin {impl.plugin_name}: section failed",
                        f"The plugin's `sftkit_report_sections` raised {type(exc).__name__}: {exc}"))
    return out


FINDING_KEYS = ("level", "code", "title", "detail", "fix")


def plugin_findings(run: Any, metrics: dict, host: Any) -> list[dict]:
    """Findings from every ``sftkit_health_findings`` implementation; one that raises or returns
    something else than finding dicts gets a warning finding naming the plugin."""
    out: list[dict] = []
    if host is None:
        return out
    args = {"run": run, "metrics": metrics}
    for impl in host.pm.hook.sftkit_health_findings.get_hookimpls():
        try:
            found = list(impl.function(*[args[a] for a in impl.argnames]) or [])
            bad = [f for f in found if not isinstance(f, dict) or not set(FINDING_KEYS) <= set(f)
                   or f["level"] not in ("error", "warning", "info")]
            if bad:
                raise ValueError(f"{bad[0]!r} is not a finding (a dict with {', '.join(FINDING_KEYS)}; "
                                 "level error, warning or info)")
            out.extend({k: str(f[k]) for k in FINDING_KEYS} for f in found)
        except (Exception, SystemExit) as exc:
            out.append({"level": "warning", "code": f"plugin:{impl.plugin_name}",
                        "title": f"Plugin {impl.plugin_name}: health check failed",
                        "detail": f"its sftkit_health_findings raised {type(exc).__name__}: {exc}",
                        "fix": "fix or disable that plugin (SFTKIT_DISABLE_PLUGINS)"})
    return out


def hook_failure_findings(metrics: dict) -> list[dict]:
    """One warning finding per plugin whose lifecycle hooks raised during the run (``plugin_errors``
    in metrics.json): what the plugin would have added (findings, sections, numbers) may be missing."""
    import re

    by_plugin: dict[str, list[str]] = {}
    for line in metrics.get("plugin_errors") or []:
        found = re.match(r"plugin '([^']*)' failed in (\w+)", str(line))
        by_plugin.setdefault(found.group(1) if found else "?", []).append(str(line))
    return [{"level": "warning", "code": f"plugin_hooks:{name}", "title": f"Plugin {name}: hooks failed",
             "detail": "; ".join(lines) + ". What the plugin adds to the run and this report may be missing.",
             "fix": "fix or disable that plugin (SFTKIT_DISABLE_PLUGINS) and run again"}
            for name, lines in by_plugin.items()]


def write_report(run_dir, *, run: Any = None, host: Any = None, train_texts: list[str] | None = None) -> dict:
    """Write ``report.html``, ``report.md`` and ``loss.png`` into ``run_dir``.

    Returns ``{"html": Path, "md": Path, "png": Path | None, "plot_note": why no plot | None,
    "findings": [...], "sections": [titles]}``.
    ``run`` (a RunContext) and ``train_texts`` (training completions, for the copying check) are
    optional: without them the report is rebuilt from the files alone.
    """
    from . import plots, render

    run_dir = Path(run_dir)
    metrics, log, data_stats = load_run_files(run_dir)
    if host is None:
        host = getattr(run, "host", None)
    if host is None:
        from ..plugins import get_host

        try:
            host = get_host()
        except Exception:
            host = None
    if run is None:
        run = _run_context(run_dir, host)
    if train_texts is None and getattr(run, "data", None) is not None:
        train_texts = _train_texts(run.data)

    png = plot_note = None
    try:
        png = plots.loss_plot(log, run_dir / "loss.png")
    except ImportError as exc:  # the light core (no matplotlib): the report without its plot
        from ..stack import TRAIN_INSTALL, missing_module

        if missing_module(exc) is None:
            raise
        plot_note = f"no loss plot: it needs matplotlib, which is not installed ({TRAIN_INSTALL})"
    except Exception as exc:  # a plotting problem must not cost the report
        data_stats = {**data_stats, "_plot_error": str(exc)}
    findings = run_findings(metrics, log, data_stats, train_texts) + plugin_findings(run, metrics, host)
    from ..config import of_run

    ctx = {
        "metrics": metrics, "log": log, "data_stats": data_stats, "findings": findings,
        "png_name": png.name if png else None, "png_b64": render.png_base64(png),
        "model_name": of_run(run).model.name,
        "plugin_sections": plugin_sections(run, metrics, host),
    }
    md_path, html_path = run_dir / "report.md", run_dir / "report.html"
    _atomic_write(md_path, render.render_markdown(ctx))
    _atomic_write(html_path, render.render_html(ctx))
    return {"html": html_path, "md": md_path, "png": png, "plot_note": plot_note, "findings": findings,
            "sections": [t for t, _m, _h in render.sections(ctx)]}


def run_findings(metrics: dict, log: list, data_stats: dict, train_texts: list[str] | None = None) -> list[dict]:
    """sftkit's own health findings of a run (the report's and the model card's)."""
    from . import health

    samples = [s for row in metrics.get("eval") or [] if not row.get("pairwise")  # a judge's verdicts, not outputs
               for s in row.get("samples") or []]
    return health.analyze(log, {**data_stats, **(metrics.get("data") or {})}, samples,
                          eval_rows=metrics.get("eval") or [], train_texts=train_texts,
                          train_metrics=metrics.get("train")) + hook_failure_findings(metrics)


def _train_texts(bundle: Any, limit: int = 2000) -> list[str]:
    texts = []
    ds = getattr(bundle, "train", None)
    if ds is None:
        return texts
    for i, row in enumerate(ds):
        if i >= limit:
            break
        msgs = row.get("messages") if isinstance(row, dict) else None
        if msgs:
            texts.extend(m.get("content", "") for m in msgs if m.get("role") == "assistant")
        elif isinstance(row, dict) and row.get("completion"):
            texts.append(row["completion"])
        elif isinstance(row, dict) and row.get("chosen"):
            texts.append(row["chosen"])
        elif isinstance(row, dict) and isinstance(row.get("text"), str) and "label" not in row:
            texts.append(row["text"])
    return texts
