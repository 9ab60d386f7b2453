"""Training health: read the log (HF ``log_history`` entries), the data statistics, evaluation rows and
sample generations, and say what looks wrong and what to change. Pure Python, no heavy import.

Each finding is ``{"level": "warning"|"error"|"info", "code", "title", "detail", "fix"}``.
"""

from __future__ import annotations

import math
import statistics
from typing import Iterable

DROPPED_WARN_SHARE = 0.2  # more than this share of rows dropped is a warning
FEW_ROWS = 100  # fewer training rows than this: say that few-shot prompting may do


def _series(log: Iterable[dict], key: str) -> list[tuple[float, float]]:
    out = []
    for i, e in enumerate(log or []):
        if not isinstance(e, dict) or key not in e or e[key] is None:
            continue
        try:
            value = float(e[key])
        except (TypeError, ValueError):
            continue
        out.append((float(e.get("step", i)), value))
    return out


def _finding(level: str, code: str, title: str, detail: str, fix: str) -> dict:
    return {"level": level, "code": code, "title": title, "detail": detail, "fix": fix}


def check_nan(train: list, grads: list) -> list[dict]:
    bad = [s for s, v in train if not math.isfinite(v)] + [s for s, v in grads if not math.isfinite(v)]
    if not bad:
        return []
    return [_finding("error", "nan", "Loss or gradient norm became NaN/inf",
                     f"first at step {int(min(bad))}.",
                     "Lower the learning rate (e.g. /10), keep max_grad_norm = 1.0, use bf16 rather than fp16, "
                     "and check the data for empty or extremely long rows.")]


def check_weights(train_metrics: dict | None) -> list[dict]:
    """An error when the trained weights hold NaN/inf (``metrics.json`` train.nonfinite_tensors)."""
    bad = (train_metrics or {}).get("nonfinite_tensors") or []
    if not bad:
        return []
    return [_finding("error", "nan_weights", "The trained weights hold NaN/inf",
                     f"{len(bad)} tensor(s), e.g. {', '.join(bad[:3])}; the model is unusable.",
                     "Lower the learning rate (e.g. /10), keep max_grad_norm = 1.0 and train again with --overwrite.")]


def check_no_learning(train: list) -> list[dict]:
    values = [v for _, v in train if math.isfinite(v)]
    if len(values) < 4:
        return []
    k = max(1, len(values) // 4)
    first, last = statistics.mean(values[:k]), statistics.mean(values[-k:])
    if first <= 0:
        return []
    drop = (first - last) / first
    if abs(drop) < 0.02:
        return [_finding("warning", "no_learning", "The training loss did not move",
                         f"train loss {first:.4g} at the start vs {last:.4g} at the end ({drop:+.1%}).",
                         "Raise learning_rate (x3-x10; LoRA usually needs 1e-4..2e-4), train more steps, and check "
                         "with `sftkit preview` that the answer tokens are trained (not all labels masked).")]
    if last > first * 1.3:
        return [_finding("error", "diverged", "The training loss went up",
                         f"train loss {first:.4g} at the start vs {last:.4g} at the end.",
                         "Lower learning_rate (/3-/10), add warmup (warmup_ratio = 0.1) and keep max_grad_norm = 1.0.")]
    return []


def check_overfitting(train: list, evals: list, kept: dict | None = None) -> list[dict]:
    """Eval loss rising while train loss falls. ``kept``: the best checkpoint the run kept as its
    model (``[training] best_metric``; train metrics ``best_checkpoint``), if any."""
    if len(evals) < 3:
        return []
    best_i = min(range(len(evals)), key=lambda i: evals[i][1])
    best_step, best = evals[best_i]
    last_step, last = evals[-1]
    if best_i == len(evals) - 1 or last <= best * 1.03 + 1e-9:
        return []
    train_at_best = [v for s, v in train if s <= best_step]
    train_after = [v for s, v in train if s > best_step]
    if not train_at_best or not train_after or min(train_after) >= train_at_best[-1]:
        return []
    detail = (f"eval loss was lowest ({best:.4g}) at step {int(best_step)} and rose to {last:.4g} at step "
              f"{int(last_step)}; train loss kept falling to {min(train_after):.4g}.")
    if kept and kept.get("step") is not None:
        return [_finding("info", "overfitting", "Overfitting after the kept step: eval loss rose while train loss fell",
                         detail + f" The saved model is step {int(kept['step'])}'s (best {kept.get('metric')}), "
                         "not the last step's.",
                         f"Train fewer steps (max_steps ~ {int(best_step)}) to save time, or add more (or more "
                         "varied) data.")]
    return [_finding("warning", "overfitting", "Overfitting: eval loss rises while train loss falls", detail,
                     f"Stop earlier (max_steps ~ {int(best_step)}), or keep the best step's model with [training] "
                     "best_metric = \"eval_loss\"; lower the learning rate or epochs, add more (or more varied) "
                     "data, or use a LoRA adapter / weight_decay.")]


def check_memorisation(train: list, data_stats: dict | None, samples: list | None,
                       train_texts: list[str] | None) -> list[dict]:
    out = []
    values = [v for _, v in train if math.isfinite(v)]
    rows = _train_rows(data_stats)
    if values and values[-1] < 0.05 and (rows is None or rows < 2000):
        size = f"{rows} training rows" if rows is not None else "a small data set"
        out.append(_finding("warning", "memorisation", "Likely memorisation: train loss near zero",
                            f"final train loss {values[-1]:.3g} on {size}.",
                            "Train fewer steps/epochs, lower the learning rate, add more data, and check the "
                            "held-out eval loss and sample answers for copied training text."))
    if samples and train_texts:
        from ..evaluation.metrics import ngram_overlap

        copied = []
        refs = [t for t in train_texts if t][:5000]
        for s in samples:
            out_text = s.get("tuned") if "tuned" in s else s.get("output")
            if not out_text or len(out_text.split()) < 12:
                continue
            best = max((ngram_overlap(out_text, r, 8) for r in refs), default=0.0)
            if best >= 0.5:
                copied.append(best)
        if copied:
            out.append(_finding("warning", "copying", "Generations copy training rows",
                                f"{len(copied)} of {len(samples)} sample answers share >= 50% of their 8-word "
                                f"sequences with a training completion (max {max(copied):.0%}).",
                                "Reduce steps/epochs or learning rate, deduplicate and diversify the training data."))
    return out


def _train_rows(data_stats: dict | None) -> int | None:
    if not data_stats:
        return None
    for key in ("train_rows", "train"):
        if isinstance(data_stats.get(key), int):
            return data_stats[key]
    sources = data_stats.get("sources")
    if isinstance(sources, dict) and sources:
        try:
            return sum(int(v.get("train", 0)) for v in sources.values())
        except (TypeError, ValueError, AttributeError):
            return None
    return None


def _spikes(series: list, factor: float, min_abs: float) -> list[tuple[float, float, float]]:
    found = []
    for i in range(3, len(series)):
        window = [v for _, v in series[max(0, i - 5):i] if math.isfinite(v)]
        if len(window) < 3:
            continue
        ref = statistics.median(window)
        step, value = series[i]
        if math.isfinite(value) and value > ref * factor and value - ref > min_abs:
            found.append((step, value, ref))
    return found


def check_spikes(train: list, grads: list) -> list[dict]:
    out = []
    loss_spikes = _spikes(train, 1.5, 0.3)
    if loss_spikes:
        steps = ", ".join(str(int(s)) for s, _, _ in loss_spikes[:5])
        s, v, ref = loss_spikes[0]
        out.append(_finding("warning", "loss_spike", "Loss spikes",
                            f"{len(loss_spikes)} spike(s) at step(s) {steps} (e.g. {v:.3g} vs ~{ref:.3g} before).",
                            "Lower the learning rate or add warmup; look at the rows trained at those steps "
                            "(very long or malformed rows are common causes)."))
    grad_spikes = _spikes(grads, 5.0, 1.0)
    if grad_spikes:
        steps = ", ".join(str(int(s)) for s, _, _ in grad_spikes[:5])
        s, v, ref = grad_spikes[0]
        out.append(_finding("warning", "grad_spike", "Gradient-norm spikes",
                            f"{len(grad_spikes)} spike(s) at step(s) {steps} (e.g. {v:.3g} vs ~{ref:.3g} before).",
                            "Keep max_grad_norm = 1.0 (clipping), lower the learning rate, add warmup."))
    return out


def _shape(text: str) -> str:
    t = (text or "").strip()
    if not t:
        return "empty"
    if t.startswith("```"):
        return "code block"
    if t[0] in "{[":
        return "json"
    if t.lstrip().startswith(("- ", "* ", "1.", "1)")):
        return "list"
    return "prose"


def check_format(eval_rows: list | None, samples: list | None) -> list[dict]:
    out = []
    for row in eval_rows or []:
        if not row.get("checks_format"):  # the evaluator says so (its ``checks_format``), whatever its name
            continue
        value = row.get("tuned")
        if isinstance(value, (int, float)) and 0.2 <= value <= 0.8:
            out.append(_finding("warning", "format", "Inconsistent output format",
                                f"{row['label']}.{row.get('primary')} = {value:.2f}: the model follows the "
                                "format only part of the time.",
                                "Make every training answer use the same format, train more steps, state the "
                                "format in the system prompt, and check the template with `sftkit preview`."))
    outputs = [s.get("tuned") if "tuned" in s else s.get("output") for s in samples or []]
    outputs = [o for o in outputs if isinstance(o, str)]
    if len(outputs) >= 5:
        shapes: dict[str, int] = {}
        for o in outputs:
            shapes[_shape(o)] = shapes.get(_shape(o), 0) + 1
        top = max(shapes.values())
        structured = {k for k in shapes if k in ("json", "code block", "list")}
        if structured and top / len(outputs) < 0.7 and len(shapes) > 1:
            mix = ", ".join(f"{k} {v}" for k, v in sorted(shapes.items(), key=lambda kv: -kv[1]))
            out.append(_finding("warning", "mixed_formats", "Mixed output formats across samples",
                                f"sample answers are {mix}.",
                                "Use one answer format in the training data (or say which in the prompt) and "
                                "add a format evaluator (json_valid / regex) with a min gate."))
    return out


def check_eval(eval_rows: list | None) -> list[dict]:
    """A model that gives one answer to (almost) every item; evaluators too small to decide anything
    (the verdict's ``evidence``); evaluators that failed."""
    out = []
    for row in eval_rows or []:
        short = (row.get("evidence") or {}).get("shortfall")
        if short and row.get("verdict") == "not enough evidence":  # not for metrics without a direction
            out.append(_finding("warning", "not_enough_evidence", f"{row.get('label')}: not enough evidence for a verdict",
                                f"{short.split(';')[0]}: whatever difference it shows is not a tested change, "
                                "and a gate on it cannot pass.",
                                f"Evaluate on more items (at least {(row.get('evidence') or {}).get('minimum')}): raise "
                                "[dataset] eval_fraction, add a [[data]] entry with split = \"eval\", or give the "
                                "evaluator more items."))
        for side, prof in ((row.get("answers") or {}).items()):
            if isinstance(prof, dict) and prof.get("collapsed"):
                base = " (the base model too)" if side == "tuned" and ((row.get("answers") or {}).get("base") or {}).get("collapsed") else ""
                if side == "base" and ((row.get("answers") or {}).get("tuned") or {}).get("collapsed"):
                    continue
                out.append(_finding("error" if side == "tuned" else "warning", "collapsed",
                                    f"The {side} model collapsed onto one answer in {row.get('label')}{base}",
                                    f"{prof.get('top')!r} for {prof.get('top_share', 0):.0%} of {prof.get('n')} items; "
                                    f"its score is what always answering that gives, not skill.",
                                    "Balance the classes (or letters) in the training data, lower the learning rate, "
                                    "train fewer steps, and compare with the trivial baselines in the verdict."))
        found = row.get("contamination") or {}
        if found.get("share"):
            first = (found.get("examples") or [{}])[0].get("item", "")
            out.append(_finding("warning", "contamination", f"{row.get('label')}: evaluation items are in the training data",
                                f"{found['exact'] + found['ngram']} of {found['n']} items ({found['share']:.0%}) appear "
                                f"in the training rows, e.g. {first[:80]!r}; their scores measure memory, not skill.",
                                "Remove these items from the training data (or evaluate on other items); add "
                                "max_contamination = 0 to the [[eval]] table to make it a gate."))
        errs = {k: v for k, v in (row.get("errors") or {}).items() if v}
        if errs:
            out.append(_finding("error", "eval_error", f"Evaluator {row.get('label')} failed",
                                "; ".join(f"{k}: {v}" for k, v in errs.items()),
                                "Fix the cause named above and re-run (`sftkit eval` re-evaluates without training)."))
    return out


def check_data(data_stats: dict | None) -> list[dict]:
    out = []
    if not data_stats:
        return out
    leak = (data_stats.get("leakage") or {}).get("exact")
    if isinstance(leak, int) and leak > 0:
        out.append(_finding("warning", "leakage", "Eval rows also appear in the training data",
                            f"{leak} eval row(s) are exact copies of training rows; eval metrics are optimistic.",
                            "Deduplicate across splits ([dataset] dedupe = true) or hold out different rows."))
    rows = data_stats.get("train_rows")
    if isinstance(rows, int) and 0 < rows < FEW_ROWS:
        out.append(_finding("info", "few_rows", f"Trained on only {rows} examples",
                            f"{rows} training rows is little for fine-tuning; the change it makes can be small, "
                            "noisy or collapse onto one answer.",
                            f"Add examples (a few hundred or more), or try few-shot prompting: {rows} examples "
                            "may fit in the prompt of the base model; a [[baseline]] table with kind = \"few_shot\" "
                            "measures it beside the tuned model."))
    share, dropped = data_stats.get("dropped_share"), data_stats.get("dropped") or {}
    if isinstance(share, (int, float)) and share > DROPPED_WARN_SHARE and isinstance(dropped, dict):
        why = ", ".join(f"{k}: {v}" for k, v in dropped.items())
        fixes = {"too_long": "raise training.max_length (or truncation = \"truncate\")",
                 "duplicate": "add distinct rows (the data repeats itself)",
                 "invalid": "fix the rows the loader skipped (on_error = \"error\" shows the first)",
                 "no_trained_tokens": "check the template masks the answers and that max_length keeps them",
                 "template_error": "fix the template or the rows it cannot render"}
        fix = "; ".join(fixes[k] for k in dropped if k in fixes) or "check the data statistics"
        out.append(_finding("warning", "dropped_rows", f"{share:.0%} of the rows were dropped",
                            f"{sum(dropped.values())} of {data_stats.get('rows_read')} rows never reached training "
                            f"or evaluation ({why}); the run trained on {data_stats.get('train_rows')}.",
                            fix[0].upper() + fix[1:] + "."))
    truncated, total = data_stats.get("truncated"), _train_rows(data_stats)
    if isinstance(truncated, int) and truncated and total and truncated / total > 0.1:
        out.append(_finding("info", "truncation", "Many rows were truncated",
                            f"{truncated} of {total} training rows exceeded training.max_length.",
                            "Raise training.max_length, or set [dataset] truncation = \"drop\"."))
    return out


NO_SIGNAL_SHARE = 0.8  # groups whose completions all got one reward, on average: "no learning signal"
CLIPPED_SHARE = 0.8  # completions cut at the length limit, late in training: "collapse to the limit"
HACK_RISE = 0.2  # a form reward rising this much (absolute) while the answers do not: "reward hacking"


def _quarters(series: list) -> tuple[float, float] | None:
    values = [v for _, v in series if math.isfinite(v)]
    if len(values) < 2:
        return None
    k = max(1, len(values) // 4)
    return statistics.mean(values[:k]), statistics.mean(values[-k:])


def check_rl(log: list, eval_rows: list | None, train_metrics: dict | None) -> list[dict]:
    """An RL run (rewards in its log): most groups without reward spread (nothing to learn from),
    completions that end at the length limit or empty, and a form reward (one that reads only the
    completion: ``train.reasoning.rewards[].judges == "form"``) rising while correctness does not
    (a correctness evaluator without a "better" verdict, or, without one, the answer rewards flat)."""
    steps = [e for e in log if "reward" in e and not any(k.startswith("eval_") for k in e)]
    if not steps:
        return []
    out = []
    zero = [v for _, v in _series(steps, "frac_reward_zero_std") if math.isfinite(v)]
    if zero and statistics.mean(zero) >= NO_SIGNAL_SHARE:
        out.append(_finding("warning", "no_learning_signal", "No learning signal: most groups got equal rewards",
                            f"on average {statistics.mean(zero):.0%} of the prompts had every sampled completion "
                            "scored the same (all right or all wrong): their advantages are 0, so they teach nothing.",
                            "Pick tasks the start model sometimes (not never or always) gets right, warm it up with "
                            "instruction training on worked solutions, raise num_generations or temperature, or add "
                            "a partial-credit reward; check what the rewards compare against with `sftkit preview`."))
    clipped = _quarters(_series(steps, "completions/clipped_ratio"))
    length = _quarters(_series(steps, "completions/mean_length"))
    if clipped and clipped[1] >= CLIPPED_SHARE:
        grew = f" (from {clipped[0]:.0%} at the start)" if clipped[1] - clipped[0] > 0.1 else ""
        out.append(_finding("warning", "length_collapse", "Completions collapse to the length limit",
                            f"{clipped[1]:.0%} of the completions late in training were cut at "
                            f"max_completion_length{grew}: cut answers rarely hold a final answer.",
                            "Raise max_completion_length, add a length reward (name = \"length\"), or set "
                            "mask_truncated_completions = true so cut completions do not count."))
    elif length and length[1] < 1.5:
        out.append(_finding("warning", "empty_collapse", "Completions collapse to empty",
                            f"completions late in training average {length[1]:.1f} tokens (from {length[0]:.1f}).",
                            "Lower the learning rate, check that no reward pays for short answers, and add a "
                            "beta (KL to the start model) to keep it close to what it was."))
    rewards = ((train_metrics or {}).get("reasoning") or {}).get("rewards") or []
    form = [r["label"] for r in rewards if r.get("judges") == "form"]
    answer = [r["label"] for r in rewards if r.get("judges") == "answer"]
    risen = []
    for label in form:
        q = _quarters(_series(steps, f"rewards/{label}/mean"))
        if q and q[1] - q[0] >= HACK_RISE:
            risen.append(f"{label} {q[0]:.2f} -> {q[1]:.2f}")
    if risen:
        judged = [r for r in eval_rows or [] if not r.get("checks_format") and r.get("verdict")
                  and r.get("verdict") not in ("not tested", "error")]
        if judged:
            flat = not any(r.get("verdict") == "better" for r in judged)
            evidence = ", ".join(f"{r.get('label')}: {r.get('verdict')}" for r in judged)
        else:
            moves = [q[1] - q[0] for q in (_quarters(_series(steps, f"rewards/{lab}/mean")) for lab in answer) if q]
            flat = bool(answer) and not any(m >= 0.05 for m in moves)
            evidence = "the answer rewards " + ", ".join(answer) + " did not rise" if flat else ""
        if flat:
            out.append(_finding("warning", "reward_hacking", "Reward hacking suspected",
                                f"the form reward(s) rose ({'; '.join(risen)}) while correctness did not ({evidence}): "
                                "the model learned the shape of an answer, not the answer.",
                                "Lower the form rewards' weights (or drop them once the format is learned), check "
                                "the correctness reward with `sftkit preview`, and judge by the held-out [[eval]] "
                                "verdict, not by the reward."))
    return out


def analyze(log_history: list | None, data_stats: dict | None = None, samples: list | None = None, *,
            eval_rows: list | None = None, train_texts: list[str] | None = None,
            train_metrics: dict | None = None) -> list[dict]:
    """Findings for a run: overfitting, no learning / divergence, memorisation and copying, loss and
    gradient-norm spikes (an RL run instead: no learning signal, length collapse, reward hacking),
    inconsistent output formats, data problems. A healthy run gives []."""
    log = [e for e in (log_history or []) if isinstance(e, dict)]
    train = _series([e for e in log if "eval_loss" not in e and "train_runtime" not in e], "loss")
    evals = _series(log, "eval_loss")
    grads = _series(log, "grad_norm")
    findings: list[dict] = []
    findings += check_nan(train, grads)
    findings += check_weights(train_metrics)
    rl = check_rl(log, eval_rows, train_metrics) if any("reward" in e for e in log) else None
    if rl is None:  # an RL run's loss is no measure of fit (its advantages average to zero)
        findings += check_no_learning(train)
    findings += check_overfitting(train, evals, (train_metrics or {}).get("best_checkpoint"))
    if rl is None:
        findings += check_memorisation(train, data_stats, samples, train_texts)
        findings += check_spikes(train, grads)
    findings += rl or []
    findings += check_format(eval_rows, samples)
    findings += check_eval(eval_rows)
    findings += check_data(data_stats)
    return findings
