"""Every run writes ``model/README.md``: a Hugging Face model card whose metadata reads back."""

import hashlib
import json
from pathlib import Path

import pytest
import tomli_w

SECRET = "s3cr3t-Card-Value"


def _front_matter(text: str) -> tuple[dict, str]:
    import yaml

    assert text.startswith("---\n")
    head, _, body = text[4:].partition("\n---\n")
    return yaml.safe_load(head), body


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from sftkit.run import run as run_pipeline
    from sftkit.tiny import save_tiny_model

    tmp = tmp_path_factory.mktemp("card")
    model = save_tiny_model(tmp / "tiny")
    rows = [{"prompt": f"What is {i} plus {i}?", "completion": f"It is {2 * i}."} for i in range(24)]
    (tmp / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp / "eval.jsonl").write_text("".join(json.dumps({"prompt": f"Add {i} and {i}.", "expected": str(2 * i)}) + "\n"
                                            for i in range(6)))
    recipe = {
        "recipe": {"name": "card", "seed": 1, "description": "tiny card run for ${CARD_TOKEN}"},
        "model": {"name": model},
        "data": [{"source": "jsonl", "path": "train.jsonl"}],
        "template": {"formatter": "chatml"},
        "strategy": {"name": "instruction"},
        "training": {"max_steps": 2, "per_device_train_batch_size": 4, "max_length": 64, "logging_steps": 1},
        "adapter": {"kind": "lora", "r": 4, "merge": True},
        "eval": [{"name": "contains", "label": "says the sum", "prompts": "eval.jsonl", "max_new_tokens": 4},
                 {"name": "json_valid", "label": "json", "items": ["Say hi", "Say bye"], "max_new_tokens": 4}],
    }
    (tmp / "recipe.toml").write_text(tomli_w.dumps(recipe))
    mp = pytest.MonkeyPatch()
    mp.setenv("CARD_TOKEN", SECRET)
    mp.chdir(tmp)
    try:
        out = run_pipeline(tmp / "recipe.toml", [], output=tmp / "run")
    finally:
        mp.undo()
    return out.run_dir


def test_every_run_writes_a_card_whose_metadata_reads_back(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    text = (run_dir / "model" / "README.md").read_text()
    meta, body = _front_matter(text)
    assert meta["base_model"] == str(run_dir.parent / "tiny")
    assert meta["library_name"] == "transformers" and meta["pipeline_tag"] == "text-generation"
    assert {"sftkit", "instruction", "lora"} <= set(meta["tags"])
    digest = hashlib.sha256((run_dir.parent / "train.jsonl").read_bytes()).hexdigest()
    assert f"sha256:{digest}" in meta["datasets"]
    results = meta["model-index"][0]["results"]
    assert [r["dataset"]["name"] for r in results] == [row["label"] for row in metrics["eval"]]
    assert [r["metrics"][0]["value"] for r in results] == [row["tuned"] for row in metrics["eval"]]
    for heading in ("## What was trained", "## Evaluation: before and after", "## Gates", "## Health findings",
                    "## Contamination"):
        assert heading in body
    assert "n=6" in body  # the verdict table carries n and the interval
    assert f"**steps**: {metrics['train']['steps']}" in body


def test_the_card_scrubs_secrets(run_dir):
    text = (run_dir / "model" / "README.md").read_text()
    assert SECRET not in text and "***redacted***" in text


def test_an_adapter_card_says_peft(run_dir):
    from sftkit.reporting.model_card import render_card

    metrics = json.loads((run_dir / "metrics.json").read_text())
    meta, _ = _front_matter(render_card(metrics, {"model": {"name": "base"}}, adapter=True))
    assert meta["library_name"] == "peft" and meta["base_model"] == "base" and "datasets" not in meta


def test_export_copies_the_card_and_verifies_on_the_run_prompts(run_dir, tmp_path):
    from click.testing import CliRunner

    from sftkit.commands.export import export

    out = tmp_path / "run.gguf"
    res = CliRunner().invoke(export, [str(run_dir), "-o", str(out)])
    assert res.exit_code == 0, res.output
    figures = json.loads(Path(f"{out}.verify.json").read_text())
    assert figures["prompts_from"] == "run" and figures["prompts"] == 8  # 6 from eval.jsonl + 2 inline
    assert (tmp_path / "run.README.md").read_text() == (run_dir / "model" / "README.md").read_text()
