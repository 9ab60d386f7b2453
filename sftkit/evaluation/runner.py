"""Run a recipe's [[eval]] tables on a model, and compare base and tuned results into report rows."""

from __future__ import annotations

import math
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..api import EvalResult
from ..errors import SftkitError
from .baselines import NotPrompted, PromptedTarget
from .baselines import specs as baseline_specs
from .contamination import check_items, train_index
from .gates import check_gate, gate_failures, gates_metric
from .verdict import cluster_summary, judge, settings, versus_prompts

if TYPE_CHECKING:
    from ..config import EvalEntry

@dataclass
class EvalSpec:
    """One [[eval]] table: its label, evaluator name, options and the created evaluator (or the error)."""

    label: str
    name: str
    table: EvalEntry  # the [[eval]] slice (gates, label); the evaluator gets ``options`` only
    options: dict
    evaluator: Any = None
    error: str | None = None
    origin: str = "?"  # the plugin that registered the evaluator

    @property
    def who(self) -> str:
        """``evaluator 'name' from plugin 'origin'``, for messages that must blame the right plugin."""
        return f"evaluator {self.name!r} from plugin {self.origin!r}"


def eval_specs(run: Any) -> list[EvalSpec]:
    """The run's [[eval]] tables with their evaluators created once (kept on ``run.evaluators``, so
    the base and the tuned model are scored by the same evaluator objects)."""
    cached = getattr(run, "evaluators", None)
    if cached is not None:
        return cached
    host = getattr(run, "host", None)
    if host is None:
        from ..plugins import get_host

        host = get_host()
    specs: list[EvalSpec] = []
    seen: dict[str, int] = {}
    from ..config import factory_options, of_run

    for entry in of_run(run).eval:
        name = str(entry.name or "?")
        label = str(entry.label or name)
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 1:
            label = f"{label}#{seen[label]}"
        options = factory_options("eval", entry)
        spec = EvalSpec(label, name, entry, options)
        try:
            component = host.registry.get("evaluators", name)
            spec.origin = component.origin
            spec.evaluator = component.create(options)
        except SftkitError as exc:
            spec.error = str(exc)
        except Exception as exc:
            spec.error = f"{type(exc).__name__}: {exc}"
        specs.append(spec)
    if hasattr(run, "evaluators"):
        run.evaluators = specs
    return specs


def _say(run: Any, text: str) -> None:
    console = getattr(run, "console", None)
    if callable(console):
        console(text)


def evaluate_one(run: Any, spec: EvalSpec, target: Any) -> EvalResult:
    """One [[eval]] table on ``target``. An evaluator that raises becomes an ``EvalResult`` with
    ``error`` set (:class:`~.baselines.NotPrompted` passes through: the caller decides)."""
    if spec.evaluator is None:
        return EvalResult(metrics={}, primary="", error=spec.error)
    _say(run, f"eval {spec.label} on {getattr(target, 'label', 'model')}")
    try:
        result = spec.evaluator.evaluate(target, run)
        if not isinstance(result, EvalResult):
            raise TypeError(f"evaluate() returned {type(result).__name__}, expected sftkit.api.EvalResult")
    except NotPrompted:
        raise
    except SftkitError as exc:
        result = EvalResult(metrics={}, primary=getattr(spec.evaluator, "primary", ""), error=str(exc))
    except Exception as exc:
        tb = traceback.extract_tb(exc.__traceback__)[-1:]
        where = f" at {tb[0].filename.rsplit('/', 1)[-1]}:{tb[0].lineno}" if tb else ""
        result = EvalResult(metrics={}, primary=getattr(spec.evaluator, "primary", ""),
                            error=f"{spec.who} raised {type(exc).__name__}: {exc}{where}")
    result = checked_result(spec, result)
    if result.error:
        _say(run, f"eval {spec.label} on {getattr(target, 'label', 'model')} failed: {result.error}")
    return result


def result_problem(result: EvalResult, primary: str) -> str | None:
    """Why a result without ``error`` still has no usable primary value (the metric missing, not a
    number, NaN or infinite), or None. A result like that is an evaluator failure, never a pass."""
    if not primary:
        return "returned no primary metric name (set EvalResult.primary or the evaluator's primary)"
    metrics = result.metrics if isinstance(result.metrics, dict) else {}
    if primary not in metrics:
        got = ", ".join(map(str, metrics)) or "none"
        return f"returned no value for its primary metric {primary!r} (metrics returned: {got})"
    value = metrics[primary]
    try:
        finite = not isinstance(value, (bool, str)) and math.isfinite(float(value))
    except (TypeError, ValueError):
        finite = False
    if not finite:
        return f"returned {value!r} for its primary metric {primary!r}: it must be a finite number"
    return None


def checked_result(spec: EvalSpec, result: EvalResult) -> EvalResult:
    """``result``, or a failed one naming the evaluator and its plugin when its primary value is unusable."""
    if result.error:
        return result
    primary = result.primary or getattr(spec.evaluator, "primary", "")
    problem = result_problem(result, primary)
    if problem is None:
        return result
    return EvalResult(metrics=dict(result.metrics or {}), primary=primary, samples=result.samples,
                      details=result.details, error=f"{spec.who} {problem}")


def evaluate_all(run: Any, target: Any) -> dict[str, EvalResult]:
    """Every [[eval]] table on ``target``, keyed by label. An evaluator that raises becomes an
    ``EvalResult`` with ``error`` set; the others still run."""
    return {spec.label: evaluate_one(run, spec, target) for spec in eval_specs(run)}


def gated_base_errors(run: Any, base: dict[str, EvalResult]) -> list[str]:
    """``evaluator LABEL failed on the base model: why`` for every gated [[eval]] table whose base
    result errored: its gate cannot be judged, so a run should stop before training."""
    out = []
    for spec in eval_specs(run):
        result = (base or {}).get(spec.label)
        if result is not None and result.error and gates_metric(spec.table, spec.evaluator):
            out.append(f"evaluator {spec.label} failed on the base model: {result.error}")
    return out


NOT_APPLICABLE = "not_applicable"


def evaluate_baselines(run: Any, target: Any, baselines: list) -> dict[str, dict[str, EvalResult]]:
    """Every [[eval]] table on the base model's ``target`` once per prompt-only baseline
    (:mod:`.baselines`): ``{baseline label: {eval label: EvalResult}}``. A result that a prompt
    cannot change has ``details["not_applicable"]`` (and cost no forward pass); pairwise evaluators
    (which judge base against tuned) and metrics without a better direction (``samples``) are not run."""
    out: dict[str, dict[str, EvalResult]] = {}
    for baseline in baselines:
        results = out[baseline.label] = {}
        for spec in eval_specs(run):
            primary = getattr(spec.evaluator, "primary", "")
            why = None
            if spec.evaluator is not None and getattr(spec.evaluator, "pairwise", False):
                why = "a pairwise evaluator judges base against tuned"
            elif spec.evaluator is not None and getattr(spec.evaluator, "higher_is_better", True) is None:
                why = "the metric has no better direction, so there is no verdict to compare with"
            if why:
                results[spec.label] = EvalResult(metrics={}, primary=primary, details={NOT_APPLICABLE: why})
                continue
            try:
                results[spec.label] = evaluate_one(run, spec, PromptedTarget(target, baseline))
            except NotPrompted as exc:
                why = f"the evaluator does not prompt a chat model (it calls {exc} without a rendered prompt)"
                results[spec.label] = EvalResult(metrics={}, primary=primary, details={NOT_APPLICABLE: why})
    return out


def jsonable(value: Any) -> Any:
    """Plain JSON values: non-finite floats become None, tuples lists, unknown objects strings."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    try:
        return jsonable(float(value))  # numpy / torch scalars
    except (TypeError, ValueError):
        return str(value)


def _num(x: Any) -> float | None:
    if isinstance(x, bool):
        return float(x)
    if isinstance(x, (int, float)):
        return float(x) if math.isfinite(float(x)) else None
    return None


def _side_by_side(base: EvalResult | None, tuned: EvalResult | None) -> list[dict]:
    bs = list(base.samples) if base is not None else []
    ts = list(tuned.samples) if tuned is not None else []
    out = []
    for i in range(max(len(bs), len(ts))):
        b = bs[i] if i < len(bs) else {}
        t = ts[i] if i < len(ts) else {}
        row = {"prompt": t.get("prompt", b.get("prompt", ""))}
        if "expected" in t or "expected" in b:
            row["expected"] = t.get("expected", b.get("expected"))
        if b:
            row["base"] = b.get("output")
            if "score" in b:
                row["base_score"] = b["score"]
        if t:
            row["tuned"] = t.get("output")
            if "score" in t:
                row["tuned_score"] = t["score"]
        for key in ("reason", "cluster", "invalid_utf8"):
            if key in t:
                row[key] = t[key]
        out.append(row)
    return out


def _prompt_results(spec: EvalSpec, primary: str, baselines: dict | None, run: Any) -> dict:
    """This table's results under each prompt-only baseline, as :func:`.verdict.versus_prompts` takes them."""
    from ..config import of_run

    kinds = {label: table.kind for label, table in baseline_specs(of_run(run).baseline)}
    out = {}
    for label, results in (baselines or {}).items():
        r = results.get(spec.label)
        if r is None:
            continue
        why = (r.details or {}).get(NOT_APPLICABLE)
        if why or r.error:
            out[label] = {"kind": kinds.get(label), **({"not_applicable": why} if why else {"error": r.error})}
        else:
            out[label] = {"kind": kinds.get(label), "value": _num(r.metrics.get(primary)), "items": _items(r)}
    return out


def _build_row(spec: EvalSpec, base: EvalResult | None, tuned: EvalResult | None, run: Any,
               baselines: dict | None = None) -> dict:
    ev = spec.evaluator
    hib = getattr(ev, "higher_is_better", True) if ev is not None else True
    errors = {"base": base.error if base is not None else None, "tuned": tuned.error if tuned is not None else None}
    if ev is not None and getattr(ev, "pairwise", False):
        try:
            res = ev.compare(base, tuned, run)
            if not isinstance(res, EvalResult):
                raise TypeError(f"compare() returned {type(res).__name__}, expected sftkit.api.EvalResult")
        except Exception as exc:
            res = EvalResult(metrics={}, primary=getattr(ev, "primary", ""),
                             error=f"{spec.who} raised {type(exc).__name__} in compare(): {exc}")
        res = checked_result(spec, res)
        primary = res.primary or getattr(ev, "primary", "")
        metrics = {k: {"base": None, "tuned": _num(v), "delta": None} for k, v in res.metrics.items()}
        errors = {"base": None, "tuned": res.error}
        samples = res.samples
        details = {"tuned": res.details}
        base_value, tuned_value = None, _num(res.metrics.get(primary))
    else:
        primary = (tuned.primary if tuned is not None and tuned.primary else None) or \
                  (base.primary if base is not None and base.primary else None) or getattr(ev, "primary", "")
        keys = list(dict.fromkeys([*(tuned.metrics if tuned else {}), *(base.metrics if base else {})]))
        metrics = {}
        for k in keys:
            b = _num(base.metrics.get(k)) if base is not None else None
            t = _num(tuned.metrics.get(k)) if tuned is not None else None
            metrics[k] = {"base": b, "tuned": t, "delta": (t - b) if b is not None and t is not None else None}
        samples = _side_by_side(base, tuned)
        details = {side: r.details for side, r in (("base", base), ("tuned", tuned)) if r is not None and r.details}
        base_value = metrics.get(primary, {}).get("base")
        tuned_value = metrics.get(primary, {}).get("tuned")
    delta = tuned_value - base_value if base_value is not None and tuned_value is not None else None
    from ..config import of_run

    cfg = settings(of_run(run))
    if row_pairwise := bool(getattr(ev, "pairwise", False)):
        # a preference of tuned over base: tested against a tie (0.5) on every item
        won = _items(res)
        found = judge(0.5 if won else None, tuned_value, hib, base=[{**i, "score": 0.5} for i in won], tuned=won,
                      scale=None, cfg=cfg, error=errors.get("tuned"))
    else:
        found = judge(base_value, tuned_value, hib, base=_items(base), tuned=_items(tuned),
                      scale=getattr(ev, "stat_scale", None), cfg=cfg, error=errors.get("tuned"))
        found = versus_prompts(found, _prompt_results(spec, primary, baselines, run), tuned_value=tuned_value,
                               tuned=_items(tuned), higher_is_better=hib, scale=getattr(ev, "stat_scale", None),
                               cfg=cfg)
    found["contamination"] = check_items(train_index(run), _items(tuned) or _items(base))
    held = ((getattr(getattr(run, "data", None), "stats", None) or {}).get("held_out") or {})
    holdout = held.get("clusters")  # what the data stage held out
    if holdout and not row_pairwise:
        found["held_out_clusters"] = cluster_summary(_items(base), _items(tuned), holdout)
    # "improved" is the tested verdict, never the sign of the difference
    improved = {"better": True, "worse": False}.get(found["verdict"])
    from .itemset import record

    scored = won if row_pairwise else _items(tuned)  # what `sftkit compare` pairs across runs
    row = {
        "label": spec.label, "name": spec.name, "primary": primary,
        "base": base_value, "tuned": tuned_value, "delta": delta,
        "higher_is_better": hib, "improved": improved, "pairwise": row_pairwise,
        "checks_format": bool(getattr(ev, "checks_format", False)),
        **found,
        "metrics": metrics, "errors": errors, "details": details, "samples": samples,
        "items": record(scored, scale=None if row_pairwise else getattr(ev, "stat_scale", None),
                        eval_split=getattr(getattr(run, "data", None), "eval", None)),
    }
    row["gate"] = check_gate(row, spec.table, ev)
    return jsonable(row)


def _items(result: EvalResult | None) -> list[dict]:
    if result is None or result.error:
        return []
    return list(getattr(result, "items", None) or [])


def compare(run: Any, base: dict[str, EvalResult] | None, tuned: dict[str, EvalResult],
            baselines: dict[str, dict[str, EvalResult]] | None = None) -> list[dict]:
    """One row per [[eval]] table: base and tuned primary values, delta, all metrics, samples side by
    side and the gate verdict. ``base`` may be None/{} (no base model evaluated); ``baselines`` are
    :func:`evaluate_baselines`' results (the row's ``prompt_baselines`` and ``best_prompt``)."""
    base = base or {}
    rows = []
    for spec in eval_specs(run):
        rows.append(_build_row(spec, base.get(spec.label), tuned.get(spec.label), run, baselines))
    return rows


def run_evaluation(run: Any, tuned_target: Any, base_target: Any = None) -> dict:
    """evaluate_all on base (if given) and tuned, compare, and gates: ``{"eval": rows, "gates": {...}}``."""
    base = evaluate_all(run, base_target) if base_target is not None else {}
    tuned = evaluate_all(run, tuned_target)
    rows = compare(run, base, tuned)
    failures = gate_failures(rows)
    return {"eval": rows, "gates": {"passed": not failures, "failures": failures}}
