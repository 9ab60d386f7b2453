"""report.md and report.html (self-contained: CSS inline, the loss curve PNG as base64, no external URL)."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path
from typing import Any

MAX_SAMPLES = 8
MAX_CHARS = 1500


def fmt(x: Any) -> str:
    if x is None:
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        if x != 0 and (abs(x) >= 1e5 or abs(x) < 1e-3):
            return f"{x:.3e}"
        return f"{x:.4f}".rstrip("0").rstrip(".") if abs(x) < 1000 else f"{x:,.1f}"
    return str(x)


def fmt_delta(row: dict) -> str:
    """The change, with an arrow only when the paired test called it better or worse."""
    d = row.get("delta")
    if d is None:
        return "–"
    arrow = {True: " ▲ better", False: " ▼ worse", None: ""}[row.get("improved")]
    return f"{'+' if d > 0 else ''}{fmt(d)}{arrow}"


def fmt_value(row: dict, side: str) -> str:
    """``0.42 [0.31, 0.53] n=120``: the value with its 95% interval and n, where known."""
    if (row.get("errors") or {}).get(side):
        return "error"
    value = fmt(row.get(side))
    iv = ((row.get("stats") or {}).get(side) or {})
    if row.get(side) is None or iv.get("low") is None:
        return value
    return f"{value} [{fmt(iv['low'])}, {fmt(iv['high'])}] n={iv.get('n')}"


def fmt_baselines(row: dict) -> str:
    parts = []
    for name, b in (row.get("baselines") or {}).items():
        what = f"always {b['answer']!r}" if b.get("answer") is not None else name
        parts.append(f"{what} {fmt(b.get('value'))}" if name != "chance" else f"chance {fmt(b.get('value'))}")
    return ", ".join(parts) or "–"


def fmt_prompt_baselines(row: dict) -> str:
    """``system_prompt 0.42 [0.31, 0.53] n=120; few_shot_5 n/a``: each prompt-only baseline's value."""
    parts = []
    for label, b in (row.get("prompt_baselines") or {}).items():
        if b.get("not_applicable"):
            parts.append(f"{label} n/a")
        elif b.get("error"):
            parts.append(f"{label} error")
        elif b.get("value") is None:
            parts.append(f"{label} –")
        else:
            iv = b.get("stats") or {}
            ci = f" [{fmt(iv['low'])}, {fmt(iv['high'])}] n={iv.get('n')}" if iv.get("low") is not None else ""
            short = " (not enough evidence)" if b.get("shortfall") else ""
            parts.append(f"{label} {fmt(b['value'])}{ci}{short}")
    return "; ".join(parts) or "–"


GATE_THRESHOLDS = ("min", "max", "max_regression")


def gates_defined(rows: list[dict]) -> int:
    """How many [[eval]] tables define a gate."""
    return sum(1 for r in rows if (r.get("gate") or {}).get("defined")
               or any((r.get("gate") or {}).get(k) is not None for k in GATE_THRESHOLDS)
               or (r.get("gate") or {}).get("failures"))


def gate_text(row: dict) -> str:
    gate = row.get("gate") or {}
    limits = [f"{k} {fmt(gate[k])}" for k in GATE_THRESHOLDS if gate.get(k) is not None]
    if gate.get("gate_on") == "lower_bound" and limits:
        limits.append("on the 95% interval")
    if not limits and gate.get("passed", True) and not gate.get("failures"):
        return ""
    verdict = "PASS" if gate.get("passed", True) else "FAIL"
    if any(" not decided: " in f for f in gate.get("failures") or []):
        verdict = "FAIL, not decided"  # too little evidence to decide: never a pass
    return f"{verdict}" + (f" ({', '.join(limits)})" if limits else "")


UNITS = (("_per_second", None), ("runtime", "s"), ("_seconds", "s"), ("_s", "s"), ("loss", "nats"),
         ("tokens", "tokens"), ("steps", "steps"), ("parameters", "parameters"), ("_gb", "GB"), ("_mb", "MB"))


def with_unit(key: str, value: Any) -> str:
    """A trainer number with its unit: s, tokens/s, %, nats/token, ..."""
    if isinstance(value, float) and ("fraction" in key or key.endswith("_share")):
        return f"{100 * value:.1f}%"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return fmt(value)
    text = f"{value:,}" if isinstance(value, int) else fmt(value)
    for marker, unit in UNITS:
        if marker == "_per_second" and marker in key:
            what = key.split(marker)[0].rsplit("_", 1)[-1]
            return f"{text} {what}/s"
        if key.endswith(marker) or (marker in ("loss", "tokens", "runtime") and marker in key):
            return f"{text} {unit}"
    return text


def clip(text: Any, n: int = MAX_CHARS) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= n else text[:n] + f"… [{len(text) - n} more characters]"


# ---------------------------------------------------------------------------- the model of the report
def sections(ctx: dict) -> list[tuple[str, str, str]]:
    """(title, markdown, html) of every section, shared by both renderers."""
    out = [("Verdict", *_summary(ctx))]
    out.append(("Evaluation: before / after", *_evaluation(ctx)))
    out.append(("Training", *_training(ctx)))
    out.append(("Sample generations", *_samples(ctx)))
    out.append(("Training health", *_health(ctx)))
    out.append(("Data", *_data(ctx)))
    for title, md in ctx.get("plugin_sections", []):
        out.append((title, md, markdown_to_html(md)))
    return out


def _md_table(headers: list[str], rows: list[list[str]]) -> str:
    def cell(s: str) -> str:
        return str(s).replace("|", "\\|").replace("\n", "<br>")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _html_table(headers: list[str], rows: list[list[str]], classes: list[list[str]] | None = None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = []
    for i, r in enumerate(rows):
        cells = []
        for j, c in enumerate(r):
            cls = classes[i][j] if classes and classes[i][j] else ""
            cells.append(f"<td{f' class={cls!r}' if cls else ''}>{html.escape(str(c))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def contamination_text(rows: list[dict]) -> str:
    """One line: which evaluators' items appear in the training rows."""
    checked = [(r.get("label"), r["contamination"]) for r in rows if r.get("contamination")]
    if not checked:
        return "not checked (no training rows or no items in this run)"
    hit = [(lab, c) for lab, c in checked if c.get("exact") or c.get("ngram")]
    if not hit:
        return f"none of the {sum(c['n'] for _, c in checked)} evaluation items appear in the training data"
    return "; ".join(f"{lab}: {c['exact'] + c['ngram']} of {c['n']} items ({c['share']:.0%}) appear in the training "
                     f"data ({c['exact']} exact, {c['ngram']} with a {c.get('ngram_words', 13)}-word overlap)"
                     for lab, c in hit)


VERDICT_CLASS = {"better": "good", "worse": "bad", "collapsed": "bad", "error": "bad",
                 "no better than baseline": "bad", "not enough evidence": "warn"}


BASE_SOURCES = {"cache": "reused from the cache (the same base model, evaluators and eval items were evaluated "
                         "by an earlier run)",
                "run directory": "reused from this run directory's base_eval.json (--resume)"}


def side_names(metrics: dict) -> tuple[str, str]:
    """What the two evaluated models are called: "base" and "tuned", or as ``metrics["labels"]`` says
    (``sftkit eval --model REF`` calls the second one REF: nothing was tuned)."""
    labels = {"base": "base", "tuned": "tuned", **(metrics.get("labels") or {})}
    return str(labels["base"]), str(labels["tuned"])


def _summary(ctx: dict) -> tuple[str, str]:
    """The verdict first: per evaluator, gates, health, then the run's facts and the regressions."""
    m = ctx["metrics"]
    rows = m.get("eval") or []
    gates = m.get("gates") or {}
    failures = gates.get("failures") or []
    md_parts, h_parts = [], []
    # per-evaluator verdicts
    if rows:
        prompted = any(r.get("prompt_baselines") for r in rows)
        headers = ["evaluator", "verdict", *side_names(m), "trivial baselines",
                   *(["prompt-only baselines"] if prompted else []), "why"]
        table = [[r.get("label", ""), r.get("verdict", "not tested"), fmt_value(r, "base"), fmt_value(r, "tuned"),
                  fmt_baselines(r), *([fmt_prompt_baselines(r)] if prompted else []), r.get("reason") or ""]
                 for r in rows]
        classes = [["", VERDICT_CLASS.get(r.get("verdict"), "")] + [""] * (len(headers) - 2) for r in rows]
        alpha = next(((r.get("stats") or {}).get("alpha") for r in rows if (r.get("stats") or {}).get("alpha")), 0.05)
        from ..evaluation.verdict import MIN_EVIDENCE_ITEMS

        note = (f"Better / worse only when the paired test of base vs tuned on the same items is significant at "
                f"{fmt(alpha)}; intervals are 95%. On fewer than {MIN_EVIDENCE_ITEMS} items (or with a degenerate "
                "interval) there is not enough evidence for any verdict, and a gate on it is not decided: it fails.")
        if prompted:
            note += (" Prompt-only baselines are the base model prompted, not trained, on the same items; better "
                     "also needs the tuned model significantly above the best of them (n/a: the evaluator does not "
                     "prompt a chat model).")
        md_parts.append(_md_table(headers, table) + f"\n\n_{note}_")
        h_parts.append(_html_table(headers, table, classes) + f"<p><i>{html.escape(note)}</i></p>")
    else:
        md_parts.append("_No [[eval]] tables in the recipe: nothing was measured._")
        h_parts.append("<p><i>No [[eval]] tables in the recipe: nothing was measured.</i></p>")
    # gates
    defined = gates_defined(rows)
    if failures:
        verdict = f"{len(failures)} gate(s) FAILED"
        if gates.get("enforced") is False:
            verdict += " (not enforced: smoke run on a tiny random model)"
    elif defined:
        verdict = f"all {defined} gate(s) passed"
    else:
        verdict = "no gates defined"
    md_parts.append(f"**Gates: {verdict}**" + "".join(f"\n- {f}" for f in failures))
    cls = "bad" if failures else ("ok" if defined else "none")
    h_parts.append(f"<p class='banner {cls}'>Gates: {html.escape(verdict)}</p>"
                   + ("<ul>" + "".join(f"<li class='bad'>{html.escape(f)}</li>" for f in failures) + "</ul>"
                      if failures else ""))
    # health, in one line per finding (details in "Training health")
    findings = ctx.get("findings") or []
    if findings:
        md_parts.append("**Health:** " + "; ".join(f"[{f['level']}] {f['title']}" for f in findings)
                        + " (details under Training health)")
        h_parts.append("<p><b>Health:</b></p><ul>" + "".join(
            f"<li class='finding {html.escape(f['level'])}'>[{html.escape(f['level'])}] {html.escape(f['title'])}</li>"
            for f in findings) + "</ul>")
    else:
        md_parts.append("**Health:** no problems found")
        h_parts.append("<p class='ok'><b>Health:</b> no problems found</p>")
    md_parts.append("**Contamination:** " + contamination_text(rows))
    h_parts.append(f"<p><b>Contamination:</b> {html.escape(contamination_text(rows))}</p>")
    # regressions: what the tuned model now gets wrong
    regs = [(r.get("label"), g) for r in rows for g in (r.get("regressions") or [])]
    if regs:
        total = sum(int(r.get("regression_count") or len(r.get("regressions") or [])) for r in rows)
        head = ["evaluator", "prompt", "expected", "base (right)", "tuned (wrong)"]
        body = [[lab, clip(g.get("prompt"), 200), fmt(g.get("expected")), clip(g.get("base"), 200), clip(g.get("tuned"), 200)]
                for lab, g in regs]
        md_parts.append(f"**Regressions** ({total} item(s) the base model got right and the tuned model got wrong):\n\n"
                        + _md_table(head, body))
        h_parts.append(f"<p><b>Regressions</b> ({total} item(s) the base model got right and the tuned model got "
                       f"wrong):</p>" + _html_table(head, body))
    facts = [("recipe", m.get("recipe")), ("strategy", m.get("strategy")), ("model", ctx.get("model_name")),
             ("evaluated model", m.get("model_dir")), ("smoke run", m.get("smoke") or None),
             ("base model's evaluation", BASE_SOURCES.get((m.get("base_eval") or {}).get("source")))]
    facts = [(k, v) for k, v in facts if v not in (None, "")]
    md_parts.append("\n".join(f"- **{k}**: {v}" for k, v in facts))
    h_parts.append("<ul>" + "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(str(v))}</li>" for k, v in facts) + "</ul>")
    return "\n\n".join(md_parts), "".join(h_parts)


def _training(ctx: dict) -> tuple[str, str]:
    train = (ctx["metrics"].get("train") or {})
    keys = [k for k, v in train.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)]
    rows = [[k, with_unit(k, train[k])] for k in keys[:30]]
    md, h = "", ""
    what = "reward curves" if train.get("reasoning") else "loss curves"
    if ctx.get("png_name"):
        md += f"![{what}]({ctx['png_name']})\n\n"
    if ctx.get("png_b64"):
        h += f"<img alt='{what}' src='data:image/png;base64,{ctx['png_b64']}'>"
    elif not ctx.get("log"):
        md += "_No training log (train_log.jsonl) — the model was trained elsewhere._\n\n"
        h += "<p><i>No training log (train_log.jsonl) — the model was trained elsewhere.</i></p>"
    rl = _reward_rows(train.get("reasoning") or {})
    if rl:
        headers = ["reward", "judges", "weight", "first step", "last step"]
        md += _md_table(headers, rl) + "\n\n"
        h += _html_table(headers, rl)
    if rows:
        md += _md_table(["metric", "value"], rows)
        h += _html_table(["metric", "value"], rows)
    return md, h


def _reward_rows(reasoning: dict) -> list[list[str]]:
    """An RL run's rewards: each one's mean at the first and the last step (``train.reasoning``), then
    the learning signal and the share of completions cut at the limit."""
    steps = reasoning.get("per_step") or []
    if not steps:
        return []
    first, last = steps[0], steps[-1]
    rows = [[r.get("label", ""), r.get("judges", ""), fmt(r.get("weight")),
             fmt((first.get("rewards") or {}).get(r.get("label"))), fmt((last.get("rewards") or {}).get(r.get("label")))]
            for r in reasoning.get("rewards") or []]
    for key, name in (("reward", "total (weighted)"), ("zero_std_share", "groups without spread"),
                      ("clipped_share", "cut at the length limit"), ("length_mean", "completion length")):
        rows.append([name, "", "", fmt(first.get(key)), fmt(last.get(key))])
    return rows


def _evaluation(ctx: dict) -> tuple[str, str]:
    rows = ctx["metrics"].get("eval") or []
    names = side_names(ctx["metrics"])
    if not rows:
        return "_No [[eval]] tables in the recipe._", "<p><i>No [[eval]] tables in the recipe.</i></p>"
    headers = ["evaluator", "metric", *names, "delta", "verdict", "gate"]
    table, classes = [], []
    notes_md, notes_h = [], []
    for r in rows:
        errs = r.get("errors") or {}
        base = fmt(r.get("base")) if not errs.get("base") else "error"
        tuned = fmt(r.get("tuned")) if not errs.get("tuned") else "error"
        gate = gate_text(r)
        table.append([r.get("label", ""), r.get("primary", ""), base, tuned, fmt_delta(r), r.get("verdict", "–"), gate])
        classes.append(["", "", "", "", "good" if r.get("improved") else ("bad" if r.get("improved") is False else ""),
                        VERDICT_CLASS.get(r.get("verdict"), ""),
                        "bad" if gate.startswith("FAIL") else ("good" if gate.startswith("PASS") else "")])
        for side, e in errs.items():
            if e:
                notes_md.append(f"- **{r.get('label')}** ({side}): {e}")
                notes_h.append(f"<li><b>{html.escape(str(r.get('label')))}</b> ({side}): {html.escape(str(e))}</li>")
        extra = [(k, v) for k, v in (r.get("metrics") or {}).items() if k != r.get("primary")]
        if extra:
            sub = [[k, fmt(v.get("base")), fmt(v.get("tuned")), fmt(v.get("delta"))] for k, v in extra[:40]]
            notes_md.append(f"\n<details><summary>{r.get('label')}: all metrics</summary>\n\n"
                            + _md_table(["metric", *names, "delta"], sub) + "\n\n</details>\n")
            notes_h.append(f"<details><summary>{html.escape(str(r.get('label')))}: all metrics</summary>"
                           + _html_table(["metric", *names, "delta"], sub) + "</details>")
        clusters = r.get("held_out_clusters") or {}
        if clusters.get("clusters"):
            body = [[("held out: " if k == "held_out" else "seen: ") + "all", fmt(v.get("n")), fmt(v.get("base")),
                     fmt(v.get("tuned"))] for k, v in clusters.items() if k in ("held_out", "seen")]
            body += [[c + (" (held out)" if v.get("held_out") else ""), fmt(v.get("n")), fmt(v.get("base")),
                      fmt(v.get("tuned"))] for c, v in clusters["clusters"].items()]
            head = ["cluster", "n", *names]
            notes_md.append(f"\n{r.get('label')}: held-out vs seen clusters\n\n" + _md_table(head, body) + "\n")
            notes_h.append(f"<p>{html.escape(str(r.get('label')))}: held-out vs seen clusters</p>" + _html_table(head, body))
        for side, det in (r.get("details") or {}).items():
            cm = (det or {}).get("confusion_matrix") if isinstance(det, dict) else None
            if cm and cm.get("labels"):
                hdr = ["gold \\ predicted"] + list(cm["labels"])
                body = [[lab] + [str(x) for x in line] for lab, line in zip(cm["labels"], cm["matrix"])]
                notes_md.append(f"\nConfusion matrix of {r.get('label')} ({side}):\n\n" + _md_table(hdr, body) + "\n")
                notes_h.append(f"<p>Confusion matrix of {html.escape(str(r.get('label')))} ({side})</p>"
                               + _html_table(hdr, body))
    md = _md_table(headers, table)
    h = _html_table(headers, table, classes)
    if notes_md:
        md += "\n\n" + "\n".join(notes_md)
        h += "<ul class='plain'>" + "".join(x if x.startswith("<li") else f"<li>{x}</li>" for x in notes_h) + "</ul>"
    return md, h


def _sample_groups(rows: list[dict]) -> list[tuple[list[dict], list[dict]]]:
    """Evaluators that ran on the same prompts share one set of sample cards: [(rows, samples)]."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        samples = (r.get("samples") or [])[:MAX_SAMPLES]
        if samples:
            groups.setdefault(tuple(str(s.get("prompt")) for s in samples), []).append(r)
    return [(members, (members[0].get("samples") or [])[:MAX_SAMPLES]) for members in groups.values()]


def _samples(ctx: dict) -> tuple[str, str]:
    md_parts, h_parts = [], []
    names = dict(zip(("base", "tuned"), side_names(ctx["metrics"])))
    for members, samples in _sample_groups(ctx["metrics"].get("eval") or []):
        title = ", ".join(str(r.get("label")) for r in members)
        md_parts.append(f"### {title}\n")
        h_parts.append(f"<h3>{html.escape(title)}</h3>")
        for i, s in enumerate(samples):
            fields = [("prompt", s.get("prompt"))]
            if s.get("expected") is not None:
                fields.append(("expected", s.get("expected")))
            for side in ("base", "tuned"):
                if side in s:
                    scores = []
                    for r in members:
                        other = (r.get("samples") or [])[i] if i < len(r.get("samples") or []) else {}
                        if other.get(f"{side}_score") is not None:
                            scores.append((r.get("label"), other[f"{side}_score"]))
                    label = names[side]
                    if len(scores) == 1:
                        label += f" (score {fmt(scores[0][1])})"
                    elif scores:
                        label += " (" + ", ".join(f"{lab} {fmt(v)}" for lab, v in scores) + ")"
                    fields.append((label, s.get(side)))
            if "output" in s and "tuned" not in s:
                fields.append(("output", s.get("output")))
            for key in ("verdict", "reason"):
                if s.get(key) is not None:
                    fields.append((key, s.get(key)))
            md_parts.append("\n".join(f"**{k}**:\n\n```\n{clip(v).replace('```', '` ` `')}\n```" for k, v in fields) + "\n\n---\n")
            h_parts.append("<div class='sample'>" + "".join(
                f"<div class='f'><span class='k'>{html.escape(k)}</span><pre>{html.escape(clip(v))}</pre></div>"
                for k, v in fields) + "</div>")
    if not md_parts:
        return "_No sample generations._", "<p><i>No sample generations.</i></p>"
    return "\n".join(md_parts), "".join(h_parts)


def _health(ctx: dict) -> tuple[str, str]:
    findings = ctx.get("findings") or []
    if not findings:
        note = "No problems found in the training log, data statistics and samples."
        return note, f"<p class='ok'>{note}</p>"
    md = "\n".join(f"- **[{f['level']}] {f['title']}** — {f['detail']} _Fix:_ {f['fix']}" for f in findings)
    h = "<ul class='plain'>" + "".join(
        f"<li class='finding {html.escape(f['level'])}'><b>[{html.escape(f['level'])}] {html.escape(f['title'])}</b>"
        f" — {html.escape(f['detail'])}<br><i>Fix:</i> {html.escape(f['fix'])}</li>" for f in findings) + "</ul>"
    return md, h


def _data(ctx: dict) -> tuple[str, str]:
    data = dict(ctx["metrics"].get("data") or {})
    stats = ctx.get("data_stats") or {}
    facts = [(k, data[k]) for k in ("kind", "rows_read", "train_rows", "eval_rows", "duplicates") if data.get(k) is not None]
    if data.get("dropped_share"):
        facts.append(("share of rows dropped", f"{100 * data['dropped_share']:.1f}%"))
    if stats.get("duplicates") is not None and "duplicates" not in data:
        facts.append(("duplicates", stats["duplicates"]))
    leak = (stats.get("leakage") or {}).get("exact")
    if leak is not None:
        facts.append(("eval rows leaked into train (exact)", leak))
    tok = stats.get("tokens") or {}
    for k in ("trained_tokens", "total_tokens", "truncated", "no_trained_rows"):
        if isinstance(tok, dict) and tok.get(k) is not None:
            facts.append((k, tok[k]))
    for key in ("dropped", "skipped"):
        d = data.get(key) or stats.get(key)
        if isinstance(d, dict) and d:
            facts.append((key, ", ".join(f"{k}: {v}" for k, v in d.items())))
    md = "\n".join(f"- **{k}**: {fmt(v)}" for k, v in facts) or "_No data statistics._"
    h = "<ul>" + "".join(f"<li><b>{html.escape(str(k))}</b>: {html.escape(fmt(v))}</li>" for k, v in facts) + "</ul>"
    sources = stats.get("sources") or {}
    if isinstance(sources, dict) and sources:
        rows = [[name, fmt(v.get("rows")), fmt(v.get("train")), fmt(v.get("eval"))]
                for name, v in sources.items() if isinstance(v, dict)]
        md += "\n\n" + _md_table(["source", "rows", "train", "eval"], rows)
        h += _html_table(["source", "rows", "train", "eval"], rows)
    return md, h


def markdown_to_html(md: str) -> str:
    """A small, safe Markdown subset (headings, lists, code blocks, paragraphs, **bold**, `code`)."""
    out, para, in_list, in_code, code = [], [], False, False, []

    def inline(text: str) -> str:
        t = html.escape(text)
        t = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", t)
        return re.sub(r"`([^`]+)`", r"<code>\1</code>", t)

    def flush():
        nonlocal para, in_list
        if para:
            out.append("<p>" + inline(" ".join(para)) + "</p>")
            para = []
        if in_list:
            out.append("</ul>")
            in_list = False

    for line in (md or "").splitlines():
        if line.strip().startswith("```"):
            if in_code:
                out.append("<pre>" + html.escape("\n".join(code)) + "</pre>")
                code, in_code = [], False
            else:
                flush()
                in_code = True
            continue
        if in_code:
            code.append(line)
        elif re.match(r"^#{1,6} ", line):
            flush()
            level = min(6, len(line) - len(line.lstrip("#")) + 2)
            out.append(f"<h{level}>{inline(line.lstrip('#').strip())}</h{level}>")
        elif re.match(r"^\s*[-*] ", line):
            if para:
                out.append("<p>" + inline(" ".join(para)) + "</p>")
                para = []
            if not in_list:
                out.append("<ul>")
                in_list = True
            out.append("<li>" + inline(re.sub(r"^\s*[-*] ", "", line)) + "</li>")
        elif not line.strip():
            flush()
        else:
            para.append(line.strip())
    if in_code:
        out.append("<pre>" + html.escape("\n".join(code)) + "</pre>")
    flush()
    return "\n".join(out)


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{border-bottom:2px solid #444;padding-bottom:.2em}h2{border-bottom:1px solid #ccc;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0}th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.good{color:#176f2c}td.bad,li.bad,.finding.error{color:#a00}td.warn{color:#8a5a00}
.banner{padding:.5em 1em;font-weight:bold;border-radius:4px}.banner.ok{background:#e6f4ea}.banner.bad{background:#fde7e7}.banner.none{background:#f3f3f3}
p.ok{color:#176f2c}.finding.warning{color:#8a5a00}ul.plain{padding-left:1.2em}
img{max-width:100%;border:1px solid #ddd}
.sample{border:1px solid #ddd;border-radius:4px;margin:.6em 0;padding:.4em .8em;background:#fafafa}
.sample .k{font-weight:bold;font-size:.9em;color:#555}pre{white-space:pre-wrap;word-break:break-word;margin:.2em 0 .6em;background:#fff;padding:.3em;border:1px solid #eee}
"""


def render_markdown(ctx: dict) -> str:
    title = f"sftkit report: {ctx['metrics'].get('recipe', '')}"
    parts = [f"# {title}\n"]
    for name, md, _h in sections(ctx):
        parts.append(f"## {name}\n\n{md}\n")
    return "\n".join(parts)


def render_html(ctx: dict) -> str:
    title = html.escape(f"sftkit report: {ctx['metrics'].get('recipe', '')}")
    body = [f"<h1>{title}</h1>"]
    for name, _md, h in sections(ctx):
        body.append(f"<section><h2>{html.escape(name)}</h2>{h}</section>")
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{title}</title>"
            f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>\n")


def png_base64(path: Path | None) -> str | None:
    if path is None or not Path(path).exists():
        return None
    return base64.b64encode(Path(path).read_bytes()).decode("ascii")
