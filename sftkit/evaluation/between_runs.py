"""Two finished runs (or evaluations) judged against each other, evaluator by evaluator.

Each evaluator both runs have is judged on the items it scored in both (``row["items"]``,
:mod:`.itemset`) with the verdict's own statistics (:func:`.verdict.judge`: paired test, intervals,
collapse, regressed items), run A standing where the base model stands in a run and run B where
the tuned one does. Runs whose items for an evaluator differ by content are not compared.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import SftkitError, UsageError

SAID = {"better": "B better", "worse": "B worse", "no significant change": "no significant difference"}


def _rows(run_dir: Path) -> tuple[dict, dict]:
    from ..reporting import load_run_files
    from ..run import rundir

    if rundir.state(run_dir) == "unfinished":
        raise UsageError("this run is unfinished (no COMPLETE file): its evaluation is partial or missing",
                         where=str(run_dir), hint="finish it with `sftkit run RECIPE --output DIR --resume`")
    try:
        metrics = load_run_files(run_dir)[0]
    except SftkitError as err:
        raise UsageError(err.message, where=err.where, hint=err.hint) from None
    return metrics, {str(r.get("label")): r for r in metrics.get("eval") or [] if isinstance(r, dict)}


def _settings(run_dir: Path) -> dict:
    """B's ``[verdict]`` settings and seed (the defaults when its recipe.toml cannot be read)."""
    from ..reading import tomllib
    from .verdict import settings

    try:
        recipe = tomllib.loads((Path(run_dir) / "recipe.toml").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        recipe = {}
    try:
        return settings(recipe)
    except Exception:
        return settings({})


def _same_items(label: str, a: dict, b: dict) -> None:
    if a.get("primary") != b.get("primary"):
        raise UsageError(f"evaluator {label!r} measures {a.get('primary')!r} in run A but {b.get('primary')!r} in run B",
                         hint="compare runs of the same [[eval]] tables")
    ia, ib = a.get("items") or {}, b.get("items") or {}
    if ia.get("digest") != ib.get("digest"):
        raise UsageError(f"evaluator {label!r} scored different items in the two runs (content hash "
                         f"{str(ia.get('digest'))[:12]} with {ia.get('n', 0)} items vs {str(ib.get('digest'))[:12]} "
                         f"with {ib.get('n', 0)})",
                         hint="compare runs evaluated on the same items: the same [[eval]] files, eval split, "
                              "limit and seed")


def _errored(row: dict) -> str | None:
    errors = row.get("errors") or {}
    if errors.get("tuned") or row.get("verdict") == "error" and row.get("tuned") is None:
        return errors.get("tuned") or row.get("reason") or "no result"
    return None


def compare_runs(run_a: Path, run_b: Path, *, max_regression: float | None = None) -> dict:
    """``{"a", "b", "rows", "only_a", "only_b"}``; each row: label, primary, values, the verdict
    (:data:`SAID`), reason, stats, regressed items and ``gate`` (``passed``, ``failures``). Raises
    :class:`UsageError` for runs that cannot be compared (missing, unfinished, different items)."""
    from .verdict import judge

    _, rows_a = _rows(Path(run_a))
    _, rows_b = _rows(Path(run_b))
    common = [label for label in rows_b if label in rows_a]
    if not common:
        raise UsageError("the two runs have no evaluator in common", where=f"{run_a} vs {run_b}",
                         hint="compare runs of the same recipe's [[eval]] tables")
    cfg = _settings(Path(run_b))
    out = []
    for label in common:
        a, b = rows_a[label], rows_b[label]
        hib = b.get("higher_is_better")
        why = _errored(a) or _errored(b)
        if why:
            out.append({"label": label, "primary": b.get("primary"), "a": a.get("tuned"), "b": b.get("tuned"),
                        "verdict": "error", "reason": f"no result to compare ({why})", "regressions": [],
                        "regression_count": 0, "gate": {"passed": False, "failures": [f"{label}: evaluator error"]}})
            continue
        _same_items(label, a, b)
        ia, ib = a["items"], b["items"]
        found = judge(a.get("tuned"), b.get("tuned"), hib, base=ia["items"], tuned=ib["items"], scale=ia.get("scale"),
                      cfg=cfg)
        failures = []
        if found["verdict"] == "worse":
            failures.append(f"{label}.{b.get('primary')}: B is significantly worse ({found['reason']})")
        if max_regression is not None and hib is not None and a.get("tuned") is not None and b.get("tuned") is not None:
            regression = (a["tuned"] - b["tuned"]) if hib else (b["tuned"] - a["tuned"])
            if regression > max_regression:
                failures.append(f"{label}.{b.get('primary')} regressed by {regression:.4g} ({a['tuned']:.4g} -> "
                                f"{b['tuned']:.4g}) > max_regression {max_regression:g}")
        out.append({"label": label, "primary": b.get("primary"), "a": a.get("tuned"), "b": b.get("tuned"),
                    "higher_is_better": hib, "verdict": SAID.get(found["verdict"], found["verdict"]),
                    "reason": found["reason"], "stats": found["stats"], "regressions": found["regressions"],
                    "regression_count": found["regression_count"],
                    "gate": {"passed": not failures, "failures": failures}})
    return {"a": str(run_a), "b": str(run_b), "rows": out,
            "only_a": [label for label in rows_a if label not in rows_b],
            "only_b": [label for label in rows_b if label not in rows_a]}


def summary_lines(result: dict) -> list[str]:
    """The console lines: one per evaluator (values with intervals, verdict, why), the regressed items."""
    lines = []
    for row in result["rows"]:
        st = row.get("stats") or {}

        def side(key: str, value) -> str:
            iv = st.get("base" if key == "a" else "tuned") or {}
            if value is None:
                return "–"
            return f"{value:.4g}" + (f" [{iv['low']:.3g}, {iv['high']:.3g}]" if iv.get("low") is not None else "")

        n = (st.get("tuned") or {}).get("n")
        lines.append(f"eval {row['label']} ({row['primary']}{f', n={n}' if n else ''}): A {side('a', row['a'])} → "
                     f"B {side('b', row['b'])}: {row['verdict'].upper()} ({row['reason']})")
        if row.get("regression_count"):
            lines.append(f"  regressed items (right in A, wrong in B): {row['regression_count']}")
            for item in row["regressions"]:
                expected = f" expected {item['expected']!r};" if item.get("expected") is not None else ""
                lines.append(f"  - {str(item['prompt'])[:120]!r}:{expected} A {str(item['base'])[:80]!r}, "
                             f"B {str(item['tuned'])[:80]!r}")
    for side, labels in (("A", result["only_a"]), ("B", result["only_b"])):
        if labels:
            lines.append(f"not compared (only in run {side}): {', '.join(labels)}")
    return lines
