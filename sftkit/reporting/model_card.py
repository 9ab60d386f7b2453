"""The model card ``model/README.md`` every run writes, in the Hugging Face model-card format: YAML front
matter (base_model, library_name, tags, datasets as content fingerprints, model-index with each evaluator's
result) and Markdown (recipe, what was trained, verdicts with n and intervals, prompt-only baselines, gates,
health findings, contamination). Secret values are scrubbed like every file a run writes."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .render import (
    _md_table,
    contamination_text,
    fmt,
    fmt_delta,
    fmt_prompt_baselines,
    fmt_value,
    gate_text,
    side_names,
)

CARD = "README.md"


def data_fingerprints(lock: dict | None) -> list[str]:
    """``sha256:...`` of each training data file the run's lock recorded (its content, not its name)."""
    files = (lock or {}).get("data_files") or {}
    return [f"sha256:{v['sha256']}" for k, v in sorted(files.items())
            if isinstance(v, dict) and v.get("sha256") and not k.startswith("strategy")]


def front_matter(metrics: dict, recipe: dict, *, adapter: bool, fingerprints: list[str]) -> dict:
    """The card's metadata (the YAML front matter) as a dict."""
    strategy = metrics.get("strategy") or (recipe.get("strategy") or {}).get("name")
    kind = (recipe.get("adapter") or {}).get("kind")
    tags = ["sftkit", *(t for t in (strategy, kind if kind and kind != "none" else None) if t)]
    results = []
    for row in metrics.get("eval") or []:
        if row.get("tuned") is None or not isinstance(row.get("tuned"), (int, float)):
            continue
        results.append({"task": {"type": "text-generation"},
                        "dataset": {"name": str(row.get("label") or row.get("name")),
                                    "type": str(row.get("name") or row.get("label"))},
                        "metrics": [{"type": str(row.get("primary") or "score"), "value": row["tuned"],
                                     "name": f"{row.get('label')} ({row.get('primary')})",
                                     "verified": False}]})
    meta = {"base_model": (recipe.get("model") or {}).get("name"),
            "library_name": "peft" if adapter else "transformers",
            "pipeline_tag": "text-generation", "tags": tags}
    if fingerprints:
        meta["datasets"] = fingerprints
    if results:
        meta["model-index"] = [{"name": str(metrics.get("recipe") or "model"), "results": results}]
    return {k: v for k, v in meta.items() if v is not None}


def _yaml(meta: dict) -> str:
    try:
        import yaml

        return yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)
    except ImportError:  # JSON is YAML: one key per line, values as JSON
        return "".join(f"{k}: {json.dumps(v, ensure_ascii=False)}\n" for k, v in meta.items())


def _trained(metrics: dict, recipe: dict, data_stats: dict) -> str:
    train = metrics.get("train") or {}
    adapter = recipe.get("adapter") or {}
    tokens = (data_stats.get("tokens") or {}) if isinstance(data_stats.get("tokens"), dict) else {}
    facts = [("strategy", metrics.get("strategy")),
             ("adapter", ", ".join(f"{k} {fmt(adapter[k])}" for k in ("kind", "r", "alpha", "merge") if k in adapter)
              or "none (all weights)"),
             ("steps", train.get("steps")), ("trained tokens", tokens.get("trained_tokens")),
             ("training rows", (metrics.get("data") or {}).get("train_rows")),
             ("final loss", train.get("final_loss")), ("precision", (metrics.get("precision") or {}).get("name")),
             ("smoke run (tiny stand-in model)", True if metrics.get("smoke") else None)]
    return "\n".join(f"- **{k}**: {fmt(v)}" for k, v in facts if v is not None)


def _verdicts(metrics: dict) -> str:
    rows = metrics.get("eval") or []
    if not rows:
        return "_No [[eval]] tables in the recipe: nothing was measured._"
    base, tuned = side_names(metrics)
    table = [[str(r.get("label", "")), str(r.get("primary", "")), fmt_value(r, "base"), fmt_value(r, "tuned"),
              fmt_delta(r), str(r.get("verdict", "–")), fmt_prompt_baselines(r), gate_text(r) or "–"] for r in rows]
    return ("Values with their 95% interval and n; the verdict comes from a paired test.\n\n"
            + _md_table(["evaluator", "metric", base, tuned, "delta", "verdict", "prompt-only baselines", "gate"],
                        table))


def render_card(metrics: dict, recipe: dict, *, adapter: bool = False, fingerprints: list[str] = (),
                findings: list[dict] = (), data_stats: dict | None = None) -> str:
    """The card's text (front matter + Markdown), secrets not yet scrubbed."""
    meta = front_matter(metrics, recipe, adapter=adapter, fingerprints=list(fingerprints))
    about = recipe.get("recipe") or {}
    gates = metrics.get("gates") or {}
    gate_line = ("passed" if gates.get("passed", True) else "FAILED: " + "; ".join(gates.get("failures") or [])) \
        if metrics.get("eval") else "no gates (nothing evaluated)"
    health = "\n".join(f"- **{f.get('level')}**: {f.get('title')} — {f.get('detail')}" for f in findings) \
        or "No findings."
    parts = [f"---\n{_yaml(meta)}---\n",
             f"# {about.get('name') or metrics.get('recipe')}\n",
             (about.get("description") or "") + "\n",
             "Trained with sftkit from the recipe saved in the run directory (`recipe.toml`, beside this "
             "`model/`); the full report is the run's `report.html`.\n",
             "## Recipe\n",
             f"- **base model**: `{meta.get('base_model')}`\n- **recipe**: {metrics.get('recipe')}\n"
             f"- **seed**: {about.get('seed', '–')}\n- **training data (content fingerprints)**: "
             + (", ".join(f"`{f}`" for f in fingerprints) or "–") + "\n",
             "## What was trained\n", _trained(metrics, recipe, data_stats or {}) + "\n",
             "## Evaluation: before and after\n", _verdicts(metrics) + "\n",
             "## Gates\n", gate_line + "\n",
             "## Health findings\n", health + "\n",
             "## Contamination\n", contamination_text(metrics.get("eval") or []) + "\n"]
    return "\n".join(parts)


def write_model_card(model_dir: Path, metrics: dict, recipe: dict, *, lock: dict | None = None,
                     findings: list[dict] = (), data_stats: dict | None = None) -> Path | None:
    """Write ``model_dir/README.md`` atomically, secrets scrubbed; None when there is no model directory."""
    from ..redaction import scrub

    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return None
    text = render_card(metrics, recipe, adapter=(model_dir / "adapter_config.json").exists(),
                       fingerprints=data_fingerprints(lock), findings=findings, data_stats=data_stats)
    target = model_dir / CARD
    tmp = target.with_name(f".{CARD}.{os.getpid()}.partial")
    tmp.write_text(scrub(text), encoding="utf-8")
    os.replace(tmp, target)
    return target


def write_run_card(run_dir: Path, recipe: dict, say=None) -> Path | None:
    """The card of a finished run directory, from its metrics.json, data_stats.json, train_log.jsonl and
    sftkit.lock.json (health findings as the report computes them). A card that cannot be written is a
    warning through ``say``, never a lost run."""
    from . import load_run_files, run_findings

    run_dir = Path(run_dir)
    try:
        metrics, log, data_stats = load_run_files(run_dir)
        from ..run.lockfile import read_lock

        return write_model_card(run_dir / "model", metrics, recipe, lock=read_lock(run_dir), data_stats=data_stats,
                                findings=run_findings(metrics, log, data_stats))
    except Exception as exc:  # the run finished; its card is a convenience
        if say is None:
            raise
        say(f"warning: the model card could not be written: {type(exc).__name__}: {exc}")
        return None
