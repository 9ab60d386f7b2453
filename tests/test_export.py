"""`sftkit export`: GGUF files read back by sftkit's own loader answer like the model they came from."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from sftkit.tiny import CHATML_TEMPLATE, save_tiny_model


def _export(*args):
    from sftkit.commands.export import export

    return CliRunner().invoke(export, [str(a) for a in args])


ANSWERS = ("Paris is the capital.", "The sea is wide and blue.", "Red, green and blue.", "It is 42.",
           "Gracias.", "Mars.", "Hello there!", "Light scatters.")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """A tiny Llama trained (60 steps, ~10 s) to answer the built-in verification prompts: a random one's
    greedy answers barely depend on its attention, so they could not show a wrong export."""
    import torch

    from sftkit.export.prompts import BUILTIN_PROMPTS
    from sftkit.tiny import tiny_causal_lm, tiny_tokenizer

    tok = tiny_tokenizer(chat_template=CHATML_TEMPLATE)
    model = tiny_causal_lm(tok, hidden_size=64)
    texts = [tok.apply_chat_template([{"role": "user", "content": p}, {"role": "assistant", "content": a}],
                                     tokenize=False) for p, a in zip(BUILTIN_PROMPTS, ANSWERS)]
    batch = tok(texts, return_tensors="pt", padding=True)
    labels = batch.input_ids.masked_fill(batch.attention_mask == 0, -100)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    torch.manual_seed(0)
    model.train()
    for _ in range(60):
        model(**batch, labels=labels).loss.backward()
        opt.step()
        opt.zero_grad()
    directory = tmp_path_factory.mktemp("tiny") / "model"
    model.eval().save_pretrained(directory)
    tok.save_pretrained(directory)
    return directory


def test_the_trained_tiny_model_answers_what_it_learned(tiny_dir):
    from sftkit.evaluation.target import Target
    from sftkit.modeling.loading import load_trained

    model, tok = load_trained(tiny_dir)
    assert Target(model, tok).generate(["What is the capital of France?"]) == [ANSWERS[0]]


def _figures(path):
    return json.loads(Path(f"{path}.verify.json").read_text())


@pytest.mark.parametrize("quant", ["f16", "bf16", "f32"])
def test_f16_bf16_and_f32_answer_identically_and_carry_tokenizer_and_template(tiny_dir, tmp_path, quant):
    import gguf

    out = tmp_path / f"tiny-{quant}.gguf"
    res = _export(tiny_dir, "--quant", quant, "-o", out)
    assert res.exit_code == 0, res.output
    figures = _figures(out)
    assert figures["passed"] and figures["agreement"] == 1.0 and figures["prompts"] == 8
    assert figures["prompt_tokens_identical"] == 8 and figures["token_agreement"] == 1.0
    assert figures["first_divergence"] == [] and figures["disagreements"] == []
    assert figures["prompts_from"] == "built-in" and figures["bytes"] == out.stat().st_size
    assert figures["source_dtype"] == "float32"
    reader = gguf.GGUFReader(out)
    fields = {name: f.contents() for name, f in reader.fields.items()}
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    assert fields["general.architecture"] == "llama"
    assert fields["tokenizer.ggml.model"] == "gpt2"
    assert fields["tokenizer.chat_template"] == CHATML_TEMPLATE
    assert fields["tokenizer.ggml.eos_token_id"] == tok.eos_token_id
    assert fields["tokenizer.ggml.bos_token_id"] == tok.bos_token_id
    assert fields["tokenizer.ggml.padding_token_id"] == tok.pad_token_id
    assert tok.convert_tokens_to_ids("<|im_end|>") in fields["sftkit.stop_token_ids"]
    assert not list(tmp_path.glob(".*partial"))


def test_q8_0_agrees_on_at_least_95_percent_and_is_smaller(tiny_dir, tmp_path):
    res = _export(tiny_dir, "--quant", "q8_0", "-o", tmp_path / "q.gguf")
    assert res.exit_code == 0, res.output
    figures = _figures(tmp_path / "q.gguf")
    assert figures["agreement"] >= 0.95 and figures["passed"]
    f16 = tmp_path / "f.gguf"
    assert _export(tiny_dir, "-o", f16).exit_code == 0
    assert (tmp_path / "q.gguf").stat().st_size < f16.stat().st_size


def test_verification_fails_when_the_file_answers_differently(tiny_dir, tmp_path, monkeypatch):
    """Without llama.cpp's q/k row order the loader un-permutes wrong rows: the check must say so and exit 3."""
    from sftkit.export import gguf_file

    monkeypatch.setattr(gguf_file, "_permute", lambda w, n_head, n_kv=None: w)
    res = _export(tiny_dir, "-o", tmp_path / "bad.gguf")
    assert res.exit_code == 3, res.output
    assert "verification failed" in res.output
    figures = _figures(tmp_path / "bad.gguf")
    assert not figures["passed"] and figures["agreement"] < 1.0 and figures["disagreements"]
    assert figures["prompt_tokens_identical"] == 8  # the tokenizer is right: the weights are what differ
    assert figures["token_agreement"] < 1.0
    assert len(figures["first_divergence"]) == 8 - figures["identical"]
    for row in figures["disagreements"]:
        assert row["first_divergence"] >= 0 and row["source_margin"] >= 0
    assert "differs from token" in res.output


def test_first_divergence_and_token_agreement():
    from sftkit.export.verify import compare_answers, first_divergence

    assert first_divergence([1, 2, 3], [1, 2, 3]) is None
    assert first_divergence([1, 2, 3], [1, 5, 3]) == 1
    assert first_divergence([1, 2], [1, 2, 3]) == 2  # one answer ended where the other went on
    convs = [[{"role": "user", "content": p}] for p in ("a", "b")]
    figures = compare_answers(["x y", "same"], ["x z", "same"], "q8_0", convs, source_ids=[[1, 2], [7]],
                              export_ids=[[1, 3], [7]], margins=[0.25, None])
    assert figures["identical"] == 1 and figures["agreement"] == 0.5 and not figures["passed"]
    assert figures["token_agreement"] == round(2 / 3, 4) and figures["first_divergence"] == [1]
    assert figures["disagreements"] == [{"prompt": "a", "source": "x y", "export": "x z", "first_divergence": 1,
                                         "source_margin": 0.25}]
    assert figures["max_source_margin_at_divergence"] == 0.25


def test_a_prompt_the_file_tokenizes_differently_fails_even_with_equal_answers():
    from sftkit.export.verify import compare_answers

    convs = [[{"role": "user", "content": "a"}]]
    assert compare_answers(["x"], ["x"], "f16", convs)["passed"]
    figures = compare_answers(["x"], ["x"], "f16", convs, prompts_same=0)
    assert not figures["passed"] and figures["agreement"] == 1.0


def test_unsupported_architecture_is_one_line_and_writes_nothing(tmp_path):
    src = Path(save_tiny_model(tmp_path / "mistral", chat_template=CHATML_TEMPLATE, architecture="mistral"))
    out = tmp_path / "out"
    res = _export(src, "-o", out / "m.gguf")
    assert res.exit_code != 0
    assert "MistralForCausalLM cannot be exported to GGUF" in res.output and "LlamaForCausalLM" in res.output
    assert "Traceback" not in res.output and not out.exists()


def test_model_without_tokenizer_is_one_line_and_writes_nothing(tiny_dir, tmp_path):
    import shutil

    src = tmp_path / "notok"
    shutil.copytree(tiny_dir, src)
    for f in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        (src / f).unlink(missing_ok=True)
    res = _export(src, "-o", tmp_path / "x.gguf")
    assert res.exit_code != 0 and "has no tokenizer" in res.output
    assert not (tmp_path / "x.gguf").exists() and "Traceback" not in res.output


def test_lora_adapter_is_merged_before_export(tiny_dir, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sftkit.modeling.loading import read_gguf

    base = AutoModelForCausalLM.from_pretrained(tiny_dir)
    peft_model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(adapter)
    AutoTokenizer.from_pretrained(tiny_dir).save_pretrained(adapter)
    res = _export(adapter, "-o", tmp_path / "a.gguf")
    assert res.exit_code == 0, res.output
    merged = peft_model.merge_and_unload().eval()
    exported, _ = read_gguf(tmp_path / "a.gguf")
    ids = torch.tensor([[5, 17, 42, 99]])
    with torch.no_grad():
        assert torch.allclose(exported(ids).logits, merged(ids).logits, atol=1e-2)
        plain = AutoModelForCausalLM.from_pretrained(tiny_dir).eval()
        assert not torch.allclose(exported(ids).logits, plain(ids).logits, atol=1e-2)


def test_a_run_directory_is_verified_on_its_eval_prompts(tiny_dir, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_dir, run / "model")
    (run / "COMPLETE").write_text("{}")
    (run / "recipe.toml").write_text('[template]\nsystem = "Be brief."\n\n[[eval]]\nname = "contains"\n'
                                     'items = [{prompt = "What is 2+2?", expected = "4"}, '
                                     '{prompt = "Capital of France?", expected = "Paris"}]\n\n'
                                     '[[eval]]\nname = "json_valid"\nlimit = 1\n'
                                     'items = ["Say hi", "Say bye", "Say yes"]\n')
    res = _export(run, "--quant", "q8_0")
    assert res.exit_code == 0, res.output
    out = run / "export" / "run-q8_0.gguf"
    figures = _figures(out)
    assert figures["prompts_from"] == "run" and figures["prompts"] == 3  # 2 + the 1 item the limit kept


def test_serve_loads_the_exported_file(tiny_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("SFTKIT_CACHE", str(tmp_path / "cache"))
    from sftkit.serving.loading import load_model, parse_model_arg

    out = tmp_path / "s.gguf"
    assert _export(tiny_dir, "-o", out).exit_code == 0
    served = load_model(parse_model_arg(str(out)), device="cpu")
    try:
        assert served.tokenizer.chat_template == CHATML_TEMPLATE
        assert served.render([{"role": "user", "content": "hi"}]).endswith("<|im_start|>assistant\n")
    finally:
        served.engine.close()


def test_help_names_the_supported_architectures_and_imports_nothing_heavy():
    import subprocess
    import sys

    from sftkit.export.gguf_file import SUPPORTED_ARCHITECTURES

    heavy = ("torch", "transformers", "trl", "datasets", "peft", "accelerate", "numpy", "pyarrow", "gguf")
    code = ("import sys\nfrom sftkit.cli import main\ntry:\n    main(['export', '--help'])\nexcept SystemExit:\n"
            f"    pass\nprint('HEAVY=' + ','.join(m for m in {heavy!r} if m in sys.modules), file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "HEAVY=\n" in proc.stderr + "\n" and proc.stderr.strip().endswith("HEAVY="), proc.stderr
    for arch in SUPPORTED_ARCHITECTURES:
        assert arch in proc.stdout


def test_a_tokenizer_larger_than_the_embeddings_is_refused_before_writing(tiny_dir, tmp_path):
    from transformers import AutoTokenizer

    from sftkit.export.gguf_file import check_exportable
    from sftkit.modeling.loading import load_trained

    model, _ = load_trained(tiny_dir)
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    assert check_exportable(model, tok) is None
    tok.add_tokens(["<brand-new-token>"])
    problem = check_exportable(model, tok)
    assert problem and "resize the embeddings" in problem and "\n" not in problem


@pytest.mark.real_model
def test_real_quickstart_run_exports_q8_0_that_reads_back_and_answers_alike(quickstart_run):
    """`sftkit export runs/quickstart --quant q8_0` on the real SmolLM2 quickstart run (conftest's shortened
    run): written, read back by sftkit's loader and verified on the items the run scored, its tokenizer
    encoding every prompt as the source's does. The 95% rule may fail on this barely-tuned model (measured:
    5/6, "Capital of Switzerland?" parts at its first token, where the source's top-two logits were 0.026
    apart), but any answer that differs must part at a near-tie of the source: a file with its q/k rows
    in the wrong order parts where the source led by up to 12 logits (measured on the full quickstart).
    The run's model card (metadata and verdict table) is copied beside the file."""
    import yaml

    res = _export(quickstart_run, "--quant", "q8_0", "--max-new-tokens", 16)
    out = quickstart_run / "export" / "quickstart-q8_0.gguf"
    figures = _figures(out)
    assert res.exit_code == (0 if figures["passed"] else 3), res.output
    assert "verified:" in res.output and figures["bytes"] == out.stat().st_size
    assert figures["prompts_from"] == "run" and 6 <= figures["prompts"] <= 8  # the 6 + 2 items scored
    assert figures["prompt_tokens_identical"] == figures["prompts"]
    assert figures["agreement"] >= 0.5 and (figures["max_source_margin_at_divergence"] or 0.0) < 1.0
    card = out.with_suffix(".README.md").read_text()
    assert card == (quickstart_run / "model" / "README.md").read_text()
    head, _, body = card.removeprefix("---\n").partition("\n---\n")
    meta = yaml.safe_load(head)
    assert meta["library_name"] == "transformers" and "sftkit" in meta["tags"]
    results = meta["model-index"][0]["results"]
    assert [r["dataset"]["name"] for r in results] == ["answers as JSON", "answer correct"]
    assert "## Evaluation: before and after" in body and "n=6" in body
