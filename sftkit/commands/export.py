"""``sftkit export RUN_OR_MODEL --format gguf|ollama``: a tuned model for llama.cpp / Ollama, verified on export."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import click

from sftkit.errors import SftkitError
from sftkit.export.gguf_file import QUANTS


@click.command("export")
@click.argument("source", metavar="RUN_OR_MODEL")
@click.option("--format", "fmt", type=click.Choice(["gguf", "ollama"]), default="gguf", show_default=True,
              help="gguf: one .gguf file; ollama: a directory with the .gguf and a Modelfile.")
@click.option("--quant", type=click.Choice(QUANTS), default="f16", show_default=True,
              help="Weights: f16 / bf16 / f32 (answers must equal the source model's), q8_0 (>= 95% equal); "
                   "f32 keeps float32 weights exactly.")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="The .gguf file (gguf) or directory (ollama); default: RUN_DIR/export/ or beside the model.")
@click.option("--max-new-tokens", default=32, show_default=True, type=click.IntRange(1, 1024),
              help="Greedy tokens generated per prompt in the verification.")
def export(source, fmt, quant, output, max_new_tokens):
    """Export RUN_OR_MODEL (a finished run directory, a saved model directory or a LoRA adapter, merged
    first) as GGUF, with its tokenizer, special and stop tokens and chat template, then verify it: the
    file is read back by sftkit's GGUF loader and its greedy answers are compared with the source model's
    on the run's [[eval]] prompts (or built-in ones); the figures go to FILE.verify.json and a failed check
    exits 3. Supported architectures: LlamaForCausalLM (Llama 2-style, SmolLM2, TinyLlama; no rope
    scaling, no biases) with a byte-level BPE tokenizer; others are refused before anything is written."""
    try:
        figures = run_export(source, fmt, quant, output, max_new_tokens, echo=lambda m: click.echo(m, err=True))
    except SftkitError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(err.exit_code)
    click.echo(json.dumps({k: v for k, v in figures.items() if k != "disagreements"}))
    if not figures["passed"]:
        click.echo(f"error: verification failed: the export agrees with the source model on "
                   f"{figures['identical']}/{figures['prompts']} prompts (needs {figures['required']:.0%} for "
                   f"{quant}); see {figures['file']}.verify.json"
                   + _near_tie(figures)
                   + (" — the source weights are float32: --quant f32 keeps them exactly"
                      if quant in ("f16", "bf16") and figures.get("source_dtype") == "float32" else ""), err=True)
        sys.exit(3)


def _near_tie(figures: dict) -> str:
    """Where the answers part, when they part: the source's largest top-two logit gap at a first divergence."""
    gap = figures.get("max_source_margin_at_divergence")
    if gap is None or figures.get("prompt_tokens_identical") != figures.get("prompts"):
        return ""
    return f"; the answers part where the source's two likeliest tokens were at most {gap:.3g} logits apart"


def _default_output(model_dir: Path, run_dir: Path | None, fmt: str, quant: str) -> Path:
    name = (run_dir or model_dir).resolve().name
    if name == "model":
        name = model_dir.resolve().parent.name
    folder = (run_dir / "export") if run_dir else model_dir.resolve().parent
    return folder / (f"{name}-ollama" if fmt == "ollama" else f"{name}-{quant}.gguf")


def run_export(source, fmt: str, quant: str, output: Path | None, max_new_tokens: int, echo) -> dict:
    """Check, load, write and verify; returns the verification figures (raises SftkitError for a user error)."""
    from sftkit.export.gguf_file import check_exportable, write_gguf
    from sftkit.export.prompts import verification_conversations
    from sftkit.export.source import load_source, locate
    from sftkit.export.verify import verify_export

    model_dir, run_dir = locate(source)  # a missing tokenizer or an unfinished run: before loading
    echo(f"loading {model_dir}")
    src = load_source(source)
    problem = check_exportable(src.model, src.tokenizer)
    if problem:
        raise SftkitError(f"{problem}: nothing written", where=source)
    output = Path(output) if output else _default_output(model_dir, run_dir, fmt, quant)
    modelfile_text = None
    if fmt == "ollama":
        from sftkit.config import saved_config
        from sftkit.export.ollama import chat_parts, modelfile, stop_strings

        system = saved_config(run_dir).template.system if run_dir else None
        gguf_path = output / f"{output.name.removesuffix('-ollama') or 'model'}-{quant}.gguf"
        modelfile_text = modelfile(gguf_path.name, chat_parts(src.tokenizer),
                                   stop_strings(src.tokenizer, src.stop_ids), system)  # refused before writing
    else:
        gguf_path = output
    gguf_path.parent.mkdir(parents=True, exist_ok=True)
    echo(f"writing {gguf_path} ({quant})")
    write_gguf(src.model, src.tokenizer, gguf_path, quant=quant, stop_ids=src.stop_ids,
               chat_template=src.chat_template, name=model_dir.resolve().name)
    if modelfile_text is not None:
        from sftkit.export.ollama import write_modelfile

        write_modelfile(output, modelfile_text)
    card = model_dir / "README.md"
    if card.is_file():
        shutil.copyfile(card, output / "README.md" if fmt == "ollama" else gguf_path.with_suffix(".README.md"))
    conversations, prompts_from = verification_conversations(run_dir)
    echo(f"verifying on {len(conversations)} {prompts_from} prompts")
    figures = verify_export(src.model, src.tokenizer, gguf_path, quant, conversations,
                            prompts_from=prompts_from, max_new_tokens=max_new_tokens, source_dtype=src.saved_dtype)
    echo(f"verified: {figures['identical']}/{figures['prompts']} answers identical "
         f"({figures['agreement']:.0%}, needs {figures['required']:.0%}); {figures['token_agreement']:.1%} of "
         f"generated tokens before any divergence; {figures['bytes'] / 1e6:.1f} MB")
    for row in figures["disagreements"]:
        echo(f"  differs from token {row['first_divergence']} (source's top-two logit gap there: "
             f"{row.get('source_margin', float('nan')):.3g}): {row['prompt'][:60]!r}")
    if figures["prompt_tokens_identical"] < figures["prompts"]:
        echo(f"  the file's tokenizer encodes {figures['prompts'] - figures['prompt_tokens_identical']} prompts "
             "differently from the source's: the export is broken whatever its weights")
    return figures
