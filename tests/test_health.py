"""Training-health findings on synthetic logs: one test per finding, and a healthy log with none."""

import math
import random

from sftkit.reporting.health import analyze


def _codes(findings):
    return {f["code"] for f in findings}


def healthy_log(steps=60):
    rnd = random.Random(0)
    log = []
    for s in range(1, steps + 1):
        log.append({"step": s, "loss": 2.5 * math.exp(-s / 40) + 0.6 + rnd.uniform(-0.03, 0.03),
                    "grad_norm": 1.0 + rnd.uniform(-0.2, 0.2), "learning_rate": 5e-5})
        if s % 15 == 0:
            log.append({"step": s, "eval_loss": 2.5 * math.exp(-s / 45) + 0.7})
    return log


def test_healthy_log_has_no_findings():
    assert analyze(healthy_log(), {"train_rows": 5000}, []) == []


def test_each_finding_has_a_fix():
    log = [{"step": s, "loss": 2.0} for s in range(1, 20)]
    for f in analyze(log):
        assert f["level"] in ("info", "warning", "error") and f["title"] and f["detail"] and f["fix"]


def test_overfitting():
    log = [{"step": s, "loss": 2.0 - s * 0.03} for s in range(1, 61)]
    log += [{"step": 15, "eval_loss": 1.9}, {"step": 30, "eval_loss": 1.7}, {"step": 45, "eval_loss": 1.9},
            {"step": 60, "eval_loss": 2.2}]
    findings = analyze(log)
    over = [f for f in findings if f["code"] == "overfitting"]
    assert over and "step 30" in over[0]["detail"] and "max_steps ~ 30" in over[0]["fix"]


def test_no_learning():
    log = [{"step": s, "loss": 2.0 + (0.005 if s % 2 else -0.005)} for s in range(1, 40)]
    findings = analyze(log)
    assert "no_learning" in _codes(findings)
    assert "learning_rate" in [f for f in findings if f["code"] == "no_learning"][0]["fix"]


def test_divergence():
    log = [{"step": s, "loss": 1.0 + s * 0.1} for s in range(1, 30)]
    assert "diverged" in _codes(analyze(log))


def test_memorisation_near_zero_loss_on_small_data():
    log = [{"step": s, "loss": 2.0 * math.exp(-s / 5)} for s in range(1, 60)]
    assert "memorisation" in _codes(analyze(log, {"train_rows": 40}))
    assert "memorisation" not in _codes(analyze(log, {"train_rows": 100000}))


def test_generations_copying_training_rows():
    train = ["Thank you for contacting us. We are sorry to hear about the delay with your order and we will "
             "send a replacement within two business days at no extra cost."]
    samples = [{"prompt": "Where is my order?", "base": "no idea",
                "tuned": "Thank you for contacting us. We are sorry to hear about the delay with your order and we "
                         "will send a replacement within two business days."}]
    findings = analyze(healthy_log(), {"train_rows": 5000}, samples, train_texts=train)
    assert _codes(findings) == {"copying"}
    fresh = [{"prompt": "p", "tuned": "A completely different answer that shares nothing at all with the training "
                                      "data rows written above, by design of this test."}]
    assert analyze(healthy_log(), {"train_rows": 5000}, fresh, train_texts=train) == []


def test_loss_and_grad_spikes():
    log = healthy_log()
    for e in log:
        if e.get("step") == 30 and "loss" in e:
            e["loss"] = 6.0
        if e.get("step") == 40 and "grad_norm" in e:
            e["grad_norm"] = 50.0
    codes = _codes(analyze(log, {"train_rows": 5000}))
    assert {"loss_spike", "grad_spike"} <= codes


def test_nan_loss():
    log = healthy_log()
    log.append({"step": 61, "loss": float("nan"), "grad_norm": float("inf")})
    assert "nan" in _codes(analyze(log, {"train_rows": 5000}))


def test_inconsistent_format_rate_and_mixed_samples():
    rows = [{"name": "json_valid", "label": "json_valid", "primary": "valid_rate", "tuned": 0.5, "checks_format": True}]
    assert _codes(analyze(healthy_log(), {"train_rows": 5000}, eval_rows=rows)) == {"format"}
    rows_ok = [{"name": "json_valid", "label": "json_valid", "primary": "valid_rate", "tuned": 0.95, "checks_format": True}]
    assert analyze(healthy_log(), {"train_rows": 5000}, eval_rows=rows_ok) == []
    # what counts is the evaluator's own checks_format, not a built-in's name
    plugin = [{"name": "my_format", "label": "f", "primary": "ok", "tuned": 0.5, "checks_format": True}]
    assert _codes(analyze(healthy_log(), {"train_rows": 5000}, eval_rows=plugin)) == {"format"}
    other = [{"name": "json_valid", "label": "f", "primary": "ok", "tuned": 0.5, "checks_format": False}]
    assert analyze(healthy_log(), {"train_rows": 5000}, eval_rows=other) == []
    mixed = [{"tuned": t} for t in ['{"a": 1}', "plain words", '{"b": 2}', "- item", "more prose here", "```x```"]]
    assert "mixed_formats" in _codes(analyze(healthy_log(), {"train_rows": 5000}, mixed))


def test_data_leakage_finding():
    stats = {"train_rows": 5000, "leakage": {"exact": 3, "examples": []}}
    assert "leakage" in _codes(analyze(healthy_log(), stats))
