"""The verdict of one evaluator: is the tuned model better, worse, no different, or collapsed?

Built from the per-item records evaluators return in ``EvalResult.items`` (``score``, optional
``weight``, ``answer``, ``expected``, ``options``, ``prompt``), for base and tuned on the same items:

- ``stats``: n and a 95% interval per side (:mod:`.stats`), the paired test and the interval of the
  difference;
- ``baselines``: trivial baselines a model must beat — always the most frequent expected answer
  (majority class / most frequent letter) and chance (1 / number of options);
- ``answers``: the most frequent answer's share and the share of distinct answers; a model whose
  answers are one answer for more than ``collapse_share`` of the items is *collapsed*;
- ``verdict``: one of :data:`VERDICTS`. "better" / "worse" only when the paired test is significant
  at ``alpha``; "better" also needs a tuned value above every trivial baseline and no collapse.
- ``evidence``: n and, when there is too little to decide anything (:func:`shortfall`: fewer than
  :data:`MIN_EVIDENCE_ITEMS` items, or an interval of zero width on items that differ or that
  cannot be computed), why: the verdict is then "not enough evidence" and a gate on the row is not
  decided (:func:`sftkit.evaluation.gates.check_gate` fails it with that reason).
- ``prompt_baselines`` / ``best_prompt`` (:func:`versus_prompts`): the base model prompted without
  training (``[[baseline]]``); "better" also needs the tuned model significantly above the best one.
- ``regressions``: items the base model got right and the tuned one got wrong, with both answers.

Rule: a claim of change is a tested statement; without per-item scores there is no claim.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from . import stats as S

VERDICTS = ("better", "worse", "no significant change", "collapsed", "no better than baseline",
            "not enough evidence", "not tested", "error")
MIN_EVIDENCE_ITEMS = 6
"""The fewest items a verdict (or a gate, or a collapse finding) is given on: the smallest n at which
the paired test can ever reach p < 0.05 — exact McNemar with every item changed the same way has
p = 2 / 2**n, 0.031 on 6 items and 0.0625 on 5 — and enough items for a 95% interval to mean
something. Below it every verdict is "not enough evidence"."""
MAX_REGRESSIONS = 20


def settings(recipe) -> dict:
    """The ``[verdict]`` slice (defaults filled) plus the recipe's seed; ``recipe``: a
    :class:`sftkit.config.Config` or a recipe dict."""
    from ..config import Config, resolve

    config = recipe if isinstance(recipe, Config) else resolve(recipe or {})
    return {**config.verdict.as_dict(), "seed": config.seed}


def _items(result: Any) -> list[dict]:
    if result is None or getattr(result, "error", None):
        return []
    return [i for i in (getattr(result, "items", None) or []) if isinstance(i, dict) and _finite(i.get("score"))]


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(float(x))


def _scores(items: list[dict]) -> tuple[list[float], list[float] | None]:
    scores = [float(i["score"]) for i in items]
    weights = [float(i.get("weight", 1.0)) for i in items] if any("weight" in i for i in items) else None
    return scores, weights


def _scale(x: float | None, scale: str | None) -> float | None:
    if x is None or scale != "exp":
        return x
    try:
        return math.exp(x)
    except OverflowError:
        return float("inf")


def side_stats(items: list[dict], value: float | None, *, scale: str | None, seed: int) -> dict | None:
    """n and the 95% interval of one model's result, or None when the items do not reproduce
    ``value`` (then the evaluator's metric is not the mean of its item scores: no interval is claimed)."""
    if not items:
        return None
    scores, weights = _scores(items)
    mean = _scale(S.weighted_mean(scores, weights), scale)
    if value is None or mean is None or not math.isclose(mean, value, rel_tol=1e-6, abs_tol=1e-9):
        return None
    iv = S.interval(scores, weights, seed=seed)
    return {**iv, "low": _scale(iv["low"], scale), "high": _scale(iv["high"], scale)}


def shortfall(items: list[dict], stats: dict | None, side: str = "tuned") -> str | None:
    """Why ``items`` (one model's per-item records) are too little to decide on, or None: fewer than
    :data:`MIN_EVIDENCE_ITEMS`, or a 95% interval (``stats``, :func:`side_stats`) that could not be
    computed or has zero width although the scores differ. No items at all is not a shortfall: the
    evaluator gave no per-item scores, so no verdict is claimed ("not tested")."""
    n = len(items)
    if n == 0:
        return None
    if n < MIN_EVIDENCE_ITEMS:
        return f"n={n} below the minimum of {MIN_EVIDENCE_ITEMS} items; add evaluation rows"
    if stats is None:  # the items do not reproduce the metric: no interval is claimed at all
        return None
    low, high = stats.get("low"), stats.get("high")
    if not (_finite(low) and _finite(high)):
        return f"the 95% interval of the {side} result could not be computed on n={n} items; add evaluation rows"
    if high - low <= 0 and len({float(i["score"]) for i in items}) > 1:
        return (f"the 95% interval of the {side} result has zero width ([{low:.4g}, {high:.4g}]) on n={n} items "
                "that differ; add evaluation rows")
    return None


def answer_profile(items: list[dict]) -> dict | None:
    """``{"top", "top_share", "distinct_share", "n"}`` of the items' answers (None without answers)."""
    answers = [str(i["answer"]) for i in items if i.get("answer") is not None]
    if not answers:
        return None
    top, count = Counter(answers).most_common(1)[0]
    return {"top": top[:80], "top_share": count / len(answers), "distinct_share": len(set(answers)) / len(answers),
            "n": len(answers)}


def trivial_baselines(items: list[dict]) -> dict:
    """Majority (always the most frequent expected answer) and chance (mean of 1/options), where known."""
    out: dict = {}
    expected = [str(i["expected"]).strip().lower() for i in items if i.get("expected") is not None]
    if expected and len(expected) == len(items) and S.is_binary([float(i["score"]) for i in items]):
        top, count = Counter(expected).most_common(1)[0]
        if count > 1:
            out["majority"] = {"answer": top[:80], "value": count / len(expected)}
    options = [i.get("options") for i in items]
    if items and all(isinstance(o, int) and o > 0 for o in options):
        out["chance"] = {"value": sum(1 / o for o in options) / len(options)}
    return out


def _paired(base: list[dict], tuned: list[dict], *, scale: str | None, seed: int) -> dict | None:
    if not base or len(base) != len(tuned):
        return None
    if any(b.get("prompt") != t.get("prompt") for b, t in zip(base, tuned)):
        return None  # not the same items in the same order
    bs, bw = _scores(base)
    ts, _tw = _scores(tuned)
    test = S.paired_test(bs, ts, bw, seed=seed)
    if scale == "exp":  # the test runs on the log scale; its difference interval is not the metric's
        test.pop("delta_low", None)
        test.pop("delta_high", None)
    return test


def regressions(base: list[dict], tuned: list[dict]) -> list[dict]:
    """Items the base model got right (score 1) and the tuned one got wrong (score 0), both answers."""
    if not base or len(base) != len(tuned):
        return []
    out = []
    for b, t in zip(base, tuned):
        if b.get("prompt") != t.get("prompt"):
            return []
        if float(b["score"]) == 1.0 and float(t["score"]) == 0.0:
            out.append({"prompt": str(b.get("prompt", ""))[:500], "expected": b.get("expected"),
                        "base": b.get("answer"), "tuned": t.get("answer")})
    return out


def _fmt(x: float | None) -> str:
    return "–" if x is None else f"{x:.4g}"


def _p(p: float) -> str:
    return "p<0.001" if p < 0.001 else f"p={p:.3g}"


def judge(base_value: float | None, tuned_value: float | None, higher_is_better: bool | None, *,
          base: list[dict], tuned: list[dict], scale: str | None, cfg: dict, error: str | None = None) -> dict:
    """Everything the verdict needs for one row: ``{"verdict", "reason", "stats", "evidence",
    "baselines", "answers", "regressions"}`` (see the module docstring)."""
    seed, alpha = cfg["seed"], float(cfg["alpha"])
    st = {"alpha": alpha, "base": side_stats(base, base_value, scale=scale, seed=seed),
          "tuned": side_stats(tuned, tuned_value, scale=scale, seed=seed)}
    paired = _paired(base, tuned, scale=scale, seed=seed) if st["base"] and st["tuned"] else None
    if paired:
        st["paired"] = paired
    answers = {side: prof for side, prof in (("base", answer_profile(base)), ("tuned", answer_profile(tuned))) if prof}
    for prof in answers.values():
        prof["collapsed"] = prof["n"] >= MIN_EVIDENCE_ITEMS and prof["top_share"] > float(cfg["collapse_share"])
    baselines = trivial_baselines(tuned or base)
    out = {"stats": st, "baselines": baselines, "answers": answers, "regressions": regressions(base, tuned)[:MAX_REGRESSIONS],
           "regression_count": len(regressions(base, tuned))}
    n = (st["tuned"] or {}).get("n")
    short = shortfall(tuned, st["tuned"]) or shortfall(base, st["base"], "base")
    out["evidence"] = ({"n": len(tuned or base), "minimum": MIN_EVIDENCE_ITEMS, "enough": short is None,
                        **({"shortfall": short} if short else {})} if tuned or base else None)
    change = f"{_fmt(base_value)} → {_fmt(tuned_value)}"
    tuned_prof = answers.get("tuned") or {}
    best = max((b["value"] for b in baselines.values()), default=None)
    if error or tuned_value is None:
        verdict, reason = "error", f"no tuned result ({error or 'no value'})"
    elif short and higher_is_better is not None:
        verdict, reason = "not enough evidence", short
    elif tuned_prof.get("collapsed"):
        verdict = "collapsed"
        reason = (f"the tuned model gives one answer ({tuned_prof['top']!r}) for {tuned_prof['top_share']:.0%} "
                  f"of {tuned_prof['n']} items")
        if best is not None:
            reason += f"; trivial baseline {_fmt(best)}"
    elif base_value is None:
        verdict, reason = "not tested", "no base model result to compare with"
    elif higher_is_better is None:
        verdict, reason = "not tested", f"{change}: the metric has no better direction"
    elif not paired:
        verdict = "not tested"
        reason = f"{change}: no per-item scores on the same items, so no significance test"
    else:
        p = paired["p"]
        ci = ""
        if paired.get("delta_low") is not None:
            ci = f", 95% CI of the change {paired['delta_low']:+.3g}..{paired['delta_high']:+.3g}"
        stat = f"{change} (n={n}{ci}, {paired['test'].replace('_', ' ')} {_p(p)})"
        delta = tuned_value - base_value
        if p >= alpha or delta == 0:
            verdict, reason = "no significant change", f"{stat}; not significant at {alpha:g}"
        elif (delta > 0) != bool(higher_is_better):
            verdict, reason = "worse", stat
        elif higher_is_better and best is not None and tuned_value <= best + 1e-12:
            verdict = "no better than baseline"
            reason = f"{stat}, but a trivial baseline scores {_fmt(best)}"
        else:
            verdict, reason = "better", stat
    out["verdict"], out["reason"] = verdict, reason
    return out


def versus_prompts(found: dict, prompts: dict, *, tuned_value: float | None, tuned: list[dict],
                   higher_is_better: bool | None, scale: str | None, cfg: dict) -> dict:
    """Add the prompt-only baselines (:mod:`.baselines`) to a row found by :func:`judge`
    (:func:`_versus_prompts`). A "better" verdict stands only if every baseline the recipe asked for
    was compared: one that errored turns it into "error" (the run then fails like any errored
    evaluator, :func:`sftkit.reporting.accounting.evaluation_errors`)."""
    found = _versus_prompts(found, prompts, tuned_value=tuned_value, tuned=tuned,
                            higher_is_better=higher_is_better, scale=scale, cfg=cfg)
    failed = {label: p["error"] for label, p in (prompts or {}).items() if p.get("error")}
    if failed and found.get("verdict") == "better":
        label, why = next(iter(failed.items()))
        found["verdict"] = "error"
        found["reason"] = (f"{found['reason']}, but prompt-only baseline {label!r} failed ({why}): "
                           "the tuned model was not compared with it")
    return found


def _versus_prompts(found: dict, prompts: dict, *, tuned_value: float | None, tuned: list[dict],
                    higher_is_better: bool | None, scale: str | None, cfg: dict) -> dict:
    """Add the prompt-only baselines (:mod:`.baselines`) to a row found by :func:`judge`.

    ``prompts``: ``{label: {"kind", "value", "items"}}``, or ``{"kind", "not_applicable": why}`` /
    ``{"kind", "error": why}``. Each gets n, its 95% interval and the paired test of tuned against it
    on the same items (``found["prompt_baselines"]``); the best one is ``found["best_prompt"]`` with
    the change, its interval, p and ``beats``. A "better" verdict becomes "no better than baseline"
    unless the tuned model is significantly better than the best prompt-only baseline too."""
    if not prompts:
        return found
    seed, alpha = cfg["seed"], float(cfg["alpha"])
    table: dict = {}
    for label, p in prompts.items():
        entry: dict = {"kind": p.get("kind")}
        table[label] = entry
        if p.get("not_applicable") or p.get("error"):
            entry.update({k: p[k] for k in ("not_applicable", "error") if p.get(k)})
            continue
        items = p.get("items") or []
        entry["value"] = p.get("value")
        entry["stats"] = side_stats(items, p.get("value"), scale=scale, seed=seed)
        short = shortfall(items, entry["stats"], f"prompt-only baseline {label!r}")
        if short:  # too few items to compare with: no test, so never "beaten"
            entry["shortfall"] = short
            continue
        paired = _paired(items, tuned, scale=scale, seed=seed) if entry["stats"] and found["stats"].get("tuned") else None
        if paired:
            entry["paired"] = paired  # tuned against this baseline: delta = tuned - baseline
    found["prompt_baselines"] = table
    scored = [(label, e) for label, e in table.items() if e.get("value") is not None]
    if not scored or higher_is_better is None or tuned_value is None or found["verdict"] == "error":
        return found
    label, best = max(scored, key=lambda le: le[1]["value"] if higher_is_better else -le[1]["value"])
    paired = best.get("paired") or {}
    delta = tuned_value - best["value"]
    beats = bool(paired) and paired["p"] < alpha and delta != 0 and (delta > 0) == bool(higher_is_better)
    found["best_prompt"] = {"label": label, "kind": best.get("kind"), "value": best["value"], "delta": delta,
                            "delta_low": paired.get("delta_low"), "delta_high": paired.get("delta_high"),
                            "p": paired.get("p"), "test": paired.get("test"), "beats": beats}
    ci = (f", 95% CI {paired['delta_low']:+.3g}..{paired['delta_high']:+.3g}"
          if paired.get("delta_low") is not None else "")
    test = f"{paired['test'].replace('_', ' ')} {_p(paired['p'])}" if paired else "not tested"
    said = f"prompt-only baseline {label!r} scores {_fmt(best['value'])} (tuned {delta:+.3g}{ci}, {test})"
    if found["verdict"] == "better" and best.get("shortfall"):
        found["verdict"] = "not enough evidence"
        found["reason"] = f"{found['reason']}, but not against the {said}: {best['shortfall']}"
    elif found["verdict"] == "better" and not beats:
        found["verdict"] = "no better than baseline"
        found["reason"] = f"{found['reason']}, but the {said}: a prompt does as well"
    elif found["verdict"] == "better":
        found["reason"] = f"{found['reason']}; beats the best {said}"
    else:
        found["reason"] = f"{found['reason']}; best {said}"
    return found


def summary_line(row: dict, labels: dict | None = None) -> str:
    """One console line per evaluator: values, intervals, the verdict and why. ``labels`` names the
    two models (default "base" and "tuned"; ``sftkit eval --model REF`` names the second REF)."""
    names = {"base": "base", "tuned": "tuned", **(labels or {})}

    def side(key: str) -> str:
        value = row.get(key)
        iv = (row.get("stats") or {}).get(key) or {}
        if value is None:
            return "–"
        return f"{value:.4g}" + (f" [{iv['low']:.3g}, {iv['high']:.3g}]" if iv.get("low") is not None else "")

    errs = "; ".join(f"{k}: {v}" for k, v in (row.get("errors") or {}).items() if v)
    values = (f"{names['base']} {side('base')} → {names['tuned']} {side('tuned')}" if row.get("base") is not None
              else f"{side('tuned')}" if labels is None else f"{names['tuned']} {side('tuned')}")
    n = ((row.get("stats") or {}).get("tuned") or {}).get("n")
    line = f"eval {row.get('label')} ({row.get('primary')}{f', n={n}' if n else ''}): {values}: " \
           f"{(row.get('verdict') or 'not tested').upper()}"
    if row.get("verdict") in ("collapsed", "no better than baseline", "not enough evidence", "error"):
        line += f" ({row.get('reason')})"
    elif row.get("best_prompt"):
        best = row["best_prompt"]
        line += f" (best prompt-only baseline {best['label']} {_fmt(best['value'])}: " \
                f"{'beaten' if best['beats'] else 'not beaten'})"
    if errs:
        line += f"  [error {errs}]"
    if not (row.get("gate") or {}).get("passed", True):
        line += "  (gate failed)"
    return line


def cluster_summary(base: list[dict], tuned: list[dict], holdout: list[str]) -> dict | None:
    """Held-out vs seen clusters: ``{"held_out": {...}, "seen": {...}, "clusters": {name: {...}}}``,
    each ``{"n", "base", "tuned"}`` (item means), when the items carry clusters and some are held out."""
    if not holdout or not (tuned or base):
        return None
    held = {str(c) for c in holdout}
    ref = tuned or base

    def mean(items: list[dict], idx: list[int]) -> float | None:
        return sum(float(items[i]["score"]) for i in idx) / len(idx) if items and idx else None

    groups: dict[str, list[int]] = {}
    for i, item in enumerate(ref):
        if item.get("cluster") is not None:
            groups.setdefault(str(item["cluster"]), []).append(i)
    if not groups:
        return None
    paired = base if len(base) == len(ref) else []
    out: dict = {"clusters": {c: {"n": len(idx), "held_out": c in held, "base": mean(paired, idx),
                                  "tuned": mean(tuned, idx)} for c, idx in sorted(groups.items())}}
    for name, want in (("held_out", True), ("seen", False)):
        idx = [i for c, ids in groups.items() if (c in held) == want for i in ids]
        if idx:
            out[name] = {"n": len(idx), "base": mean(paired, idx), "tuned": mean(tuned, idx)}
    return out
