"""Verify an export: read the file back through sftkit's GGUF loader and compare greedy answers with the
source model. f32/f16/bf16 must answer identically on every prompt, q8_0 on at least 95% of them."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

REQUIRED = {"f32": 1.0, "f16": 1.0, "bf16": 1.0, "q8_0": 0.95}


def verify_path(gguf_path: Path) -> Path:
    """Where the figures of ``gguf_path``'s check are written: ``FILE.verify.json``."""
    return Path(f"{gguf_path}.verify.json")


def compare_answers(source_answers: list[str], export_answers: list[str], quant: str,
                    conversations: list[list[dict]]) -> dict:
    """Agreement figures of two lists of greedy answers to the same conversations."""
    same = sum(a == b for a, b in zip(source_answers, export_answers))
    n = len(source_answers)
    agreement = same / n if n else 0.0
    differ = [{"prompt": c[-1]["content"], "source": a, "export": b}
              for c, a, b in zip(conversations, source_answers, export_answers) if a != b]
    return {"quant": quant, "prompts": n, "identical": same, "agreement": round(agreement, 4),
            "required": REQUIRED[quant], "passed": n > 0 and agreement >= REQUIRED[quant],
            "disagreements": differ[:5]}


def verify_export(source_model, source_tokenizer, gguf_path: Path, quant: str, conversations: list[list[dict]],
                  *, prompts_from: str, max_new_tokens: int = 32, source_dtype: str | None = None) -> dict:
    """Load ``gguf_path`` with :func:`sftkit.modeling.loading.read_gguf`, generate greedily with both models
    and write the figures beside the file (atomically); returns them."""
    from ..evaluation.target import Target
    from ..modeling.loading import read_gguf

    started = time.time()
    model, tok = read_gguf(gguf_path)
    model.eval()
    src = Target(source_model, source_tokenizer, label="source", batch_size=8)
    out = Target(model, tok, label="export", batch_size=8)
    source_answers = src.generate(conversations, max_new_tokens=max_new_tokens)
    export_answers = out.generate(conversations, max_new_tokens=max_new_tokens)
    figures = compare_answers(source_answers, export_answers, quant, conversations)
    figures.update(source_dtype=source_dtype, file=str(gguf_path), bytes=Path(gguf_path).stat().st_size,
                   prompts_from=prompts_from, max_new_tokens=max_new_tokens,
                   seconds=round(time.time() - started, 2))
    target = verify_path(gguf_path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.partial")
    tmp.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, target)
    return figures
