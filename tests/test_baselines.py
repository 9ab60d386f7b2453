"""Prompt-only baselines ([[baseline]]): the base model with a system prompt or few-shot examples
through the same evaluators on the same items, and a verdict that never says "better" when a prompt
alone does as well."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import tomli_w
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from test_run import make_recipe, qa_rows, run, write_jsonl  # noqa: E402

from sftkit.api import EvalResult, RunContext  # noqa: E402
from sftkit.config import resolve
from sftkit.evaluation import compare  # noqa: E402
from sftkit.evaluation.baselines import Baseline, build, draw_examples, example_turns  # noqa: E402


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from sftkit.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def test_system_prompt_and_few_shot_change_only_the_conversation():
    sp = Baseline("sp", "system_prompt", system="Answer in one word.")
    assert sp.apply([{"role": "user", "content": "Capital of France?"}]) == [
        {"role": "system", "content": "Answer in one word."}, {"role": "user", "content": "Capital of France?"}]
    # the item's (or the template's) own system prompt comes first
    assert sp.apply([{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi"}])[0] == \
        {"role": "system", "content": "Be kind.\n\nAnswer in one word."}
    assert sp.apply([{"role": "user", "content": "Hi"}], "Template system.")[0]["content"] == \
        "Template system.\n\nAnswer in one word."
    rows = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
            for i in range(10)]
    examples = draw_examples(rows, 2, seed=1)
    assert examples == draw_examples(rows, 2, seed=1) and examples != draw_examples(rows, 2, seed=2)
    fs = Baseline("fs", "few_shot", k=2, examples=examples)
    out = fs.apply([{"role": "user", "content": examples[0][0]["content"]}])  # the item is the first example
    assert len(out) == 5 and out[-1] == {"role": "user", "content": examples[0][0]["content"]}
    assert out[:4] == [*examples[1], *examples[2]]  # its own example is skipped, the next one stands in


def test_training_rows_of_every_kind_become_examples_or_none():
    assert example_turns({"prompt": [{"role": "user", "content": "p"}], "chosen": "c", "rejected": "r"}) == [
        {"role": "user", "content": "p"}, {"role": "assistant", "content": "c"}]
    assert example_turns({"prompt": [{"role": "user", "content": "p"}], "completion": "c", "label": True})[1] == \
        {"role": "assistant", "content": "c"}
    assert example_turns({"prompt": [{"role": "user", "content": "p"}], "completion": "c", "label": False}) is None
    assert example_turns({"text": "great film", "label": "positive"})[1]["content"] == "positive"
    assert example_turns({"text": "a document"}) is None
    with pytest.raises(Exception, match="few-shot baseline 'few_shot_3' found no training row"):
        build(resolve({"baseline": [{"kind": "few_shot", "k": 3}]}).baseline, [{"text": "a document"}], seed=0)


def _items(scores, prefix="q"):
    return [{"score": float(s), "answer": f"ans{i % 7}{s}", "expected": f"e{i}", "prompt": f"{prefix}{i}"}
            for i, s in enumerate(scores)]


def _result(scores):
    return EvalResult({"accuracy": sum(scores) / len(scores)}, "accuracy", items=_items(scores))


def test_better_than_base_is_not_better_when_a_prompt_does_as_well(tmp_path):
    run = RunContext(config=resolve({"eval": [{"name": "exact_match", "label": "qa"}],
                             "baseline": [{"kind": "system_prompt", "system": "Be exact."},
                                          {"kind": "few_shot", "k": 3}]}),
                     recipe_path=None, base_dir=tmp_path, run_dir=tmp_path)
    base = [1] * 10 + [0] * 50              # 0.17
    tuned = [1] * 40 + [0] * 20             # 0.67, significantly above the base model
    prompted = [0] * 5 + [1] * 38 + [0] * 17  # 0.63: a system prompt does about as well
    few = [1] * 20 + [0] * 40
    baselines = {"system_prompt": {"qa": _result(prompted)}, "few_shot_3": {"qa": _result(few)}}
    (row,) = compare(run, {"qa": _result(base)}, {"qa": _result(tuned)}, baselines)
    assert row["stats"]["paired"]["p"] < 0.001 and row["improved"] is None
    assert row["verdict"] == "no better than baseline" and "a prompt does as well" in row["reason"]
    best = row["best_prompt"]
    assert best["label"] == "system_prompt" and best["value"] == pytest.approx(38 / 60) and best["beats"] is False
    assert best["delta"] == pytest.approx(2 / 60) and best["delta_low"] < 0 < best["delta_high"]
    pb = row["prompt_baselines"]
    assert pb["few_shot_3"]["stats"]["n"] == 60 and pb["few_shot_3"]["stats"]["low"] < 1 / 3 < pb["few_shot_3"]["stats"]["high"]
    assert pb["few_shot_3"]["paired"]["p"] < 0.001  # tuned against this baseline, on the same items
    # the tuned model clearly above every prompt: better, and the reason says by how much
    baselines["system_prompt"] = {"qa": _result([1] * 15 + [0] * 45)}
    (row,) = compare(run, {"qa": _result(base)}, {"qa": _result(tuned)}, baselines)
    assert row["verdict"] == "better" and row["improved"] is True
    assert row["best_prompt"]["label"] == "few_shot_3" and row["best_prompt"]["beats"] is True
    assert "beats the best prompt-only baseline 'few_shot_3' scores 0.3333 (tuned +0.333" in row["reason"]
    # a baseline that cannot prompt the evaluator is shown as such and never counts as the best
    na = {"system_prompt": {"qa": EvalResult({}, "accuracy", details={"not_applicable": "raw text"})}}
    (row,) = compare(run, {"qa": _result(base)}, {"qa": _result(tuned)}, na)
    assert row["verdict"] == "better" and "best_prompt" not in row
    assert row["prompt_baselines"]["system_prompt"] == {"kind": "system_prompt", "not_applicable": "raw text"}


def test_a_baseline_that_failed_leaves_no_better_verdict_and_fails_the_run(tmp_path):
    """"better" claims the tuned model beats every prompt asked for; one that was never scored
    makes the row an error, listed with the evaluation errors that fail `sftkit run` / `eval`."""
    from sftkit.reporting.accounting import evaluation_errors

    run = RunContext(config=resolve({"eval": [{"name": "exact_match", "label": "qa"}],
                             "baseline": [{"kind": "system_prompt", "system": "Be exact."},
                                          {"kind": "few_shot", "k": 3}]}),
                     recipe_path=None, base_dir=tmp_path, run_dir=tmp_path)
    base, tuned, few = [1] * 10 + [0] * 50, [1] * 40 + [0] * 20, [1] * 20 + [0] * 40
    baselines = {"system_prompt": {"qa": EvalResult({}, "accuracy", error="RuntimeError: out of memory")},
                 "few_shot_3": {"qa": _result(few)}}
    (row,) = compare(run, {"qa": _result(base)}, {"qa": _result(tuned)}, baselines)
    assert row["best_prompt"]["label"] == "few_shot_3" and row["best_prompt"]["beats"] is True
    assert row["verdict"] == "error" and row["improved"] is None
    assert "prompt-only baseline 'system_prompt' failed (RuntimeError: out of memory)" in row["reason"]
    assert evaluation_errors([row]) == [
        "evaluator qa failed under prompt-only baseline system_prompt: RuntimeError: out of memory"]


def test_baselines_run_through_the_real_evaluators_on_a_tiny_model(tmp_path, tiny_dir, monkeypatch):
    from sftkit.evaluation.target import Target

    generated: list[str] = []
    real = Target.generate_ids

    def spy(self, prompts, max_new_tokens=128):
        generated.extend(prompts)
        return real(self, prompts, max_new_tokens=max_new_tokens)

    monkeypatch.setattr(Target, "generate_ids", spy)
    rows = qa_rows(40)
    items = [{"prompt": f"What is {n} times two?", "expected": f"It is {2 * n}."} for n in range(50, 56)]
    write_jsonl(tmp_path / "items.jsonl", items)
    evals = [{"name": "exact_match", "prompts": "items.jsonl", "max_new_tokens": 3}, {"name": "loss"},
             {"name": "samples", "items": ["Hello there"], "max_new_tokens": 2}]
    baselines = [{"kind": "system_prompt", "system": "Answer with the number."},
                 {"kind": "system_prompt", "label": "same prompt again", "system": "Answer with the number."},
                 {"kind": "few_shot", "k": 2}]
    recipe = make_recipe(tmp_path, tiny_dir, rows=rows, training={"max_steps": 1}, eval=evals, baseline=baselines)
    outcome = run(recipe, output=tmp_path / "run")
    em, loss, samples = outcome.metrics["eval"]
    pb = em["prompt_baselines"]
    assert list(pb) == ["system_prompt", "same prompt again", "few_shot_2"]
    for entry in pb.values():
        assert entry["value"] is not None and entry["stats"]["n"] == 6 and "paired" in entry
    assert em["best_prompt"]["label"] in pb
    assert all("not_applicable" in e for e in loss["prompt_baselines"].values())  # loss renders no prompt
    assert all("no better direction" in e["not_applicable"] for e in samples["prompt_baselines"].values())
    # the prompts the base model saw: 6 plain, 6 with the system prompt (generated once for both
    # tables), 6 with two training conversations first; the tuned model 6 plain; and the samples
    # prompt once per model (not under the baselines)
    system = [p for p in generated if "Answer with the number." in p]
    shots = [p for p in generated if p.count("<|im_start|>assistant") == 3]
    assert len(system) == 6 and len(shots) == 6 and len(generated) == 26
    assert all(any(r["prompt"] in p and r["completion"] in p for r in rows) for p in shots)
    stored = json.loads((tmp_path / "run" / "base_eval.json").read_text())
    assert set(stored["baselines"]) == set(pb)
    md = (tmp_path / "run" / "report.md").read_text()
    top = md[: md.index("## Evaluation")]
    assert "prompt-only baselines" in top and "few_shot_2 " in top and "system_prompt n/a" in top
    # sftkit eval --base: the same stages, the same baselines beside the base model
    from sftkit.run import evaluate

    again = evaluate(recipe, str(tmp_path / "run" / "model"), base=True, output=tmp_path / "eval")
    em2 = again.metrics["eval"][0]
    assert list(em2["prompt_baselines"]) == list(pb)
    assert {k: e["value"] for k, e in em2["prompt_baselines"].items()} == {k: e["value"] for k, e in pb.items()}


def _validate(tmp_path, **sections) -> tuple[int, str]:
    from sftkit.cli import cli as main

    (tmp_path / "train.jsonl").write_text('{"text": "a document about cells"}\n')
    recipe = {"recipe": {"name": "v"}, "model": {"name": "org/m"}, "data": [{"source": "jsonl", "path": "train.jsonl"}],
              "strategy": {"name": "domain"}, **sections}
    path = tmp_path / "r.toml"
    path.write_text(tomli_w.dumps(recipe))
    res = CliRunner().invoke(main, ["validate", str(path)])
    return res.exit_code, res.output


def test_baseline_tables_are_validated_without_torch(tmp_path):
    evals = [{"name": "samples", "items": ["Hi"]}]
    code, out = _validate(tmp_path, eval=evals, baseline=[{"kind": "system_prompt", "system": "Be brief."}])
    assert code == 0, out
    code, out = _validate(tmp_path, baseline=[{"kind": "system_prompt", "system": "Be brief."}])
    assert code == 1 and "[[baseline]] has no effect: the recipe has no [[eval]] table" in out
    code, out = _validate(tmp_path, eval=evals, baseline=[{"kind": "system_prompt", "k": 3}])
    assert "a system_prompt baseline needs its system prompt" in out and "k has no effect" in out
    assert "r.toml:" in out  # located
    code, out = _validate(tmp_path, eval=evals, baseline=[{"kind": "few_shot"}])
    assert code == 1 and "few-shot examples need questions and answers, but the training data is raw text" in out
    code, out = _validate(tmp_path, eval=evals, baseline=[{"kind": "zero_shot", "sytem": "x"}])
    assert code == 1 and "zero_shot" in out and "sytem" in out
