"""report.html (self-contained, opens offline) and report.md from a run directory; plugin sections;
bad input still gives a report."""

import base64
import json
import re

import pytest

from sftkit import hookimpl
from sftkit.api import EvalResult, RunContext
from sftkit.config import resolve
from sftkit.errors import SftkitError
from sftkit.evaluation import compare
from sftkit.reporting import write_report


def _rows(tmp_path):
    run = RunContext(config=resolve({"eval": [{"name": "json_valid", "min": 0.9}, {"name": "loss"},
                                      {"name": "classification"}]}),
                     recipe_path=None, base_dir=tmp_path, run_dir=tmp_path)
    base = {"json_valid": EvalResult({"valid_rate": 0.1}, "valid_rate",
                                     samples=[{"prompt": "give <json>", "output": "nope"}]),
            "loss": EvalResult({"eval_loss": 2.0, "perplexity": 7.39}, "eval_loss"),
            "classification": EvalResult({"accuracy": 0.5}, "accuracy",
                                         details={"confusion_matrix": {"labels": ["a", "b"], "matrix": [[1, 1], [0, 2]]}})}
    tuned = {"json_valid": EvalResult({"valid_rate": 0.42}, "valid_rate",
                                      samples=[{"prompt": "give <json>", "output": '{"a": "\ufffd bad bytes"}'}]),
             "loss": EvalResult({}, "eval_loss", error="the eval split is empty"),
             "classification": EvalResult({"accuracy": 0.75}, "accuracy")}
    return compare(run, base, tuned)


def _write_run(tmp_path, rows, log=True):
    failures = [m for r in rows for m in r["gate"]["failures"]]
    metrics = {"recipe": "demo", "strategy": "instruction", "train": {"train_loss": 1.2, "steps": 30},
               "data": {"kind": "messages", "train_rows": 3000, "eval_rows": 30}, "eval": rows,
               "gates": {"passed": not failures, "failures": failures}}
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    (tmp_path / "data_stats.json").write_text(json.dumps({"sources": {"train.jsonl": {"rows": 3030, "train": 3000, "eval": 30}},
                                                          "leakage": {"exact": 0}}))
    if log:
        entries = [{"step": s, "loss": 3 - s * 0.05, "grad_norm": 1.0, "learning_rate": 1e-4} for s in range(1, 31)]
        entries.append({"step": 30, "eval_loss": 1.9})
        (tmp_path / "train_log.jsonl").write_text("\n".join(json.dumps(e) for e in entries) + "\n{broken line\n")
    return metrics


class SectionPlugin:
    @hookimpl
    def sftkit_report_sections(self, run, metrics):
        return [("Medical checks", f"**{metrics['recipe']}** passed:\n\n- dosage table\n- `ok`")]


class BrokenSectionPlugin:
    @hookimpl
    def sftkit_report_sections(self, run, metrics):
        raise ValueError("cannot render")


def test_report_is_self_contained_and_complete(tmp_path):
    from sftkit.plugins import make_host

    rows = _rows(tmp_path)
    _write_run(tmp_path, rows)
    host = make_host(entry_points=False, extra=(("medical", SectionPlugin()), ("broken", BrokenSectionPlugin())))
    result = write_report(tmp_path, host=host)
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    # self-contained: no external resources of any kind
    assert not re.search(r"""(src|href)\s*=\s*['"]?(https?:|//)""", html)
    assert "<link" not in html and "<script" not in html
    png = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html).group(1)
    assert base64.b64decode(png).startswith(b"\x89PNG")
    assert (tmp_path / "loss.png").read_bytes().startswith(b"\x89PNG") and result["png"].name == "loss.png"
    # before/after table with delta and gate
    # no per-item scores: the difference is shown, but never called better
    assert "| json_valid | valid_rate | 0.1 | 0.42 | +0.32 | not tested | FAIL (min 0.9) |" in md
    assert md.index("## Verdict") < md.index("## Evaluation") < md.index("## Sample generations")
    assert "**Health:** [warning] Inconsistent output format" in md
    assert "gate failed: json_valid.valid_rate = 0.42 &lt; min 0.9" in html
    assert "loss** (tuned): the eval split is empty" in md
    # samples side by side, escaped in HTML
    assert "give &lt;json&gt;" in html and "give <json>" in md
    assert "Confusion matrix of classification (base)" in md
    # plugin sections, and a failing plugin named instead of breaking the report
    assert "## Medical checks" in md and "<b>demo</b> passed" in html and "<li>dosage table</li>" in html
    assert "Plugin broken: section failed" in md and "ValueError: cannot render" in md
    assert "Training health" in result["sections"] and "Inconsistent output format" in md  # valid_rate 0.42
    assert "train.jsonl" in md  # data stats


def test_report_rerender_is_stable_and_findings_show(tmp_path):
    rows = _rows(tmp_path)
    _write_run(tmp_path, rows, log=False)
    (tmp_path / "train_log.jsonl").write_text("\n".join(json.dumps({"step": s, "loss": 2.0}) for s in range(1, 20)))
    first = write_report(tmp_path)
    text = (tmp_path / "report.md").read_text()
    # the loss evaluator errored on the tuned model: a health error, not a silent empty cell
    assert [f["code"] for f in first["findings"]] == ["no_learning", "format", "eval_error"]
    assert "[warning] The training loss did not move" in text and "Fix:" in text
    write_report(tmp_path)
    assert (tmp_path / "report.md").read_text() == text


def test_report_without_training_log(tmp_path):
    _write_run(tmp_path, _rows(tmp_path), log=False)
    result = write_report(tmp_path)
    assert result["png"] is None and not (tmp_path / "loss.png").exists()
    assert "No training log" in (tmp_path / "report.md").read_text()


def test_report_needs_metrics(tmp_path):
    with pytest.raises(SftkitError, match="no metrics.json"):
        write_report(tmp_path)
    (tmp_path / "metrics.json").write_text("{not json")
    with pytest.raises(SftkitError, match="not valid JSON"):
        write_report(tmp_path)
