"""``sftkit run --each-holdout``: leave-one-cluster-out, one run per cluster, one aggregate table.

Each cluster named in ``[dataset] holdout_clusters`` is held out alone (the others are trained on);
each run gets its own directory ``OUT/holdout-<cluster>``; ``OUT/each_holdout.json`` and
``OUT/each_holdout.md`` list, per cluster and evaluator, the held-out items' n, base and tuned
values and the run's verdict. A run whose gate failed or whose evaluator errored still counts (its
metrics are written); other failures stop the series with their message.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..errors import SftkitError, UsageError

if TYPE_CHECKING:
    from ..config import Dataset


def clusters_of(dataset: Dataset) -> list[str]:
    """The clusters to hold out one at a time (the ``[dataset]`` slice's ``holdout_clusters``)."""
    clusters = [str(c) for c in (dataset.holdout_clusters or [])]
    if not clusters:
        raise UsageError("--each-holdout needs the clusters to hold out: set [dataset] holdout_clusters = [...]",
                         hint="list the task clusters; each is held out alone in its own run")
    return clusters


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "cluster"


def run_each(recipe_path: Any, overrides, dataset: Dataset, out: Path, run_one: Callable[..., Any]) -> dict:
    """Run once per held-out cluster with ``run_one(recipe_path, overrides, output=DIR)`` (returning a
    ``RunOutcome``) and write the aggregate table; returns it."""
    rows, runs = [], {}
    for cluster in clusters_of(dataset):
        target = out / f"holdout-{_slug(cluster)}"
        try:
            metrics = run_one(recipe_path, [*overrides, f"dataset.holdout_clusters=[{json.dumps(cluster)}]"],
                              output=target).metrics
        except SftkitError as err:
            outcome = getattr(err, "outcome", None)
            if outcome is None:
                raise
            metrics = outcome.metrics
        runs[cluster] = str(target)
        for row in metrics.get("eval") or []:
            held = (row.get("held_out_clusters") or {}).get("held_out") or {}
            n = held.get("n", ((row.get("stats") or {}).get("tuned") or {}).get("n"))
            rows.append({"cluster": cluster, "evaluator": row.get("label"), "metric": row.get("primary"), "n": n,
                         "base": held.get("base", row.get("base")), "tuned": held.get("tuned", row.get("tuned")),
                         "verdict": row.get("verdict")})
    table = {"runs": runs, "rows": rows}
    out.mkdir(parents=True, exist_ok=True)
    from ..redaction import scrub

    (out / "each_holdout.json").write_text(scrub(json.dumps(table, indent=2)) + "\n", encoding="utf-8")
    (out / "each_holdout.md").write_text(scrub(markdown(table)), encoding="utf-8")
    return table


def _fmt(x: Any) -> str:
    return "–" if x is None else (f"{x:.4g}" if isinstance(x, float) else str(x))


def markdown(table: dict) -> str:
    lines = ["# Leave-one-cluster-out", "", "| held-out cluster | evaluator | metric | n | base | tuned | verdict |",
             "|---|---|---|---|---|---|---|"]
    for r in table["rows"]:
        lines.append(f"| {r['cluster']} | {r['evaluator']} | {r['metric']} | {_fmt(r['n'])} | {_fmt(r['base'])} | "
                     f"{_fmt(r['tuned'])} | {r['verdict'] or '–'} |")
    return "\n".join(lines) + "\n"
