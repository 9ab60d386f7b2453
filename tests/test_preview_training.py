"""``sftkit preview`` shows exactly what training feeds the model, for every strategy: the preview's
token ids and trained-token mask equal the rows the strategy's trainer collates (the trainer is
built by the real run and stopped before its first step)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_run import _prefs, make_recipe, qa_rows, run, write_jsonl  # noqa: E402

from sftkit.commands.preview import build_preview  # noqa: E402


class Built(Exception):
    """Raised instead of training: carries the trainer the strategy built."""


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from sftkit.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def trainer_of(recipe, tmp_path, monkeypatch):
    """The trainer the real run builds for ``recipe`` (training itself is not run)."""
    import sftkit.strategies.trainer as T

    def stop(run_ctx, trainer, **kw):
        raise Built(trainer)

    monkeypatch.setattr(T, "fit", stop)
    with pytest.raises(Built) as caught:
        run(recipe, output=tmp_path / "run")
    return caught.value.args[0]


def collated(trainer, i: int) -> dict:
    """Row ``i`` of the trainer's training set through its own data collator, as plain lists."""
    batch = trainer.data_collator([trainer.train_dataset[i]])
    return {k: v.tolist() for k, v in batch.items() if hasattr(v, "tolist")}


def mask_of(labels: list[int]) -> list[int]:
    return [0 if x == -100 else 1 for x in labels]


def check_causal(recipe, tmp_path, monkeypatch, n=3):
    preview = build_preview(recipe, n=n)
    trainer = trainer_of(recipe, tmp_path, monkeypatch)
    assert len(preview["examples"]) == n and preview["rows"] == len(trainer.train_dataset)
    for ex in preview["examples"]:
        batch = collated(trainer, ex["index"])
        assert batch["input_ids"][0] == ex["input_ids"]
        assert batch["labels"][0] == ex["labels"]  # the same tokens trained, the same masked
    return preview, trainer


def test_instruction_preview_is_the_training_rows(tmp_path, tiny_dir, monkeypatch):
    recipe = make_recipe(tmp_path, tiny_dir, rows=qa_rows(24), dataset={"eval_fraction": 0.0})
    preview, _ = check_causal(recipe, tmp_path, monkeypatch)
    assert any(0 < sum(mask_of(ex["labels"])) < len(ex["labels"]) for ex in preview["examples"])  # prompt masked


def test_instruction_train_on_prompt_is_previewed_as_trained(tmp_path, tiny_dir, monkeypatch):
    recipe = make_recipe(tmp_path, tiny_dir, rows=qa_rows(24), dataset={"eval_fraction": 0.0},
                         strategy={"name": "instruction", "train_on_prompt": True})
    preview, _ = check_causal(recipe, tmp_path, monkeypatch)
    assert all(set(mask_of(ex["labels"])) == {1} for ex in preview["examples"])  # the prompt trains too


def test_tone_on_conversations_previews_the_sft_rows(tmp_path, tiny_dir, monkeypatch):
    recipe = make_recipe(tmp_path, tiny_dir, rows=qa_rows(24), strategy={"name": "tone"},
                         dataset={"eval_fraction": 0.0})
    check_causal(recipe, tmp_path, monkeypatch)


def test_domain_preview_is_the_packed_training_rows(tmp_path, tiny_dir, monkeypatch):
    docs = [{"text": f"Document {i} about the quick brown fox and the lazy dog. " * (1 + i % 3)} for i in range(20)]
    write_jsonl(tmp_path / "docs.jsonl", docs)
    data = [{"source": "jsonl", "path": "docs.jsonl", "format": "text"}]
    recipe = make_recipe(tmp_path, tiny_dir, data=data, strategy={"name": "domain"}, dataset={"eval_fraction": 0.0},
                         training={"max_length": 48})
    preview, trainer = check_causal(recipe, tmp_path, monkeypatch)
    # packed: full rows of max_length, every token trained, documents run across rows
    assert all(ex["length"] == 48 and set(mask_of(ex["labels"])) == {1} for ex in preview["examples"])
    batch = collated(trainer, 0)
    assert "position_ids" in batch and 0 in batch["position_ids"][0][1:]  # a document starts mid-row


def test_tone_dpo_preview_is_what_the_dpo_trainer_collates(tmp_path, tiny_dir, monkeypatch):
    write_jsonl(tmp_path / "prefs.jsonl", _prefs(16))
    data = [{"source": "jsonl", "path": "prefs.jsonl"}]
    recipe = make_recipe(tmp_path, tiny_dir, data=data, strategy={"name": "tone"}, dataset={"eval_fraction": 0.0},
                         training={"max_length": 40})
    preview = build_preview(recipe, n=3)
    trainer = trainer_of(recipe, tmp_path, monkeypatch)
    assert preview["rows"] == len(trainer.train_dataset)
    for ex in preview["examples"]:
        batch = collated(trainer, ex["index"])  # rows 0 / 1: the chosen / the rejected sequence
        chosen, rejected = batch["input_ids"]
        n_chosen, n_rejected = (sum(m) for m in batch["attention_mask"])
        assert chosen[:n_chosen] == ex["input_ids"] and rejected[:n_rejected] == ex["rejected_input_ids"]
        assert batch["completion_mask"][0][:n_chosen] == mask_of(ex["labels"])
        assert batch["completion_mask"][1][:n_rejected] == mask_of(ex["rejected_labels"])
        assert 0 < sum(mask_of(ex["labels"])) < len(ex["labels"])  # the prompt is not trained
    text = build_preview(recipe, n=1)
    from sftkit.commands.preview import render_text

    assert "its rejected answer (pushed down)" in render_text(text, color=False)


def test_tone_kto_preview_is_what_the_kto_trainer_collates(tmp_path, tiny_dir, monkeypatch):
    rows = [{"prompt": f"Reply to customer {i}.", "completion": ("Thank you, we are sorry." if i % 2 else "No."),
             "label": bool(i % 2)} for i in range(16)]
    write_jsonl(tmp_path / "labeled.jsonl", rows)
    data = [{"source": "jsonl", "path": "labeled.jsonl"}]
    recipe = make_recipe(tmp_path, tiny_dir, data=data, strategy={"name": "tone"}, dataset={"eval_fraction": 0.0})
    preview = build_preview(recipe, n=3)
    trainer = trainer_of(recipe, tmp_path, monkeypatch)
    assert preview["rows"] == len(trainer.train_dataset)
    for ex in preview["examples"]:
        batch = collated(trainer, ex["index"])
        assert batch["input_ids"][0] == ex["input_ids"]
        assert batch["completion_mask"][0] == mask_of(ex["labels"])
        assert ex["label"].startswith("a good answer" if trainer.train_dataset[ex["index"]]["label"] else "a bad answer")


def test_classification_preview_is_what_the_classifier_collates(tmp_path, tiny_dir, monkeypatch):
    rows = [{"text": f"I {'love' if i % 3 else 'hate'} item {i}", "label": "pos" if i % 3 else "neg"} for i in range(30)]
    write_jsonl(tmp_path / "cls.jsonl", rows)
    data = [{"source": "jsonl", "path": "cls.jsonl", "format": "classification"}]
    recipe = make_recipe(tmp_path, tiny_dir, data=data, strategy={"name": "classification"},
                         dataset={"eval_fraction": 0.0})
    preview = build_preview(recipe, n=3)
    trainer = trainer_of(recipe, tmp_path, monkeypatch)
    id2label = trainer.model.config.id2label
    for ex in preview["examples"]:
        batch = collated(trainer, ex["index"])
        assert batch["input_ids"][0] == ex["input_ids"] and set(mask_of(ex["labels"])) == {0}
        assert id2label[batch["labels"][0]] == ex["label"]
