"""Verdicts: intervals, paired tests, trivial baselines and collapse detection from per-item scores,
gates on the interval, and the report and health findings that lead with them."""

import json

import pytest

from sftkit.api import EvalResult, RunContext
from sftkit.config import resolve
from sftkit.evaluation import compare, gate_failures
from sftkit.evaluation import stats as S
from sftkit.evaluation.verdict import summary_line
from sftkit.reporting import health, write_report


def run_with(tmp_path, evals, **recipe):
    return RunContext(config=resolve({"eval": evals, **recipe}), recipe_path=None, base_dir=tmp_path, run_dir=tmp_path)


def cls_result(preds, gold, labels=("negative", "neutral", "positive")):
    items = [{"score": float(p == g), "answer": p, "expected": g, "options": len(labels), "prompt": f"review {i}"}
             for i, (p, g) in enumerate(zip(preds, gold))]
    acc = sum(i["score"] for i in items) / len(items)
    return EvalResult({"accuracy": acc, "n": len(items)}, "accuracy", items=items)


# the drug-review case: 27 negative, 9 neutral, 84 positive
GOLD = ["negative"] * 27 + ["neutral"] * 9 + ["positive"] * 84


def test_wilson_mcnemar_and_bootstrap_known_values():
    lo, hi = S.wilson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = S.wilson(84, 120)
    assert lo == pytest.approx(0.6128, abs=1e-4) and hi == pytest.approx(0.7747, abs=1e-4)
    assert S.binom_two_sided(0, 10) == pytest.approx(2 / 1024)
    assert S.binom_two_sided(5, 10) == 1.0
    t = S.mcnemar([1, 1, 0, 0, 1], [1, 0, 1, 1, 1])
    assert (t["base_only"], t["tuned_only"]) == (1, 2) and t["p"] == 1.0
    scores = [0.2, 0.4, 0.9, 1.3, 0.7, 0.5]
    a = S.bootstrap_mean(scores, seed=3)
    assert a == S.bootstrap_mean(scores, seed=3) and a[0] < sum(scores) / 6 < a[1]
    # weighted: the interval is around the token-weighted mean
    lo, hi = S.bootstrap_mean([1.0, 3.0], [3.0, 1.0], seed=0)
    assert 1.0 <= lo <= 1.5 <= hi <= 3.0


def test_significant_improvement_is_better_and_a_small_one_is_not(tmp_path):
    gold = (["negative", "neutral", "positive"] * 20)
    base_preds = [g if i % 3 == 0 else "neutral" if g != "neutral" else "positive" for i, g in enumerate(gold)]
    tuned_preds = [g if i % 10 else "negative" if g != "negative" else "positive" for i, g in enumerate(gold)]
    run = run_with(tmp_path, [{"name": "classification"}])
    (row,) = compare(run, {"classification": cls_result(base_preds, gold)},
                     {"classification": cls_result(tuned_preds, gold)})
    assert row["verdict"] == "better" and row["improved"] is True
    p = row["stats"]["paired"]
    assert p["test"] == "mcnemar" and p["p"] < 0.001 and 0 < p["delta_low"] < row["delta"] < p["delta_high"]
    assert row["stats"]["tuned"]["n"] == 60 and row["stats"]["tuned"]["method"] == "wilson"
    # the same models on 6 items: a difference, but not evidence
    (small,) = compare(run, {"classification": cls_result(base_preds[:6], gold[:6])},
                       {"classification": cls_result(tuned_preds[:6], gold[:6])})
    assert small["delta"] > 0 and small["verdict"] == "no significant change" and small["improved"] is None
    # a stricter level turns a borderline result into "no significant change"
    strict = run_with(tmp_path, [{"name": "classification"}], verdict={"alpha": 1e-12})
    (row2,) = compare(strict, {"classification": cls_result(base_preds, gold)},
                      {"classification": cls_result(tuned_preds, gold)})
    assert row2["verdict"] == "no significant change"


def test_better_than_base_but_not_than_the_majority_baseline(tmp_path):
    gold = ["yes"] * 54 + ["no"] * 46
    base_preds = ["yes"] * 10 + ["no"] * 44 + ["yes"] * 36 + ["no"] * 10   # 20 of 100 right
    tuned_preds = ["yes"] * 40 + ["no"] * 14 + ["no"] * 14 + ["yes"] * 32  # 54 right, 72% "yes": not collapsed
    run = run_with(tmp_path, [{"name": "classification", "label": "c"}])
    base = cls_result(base_preds, gold, labels=("yes", "no"))
    tuned = cls_result(tuned_preds, gold, labels=("yes", "no"))
    (row,) = compare(run, {"c": base}, {"c": tuned})
    assert row["tuned"] == pytest.approx(0.54) and row["base"] == pytest.approx(0.2)
    assert row["stats"]["paired"]["p"] < 0.001 and row["baselines"]["majority"]["value"] == pytest.approx(0.54)
    assert row["verdict"] == "no better than baseline" and row["improved"] is None


def test_regressions_list_both_answers(tmp_path):
    items = lambda answers, scores: [{"score": s, "answer": a, "expected": e, "prompt": p}  # noqa: E731
                                     for a, s, e, p in zip(answers, scores, ["Kyiv", "Jakarta", "Paris"],
                                                           ["capital of Ukraine?", "capital of Indonesia?", "capital of France?"])]
    base = EvalResult({"accuracy": 2 / 3}, "accuracy", items=items(["kyiv", "jakarta", "lyon"], [1.0, 1.0, 0.0]))
    tuned = EvalResult({"accuracy": 1 / 3}, "accuracy", items=items(["moscow", "bangkok", "paris"], [0.0, 0.0, 1.0]))
    (row,) = compare(run_with(tmp_path, [{"name": "exact_match"}]), {"exact_match": base}, {"exact_match": tuned})
    assert row["regression_count"] == 2
    assert row["regressions"][0] == {"prompt": "capital of Ukraine?", "expected": "Kyiv", "base": "kyiv", "tuned": "moscow"}


def test_gate_on_lower_bound_uses_the_interval(tmp_path):
    tuned = cls_result(["positive"] * 8 + ["negative"] * 2, ["positive"] * 8 + ["neutral"] * 2)  # 0.8 on 10 items
    for gate_on, passed in (("value", True), ("lower_bound", False)):
        run = run_with(tmp_path, [{"name": "classification", "min": 0.7, "gate_on": gate_on}])
        (row,) = compare(run, {}, {"classification": tuned})
        assert row["gate"]["passed"] is passed
    assert gate_failures([row]) == ["gate failed: classification.accuracy = 0.4902 (95% interval bound) < min 0.7"]
    # no per-item scores: a lower-bound gate cannot pass on the point value
    run = run_with(tmp_path, [{"name": "classification", "min": 0.1, "gate_on": "lower_bound"}])
    (row,) = compare(run, {}, {"classification": EvalResult({"accuracy": 0.9}, "accuracy")})
    assert not row["gate"]["passed"] and "no per-item scores" in row["gate"]["message"]


def test_weighted_loss_and_exp_scale_intervals(tmp_path):
    from sftkit.evaluation.likelihood import ForgettingEvaluator  # noqa: F401  (stat_scale on the class)

    sums = [(20.0, 10), (9.0, 3), (4.0, 4), (12.0, 6), (5.0, 2), (8.0, 5)]  # 58 nats over 30 tokens, 6 items
    loss_items = [{"score": s / n, "weight": n, "prompt": i} for i, (s, n) in enumerate(sums)]
    base = EvalResult({"eval_loss": 58 / 30}, "eval_loss", items=loss_items)
    tuned_items = [{**i, "score": i["score"] * 0.5} for i in loss_items]
    tuned = EvalResult({"eval_loss": 29 / 30}, "eval_loss", items=tuned_items)
    (row,) = compare(run_with(tmp_path, [{"name": "loss"}]), {"loss": base}, {"loss": tuned})
    st = row["stats"]["tuned"]
    assert st["method"] == "bootstrap" and st["low"] <= 29 / 30 <= st["high"]
    assert row["stats"]["paired"]["test"] == "paired_bootstrap"
    # items that do not average to the metric give no interval rather than a wrong one
    bad = EvalResult({"eval_loss": 5.0}, "eval_loss", items=loss_items)
    (row,) = compare(run_with(tmp_path, [{"name": "loss"}]), {"loss": base}, {"loss": bad})
    assert row["stats"]["tuned"] is None and row["verdict"] == "not tested"


def test_report_leads_with_verdict_gates_and_health(tmp_path):
    run = run_with(tmp_path, [{"name": "classification"}])
    base = cls_result(["negative", "neutral", "positive"] * 40, GOLD)
    (row,) = compare(run, {"classification": base}, {"classification": cls_result(["positive"] * 120, GOLD)})
    metrics = {"recipe": "drugs", "strategy": "classification", "train": {}, "data": {}, "eval": [row],
               "gates": {"passed": True, "failures": []}}
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    write_report(tmp_path)
    md = (tmp_path / "report.md").read_text()
    top = md[: md.index("## Evaluation")]
    assert "| classification | collapsed |" in top and "always 'positive' 0.7" in top
    assert "**Gates: no gates defined**" in top and "all gates passed" not in md
    assert "[error] The tuned model collapsed onto one answer" in top
    assert "▲ better" not in md


def test_samples_once_per_prompt_set_and_trainer_units(tmp_path):
    def gen(label, outputs, scores):
        items = [{"score": s, "answer": o, "prompt": f"user: q{i}"} for i, (o, s) in enumerate(zip(outputs, scores))]
        samples = [{"prompt": f"user: q{i}", "output": o, "score": s} for i, (o, s) in enumerate(zip(outputs, scores))]
        return EvalResult({"accuracy": sum(scores) / len(scores)}, "accuracy", samples=samples, items=items)

    run = run_with(tmp_path, [{"name": "exact_match"}, {"name": "contains"}, {"name": "samples", "items": ["other"]}])
    base = {"exact_match": gen("em", ["a", "b"], [0.0, 1.0]), "contains": gen("c", ["a", "b"], [1.0, 1.0]),
            "samples": EvalResult({"avg_chars": 1.0}, "avg_chars", samples=[{"prompt": "user: other", "output": "x"}])}
    tuned = {"exact_match": gen("em", ["A", "B"], [1.0, 0.0]), "contains": gen("c", ["A", "B"], [1.0, 0.0]),
             "samples": EvalResult({"avg_chars": 1.0}, "avg_chars", samples=[{"prompt": "user: other", "output": "y"}])}
    rows = compare(run, base, tuned)
    metrics = {"recipe": "r", "train": {"train_runtime": 12.5, "trained_tokens_per_second": 1000.0,
                                        "padding_fraction": 0.019, "final_loss": 1.5},
               "data": {}, "eval": rows, "gates": {"passed": True, "failures": []}}
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    write_report(tmp_path)
    md = (tmp_path / "report.md").read_text()
    samples = md[md.index("## Sample generations"):]
    assert "### exact_match, contains" in samples and "### samples" in samples
    assert samples.count("user: q0") == 1 and "tuned (exact_match 1, contains 1)" in samples
    assert "12.5 s" in md and "1,000.0 tokens/s" in md and "1.9%" in md and "1.5 nats" in md


def test_contamination_of_evaluator_items_and_its_gate(tmp_path):
    from types import SimpleNamespace

    from sftkit.evaluation.contamination import TrainIndex, norm_words

    long_q = "Which enzyme converts angiotensin one into angiotensin two in the lungs of healthy adult humans today"
    train = [{"messages": [{"role": "user", "content": "What is the capital of France?"},
                           {"role": "assistant", "content": "Paris."}]},
             {"prompt": "Intro: " + long_q + " please answer", "completion": "ACE."}]
    index = TrainIndex(train)
    assert index.match("user: what is the capital of france") == "exact"  # normalised, role prefix removed
    assert index.match(long_q + "?") == "ngram" and index.match("What is the capital of Spain?") is None
    assert norm_words("A, b!") == ["a", "b"]

    def res(prompts):
        items = [{"score": 1.0, "prompt": p, "answer": str(i)} for i, p in enumerate(prompts)]
        return EvalResult({"accuracy": 1.0}, "accuracy", items=items)

    prompts = ["What is the capital of France?", long_q, "Name a prime number.", "Spell cat."]
    run = RunContext(config=resolve({"eval": [{"name": "exact_match", "max_contamination": 0.25}]}), recipe_path=None,
                     base_dir=tmp_path, run_dir=tmp_path, data=SimpleNamespace(train=train, eval=None))
    (row,) = compare(run, {}, {"exact_match": res(prompts)})
    c = row["contamination"]
    assert (c["n"], c["exact"], c["ngram"], c["share"]) == (4, 1, 1, 0.5)
    assert gate_failures([row]) == ["gate failed: exact_match: 2 of 4 items (50.0%) appear in the training data "
                                    "> max_contamination 0.25"]
    assert "contamination" in [f["code"] for f in health.analyze([], {}, [], eval_rows=[row])]
    (clean,) = compare(run, {}, {"exact_match": res(prompts[2:])})
    assert clean["contamination"]["share"] == 0 and clean["gate"]["passed"]


def test_preference_accuracy_and_margin_on_held_out_pairs(tmp_path):
    from types import SimpleNamespace

    from sftkit.evaluation import evaluate_all

    pairs = [{"prompt": [{"role": "user", "content": f"Where is order {i}?"}],
              "chosen": f"Thank you for asking, order {i} ships today.", "rejected": "Dunno."} for i in range(6)]

    class Scorer:
        is_classifier = False

        def __init__(self, label, polite_bonus):
            self.label, self.bonus = label, polite_bonus

        def render(self, messages):
            return messages[-1]["content"]

        def loglikelihood(self, requests):
            return [-10.0 + (self.bonus if cont.startswith("Thank") else 0.0) for _ctx, cont in requests]

    run = RunContext(config=resolve({"eval": [{"name": "preference"}]}), recipe_path=None, base_dir=tmp_path,
                     run_dir=tmp_path, data=SimpleNamespace(eval=pairs, train=[]))
    base = evaluate_all(run, Scorer("base", -2.0))
    tuned = evaluate_all(run, Scorer("tuned", 3.0))
    assert base["preference"].metrics == {"accuracy": 0.0, "mean_margin": -2.0, "n": 6}
    assert tuned["preference"].metrics["accuracy"] == 1.0 and tuned["preference"].metrics["mean_margin"] == 3.0
    (row,) = compare(run, base, tuned)
    assert row["metrics"]["mean_margin"]["delta"] == 5.0
    assert row["verdict"] == "better" and row["stats"]["paired"]["p"] < 0.05  # 6 of 6 pairs flipped: McNemar p=0.031


# --------------------------------------------------------------------------- enough evidence

def loss_result(scores, value=None):
    items = [{"score": s, "weight": 1.0, "prompt": f"row {i}"} for i, s in enumerate(scores)]
    return EvalResult({"eval_loss": value if value is not None else sum(scores) / len(scores)}, "eval_loss",
                      items=items)


def test_the_minimum_is_where_the_paired_test_can_first_reach_significance():
    from sftkit.evaluation.verdict import MIN_EVIDENCE_ITEMS

    # exact McNemar, every item changed the same way: p = 2 / 2**n
    assert S.binom_two_sided(0, MIN_EVIDENCE_ITEMS) < 0.05 <= S.binom_two_sided(0, MIN_EVIDENCE_ITEMS - 1)


def test_one_eval_row_is_not_enough_evidence_and_its_gate_is_not_decided(tmp_path):
    run = run_with(tmp_path, [{"name": "loss", "max": 100.0}])
    (row,) = compare(run, {"loss": loss_result([6.23])}, {"loss": loss_result([5.77])})
    assert row["verdict"] == "not enough evidence" and row["improved"] is None
    assert row["evidence"] == {"n": 1, "minimum": 6, "enough": False,
                               "shortfall": "n=1 below the minimum of 6 items; add evaluation rows"}
    line = summary_line(row)
    assert "BETTER" not in line and "NOT ENOUGH EVIDENCE (n=1 below the minimum of 6 items" in line
    # the gate would pass on the point value (5.77 < 100): it must not
    assert row["gate"]["passed"] is False
    assert gate_failures([row]) == ["gate loss.eval_loss not decided: n=1 below the minimum of 6 items; "
                                    "add evaluation rows"]
    assert "not_enough_evidence" in [f["code"] for f in health.analyze([], {}, [], eval_rows=[row])]


def test_below_the_minimum_no_verdict_at_the_minimum_a_real_one(tmp_path):
    run = run_with(tmp_path, [{"name": "loss", "max_regression": 0.0}])
    base, tuned = [6.1, 6.3, 5.9, 6.4, 6.0, 6.2], [5.1, 5.2, 5.0, 5.3, 4.9, 5.2]
    (five,) = compare(run, {"loss": loss_result(base[:5])}, {"loss": loss_result(tuned[:5])})
    assert five["verdict"] == "not enough evidence" and five["improved"] is None  # every item better, yet 5
    assert "n=5 below the minimum of 6" in five["reason"] and not five["gate"]["passed"]
    (six,) = compare(run, {"loss": loss_result(base)}, {"loss": loss_result(tuned)})
    assert six["verdict"] == "better" and six["evidence"]["enough"] and six["gate"]["passed"]
    # rates: 6 of 6 items flipped is McNemar p = 0.031
    gold = ["yes", "no"] * 3
    (rate,) = compare(run_with(tmp_path, [{"name": "classification", "min": 0.5}]),
                      {"classification": cls_result(["no", "yes"] * 3, gold, labels=("yes", "no"))},
                      {"classification": cls_result(gold, gold, labels=("yes", "no"))})
    assert rate["verdict"] == "better" and rate["gate"]["passed"]
    # five identical answers are not a collapse on too few items either
    (few,) = compare(run_with(tmp_path, [{"name": "classification"}]),
                     {"classification": cls_result(["no"] * 5, gold[:5], labels=("yes", "no"))},
                     {"classification": cls_result(["yes"] * 5, gold[:5], labels=("yes", "no"))})
    assert few["verdict"] == "not enough evidence" and not few["answers"]["tuned"]["collapsed"]


def test_a_degenerate_interval_is_not_enough_evidence(tmp_path, monkeypatch):
    from sftkit.evaluation.verdict import shortfall

    differ = [{"score": s} for s in (1.0, 2.0, 3.0, 4.0, 5.0, 6.0)]
    same = [{"score": 2.0}] * 6
    assert "zero width" in shortfall(differ, {"low": 3.5, "high": 3.5})
    assert shortfall(same, {"low": 2.0, "high": 2.0}) is None  # identical items: zero width is the truth
    assert "could not be computed" in shortfall(differ, {"low": None, "high": None})
    assert "could not be computed" in shortfall(differ, {"low": float("nan"), "high": 1.0})
    assert shortfall(differ, {"low": 2.0, "high": 5.0}) is None
    # through the verdict and the gate: an interval that collapsed to a point decides nothing
    monkeypatch.setattr(S, "bootstrap_mean", lambda scores, weights=None, **kw: (4.0, 4.0))
    run = run_with(tmp_path, [{"name": "loss", "max": 100.0}])
    (row,) = compare(run, {"loss": loss_result([6.1, 6.3, 5.9, 6.4, 6.0, 6.2])},
                     {"loss": loss_result([5.1, 5.2, 5.0, 5.3, 4.9, 5.2])})
    assert row["verdict"] == "not enough evidence" and "zero width" in row["reason"]
    assert not row["gate"]["passed"] and "gate loss.eval_loss not decided: the 95% interval" in row["gate"]["message"]


def test_prompt_only_baselines_are_never_beaten_on_too_few_items():
    from sftkit.evaluation.verdict import judge, versus_prompts

    cfg = {"seed": 0, "alpha": 0.05, "collapse_share": 0.9}
    items = lambda scores: [{"score": s, "prompt": f"q{i}"} for i, s in enumerate(scores)]  # noqa: E731
    # one item: the tuned model "beat" the baseline on it
    found = judge(0.0, 1.0, True, base=items([0.0]), tuned=items([1.0]), scale=None, cfg=cfg)
    found = versus_prompts(found, {"system_prompt": {"kind": "system_prompt", "value": 0.0, "items": items([0.0])}},
                           tuned_value=1.0, tuned=items([1.0]), higher_is_better=True, scale=None, cfg=cfg)
    assert found["verdict"] == "not enough evidence" and found["best_prompt"]["beats"] is False
    assert "paired" not in found["prompt_baselines"]["system_prompt"]
    assert found["prompt_baselines"]["system_prompt"]["shortfall"].startswith("n=1 below the minimum")
    # a tuned model better than base on 60 items, against a baseline scored on 3 of them: not decided
    tuned = items([1.0] * 60)
    found = judge(0.0, 1.0, True, base=items([0.0] * 60), tuned=tuned, scale=None, cfg=cfg)
    assert found["verdict"] == "better"
    found = versus_prompts(found, {"few_shot_3": {"kind": "few_shot", "value": 0.0, "items": items([0.0] * 3)}},
                           tuned_value=1.0, tuned=tuned, higher_is_better=True, scale=None, cfg=cfg)
    assert found["verdict"] == "not enough evidence" and "few_shot_3" in found["reason"]
    assert found["best_prompt"]["beats"] is False


def test_a_metric_without_direction_on_few_items_is_not_tested_and_raises_no_health_warning(tmp_path):
    samples = EvalResult({"avg_chars": 3.0}, "avg_chars", items=[{"score": 3.0, "prompt": "hi"}])
    run = run_with(tmp_path, [{"name": "samples", "items": ["hi"]}])
    (row,) = compare(run, {"samples": samples}, {"samples": samples})
    assert row["verdict"] == "not tested" and row["evidence"]["enough"] is False
    assert "not_enough_evidence" not in [f["code"] for f in health.analyze([], {}, [], eval_rows=[row])]
