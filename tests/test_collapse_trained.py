"""Collapse on a tiny *trained* model: a classifier trained until it answers the majority class for
everything, and a language model trained to answer "A" to every multiple-choice question, run
through the real run and evaluators. The verdict and the report say "collapsed", never "better",
although the tuned accuracy is far above the base model's."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_run import make_recipe, run, write_jsonl  # noqa: E402

from sftkit.evaluation.verdict import summary_line  # noqa: E402
from sftkit.reporting import health  # noqa: E402

WORDS = ["fox", "dog", "service", "film", "patient", "answer", "question", "message"]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from sftkit.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def _review(i: int, label: str) -> dict:
    word = {"positive": "I love this", "negative": "This is terrible", "neutral": "It is okay"}[label]
    return {"text": f"{word}: the {WORDS[i % len(WORDS)]} number {i}.", "label": label}


def test_a_classifier_trained_onto_the_majority_class_is_collapsed(tmp_path, tiny_dir):
    # training: 90% positive, on texts that say nothing about the label, so a few large steps teach
    # the head the prior alone: "positive" for everything
    train = [{"text": f"The {WORDS[i % len(WORDS)]} number {i}.",
              "label": "negative" if i % 20 == 0 else "neutral" if i % 20 == 1 else "positive"} for i in range(80)]
    write_jsonl(tmp_path / "cls.jsonl", train)
    # the drug-review proportions: 27 negative, 9 neutral, 84 positive (here 9 / 3 / 28)
    items = [_review(1000 + i, lab) for i, lab in enumerate(["negative"] * 9 + ["neutral"] * 3 + ["positive"] * 28)]
    write_jsonl(tmp_path / "reviews.jsonl", items)
    data = [{"source": "jsonl", "path": "cls.jsonl", "format": "classification"}]
    recipe = make_recipe(tmp_path, tiny_dir, data=data, strategy={"name": "classification"},
                         dataset={"eval_fraction": 0.0},
                         training={"max_steps": 12, "per_device_train_batch_size": 8, "learning_rate": 1e-2},
                         eval=[{"name": "classification", "path": "reviews.jsonl"}])
    out = run(recipe, output=tmp_path / "run")
    (row,) = out.metrics["eval"]
    assert row["answers"]["tuned"]["top"] == "positive" and row["answers"]["tuned"]["top_share"] == 1.0
    assert row["tuned"] == pytest.approx(28 / 40)  # the majority class, nothing more
    assert row["baselines"]["majority"] == {"answer": "positive", "value": pytest.approx(28 / 40)}
    assert row["verdict"] == "collapsed" and row["improved"] is None
    assert row["answers"]["base"]["collapsed"], row["answers"]
    assert "'positive'" in row["reason"] and "trivial baseline 0.7" in row["reason"]
    assert "COLLAPSED" in summary_line(row)
    findings = health.analyze([], {}, [], eval_rows=[row])  # the untrained random head is one class too
    assert [f["code"] for f in findings] == ["collapsed"] and "base model too" in findings[0]["title"]
    md = (tmp_path / "run" / "report.md").read_text()
    top = md[: md.index("## Evaluation")]
    assert "| collapsed |" in top and "better" not in top.split("**Gates")[0].replace("Better / worse", "")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["eval"][0]["verdict"] == "collapsed"


def _question(i: int, answer: str) -> dict:
    choices = [f"{WORDS[(i + k) % len(WORDS)]} {i + k}" for k in range(4)]
    return {"question": f"Which one is number {i}?", "choices": choices, "answer": answer}


def _as_text(q: dict) -> str:
    body = q["question"] + "\n" + "".join(f"{letter}. {c}\n" for letter, c in zip("ABCD", q["choices"]))
    return body + f"Answer: {q['answer']}"


def test_a_model_trained_to_answer_a_everywhere_is_collapsed(tmp_path, tiny_dir):
    # continued pretraining on questions whose answer is always A
    write_jsonl(tmp_path / "docs.jsonl", [{"text": _as_text(_question(i, "A"))} for i in range(60)])
    gold = list("ABCDABCDAABCDBCDACDA")  # A is the answer to 6 of 20
    write_jsonl(tmp_path / "mmlu.jsonl", [_question(500 + i, g) for i, g in enumerate(gold)])
    data = [{"source": "jsonl", "path": "docs.jsonl", "format": "text"}]
    recipe = make_recipe(tmp_path, tiny_dir, data=data, strategy={"name": "domain"}, dataset={"eval_fraction": 0.0},
                         training={"max_steps": 15, "per_device_train_batch_size": 4, "learning_rate": 1e-2,
                                   "max_length": 64},
                         eval=[{"name": "multiple_choice", "path": "mmlu.jsonl", "label": "mmlu"}])
    out = run(recipe, output=tmp_path / "run")
    (row,) = out.metrics["eval"]
    assert row["answers"]["tuned"]["top"] == "A" and row["answers"]["tuned"]["top_share"] == 1.0
    assert row["tuned"] == pytest.approx(6 / 20)  # the share of questions whose answer is A
    assert row["baselines"]["majority"]["value"] == pytest.approx(6 / 20) and row["baselines"]["chance"]["value"] == 0.25
    assert row["verdict"] == "collapsed" and row["improved"] is None
    assert "collapsed" in [f["code"] for f in health.analyze([], {}, [], eval_rows=[row])]
    md = (tmp_path / "run" / "report.md").read_text()
    assert "| mmlu | collapsed |" in md
