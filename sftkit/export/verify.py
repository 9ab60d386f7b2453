"""Verify an export: read the file back through sftkit's GGUF loader and compare greedy answers with the
source model. f32/f16/bf16 must answer identically on every prompt, q8_0 on at least 95% of them, and the
file's tokenizer must turn every prompt into the same token ids as the source's (else it is a broken export,
whatever the weights).

Beside the pass rule, the figures say *how* two answers differ, because a rounded weight flips a greedy
answer only where the source model was nearly undecided: for each differing answer, the position of the
first differing token and the source's gap between its two most likely tokens there (logits; a gap under
~1 is a near-tie that any rounding can flip); over all answers, the share of generated tokens produced
before the first divergence (``token_agreement``).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

REQUIRED = {"f32": 1.0, "f16": 1.0, "bf16": 1.0, "q8_0": 0.95}


def verify_path(gguf_path: Path) -> Path:
    """Where the figures of ``gguf_path``'s check are written: ``FILE.verify.json``."""
    return Path(f"{gguf_path}.verify.json")


def first_divergence(a: list[int], b: list[int]) -> int | None:
    """Index of the first token where two greedy answers differ (one ending counts); None when identical."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def compare_answers(source_answers: list[str], export_answers: list[str], quant: str,
                    conversations: list[list[dict]], *, source_ids: list[list[int]] | None = None,
                    export_ids: list[list[int]] | None = None, margins: list[float | None] | None = None,
                    prompts_same: int | None = None) -> dict:
    """Agreement figures of two lists of greedy answers to the same conversations (answers as text decide
    ``passed``; token ids, when given, add where they diverge)."""
    n = len(source_answers)
    same = sum(a == b for a, b in zip(source_answers, export_answers))
    agreement = same / n if n else 0.0
    prompts_same = n if prompts_same is None else prompts_same
    figures: dict = {"quant": quant, "prompts": n, "identical": same, "agreement": round(agreement, 4),
                     "required": REQUIRED[quant], "prompt_tokens_identical": prompts_same,
                     "passed": n > 0 and agreement >= REQUIRED[quant] and prompts_same == n}
    differ = []
    for i, (conv, a, b) in enumerate(zip(conversations, source_answers, export_answers)):
        if a != b:
            row = {"prompt": conv[-1]["content"], "source": a, "export": b}
            if source_ids is not None and export_ids is not None:
                row["first_divergence"] = first_divergence(source_ids[i], export_ids[i])
                margin = margins[i] if margins is not None else None
                if margin is not None:
                    row["source_margin"] = round(margin, 4)
            differ.append(row)
    if source_ids is not None and export_ids is not None:
        kept = total = 0
        for a_ids, b_ids in zip(source_ids, export_ids):
            pos = first_divergence(a_ids, b_ids)
            kept += len(a_ids) if pos is None else pos
            total += max(len(a_ids), len(b_ids))
        figures["token_agreement"] = round(kept / total, 4) if total else 1.0
        figures["first_divergence"] = sorted(r["first_divergence"] for r in differ)
        gaps = [r["source_margin"] for r in differ if "source_margin" in r]
        figures["max_source_margin_at_divergence"] = max(gaps) if gaps else None
    figures["disagreements"] = differ[:5]
    return figures


def source_margins(target, prompt_ids: list[list[int]], source_ids: list[list[int]],
                   export_ids: list[list[int]]) -> list[float | None]:
    """For each answer pair that diverges, the source's gap between its two highest next-token logits at
    the first divergence (one forward pass each); None where the answers are identical."""
    import torch

    out: list[float | None] = []
    with target._inference() as model:
        for prompt, a, b in zip(prompt_ids, source_ids, export_ids):
            pos = first_divergence(a, b)
            if pos is None:
                out.append(None)
                continue
            ids = torch.tensor([prompt + a[:pos]], device=target.device)
            top = model(input_ids=ids).logits[0, -1].float().topk(2).values
            out.append(float(top[0] - top[1]))
    return out


def verify_export(source_model, source_tokenizer, gguf_path: Path, quant: str, conversations: list[list[dict]],
                  *, prompts_from: str, max_new_tokens: int = 32, source_dtype: str | None = None) -> dict:
    """Load ``gguf_path`` with :func:`sftkit.modeling.loading.read_gguf`, generate greedily with both models
    and write the figures beside the file (atomically); returns them."""
    from ..evaluation.metrics import clean_text
    from ..evaluation.target import Target
    from ..modeling.loading import read_gguf

    started = time.time()
    model, tok = read_gguf(gguf_path)
    model.eval()
    src = Target(source_model, source_tokenizer, label="source", batch_size=8)
    out = Target(model, tok, label="export", batch_size=8)
    src_prompts = [src.render(c) for c in conversations]
    out_prompts = [out.render(c) for c in conversations]
    prompt_ids = [src.encode(p) for p in src_prompts]
    prompts_same = sum(ids == out.encode(p) for ids, p in zip(prompt_ids, out_prompts))
    source_ids = src.generate_ids(src_prompts, max_new_tokens=max_new_tokens)
    export_ids = out.generate_ids(out_prompts, max_new_tokens=max_new_tokens)
    source_answers = [clean_text(source_tokenizer.decode(ids, skip_special_tokens=True)) for ids in source_ids]
    export_answers = [clean_text(tok.decode(ids, skip_special_tokens=True)) for ids in export_ids]
    margins = source_margins(src, prompt_ids, source_ids, export_ids)
    figures = compare_answers(source_answers, export_answers, quant, conversations, source_ids=source_ids,
                              export_ids=export_ids, margins=margins, prompts_same=prompts_same)
    figures.update(source_dtype=source_dtype, file=str(gguf_path), bytes=Path(gguf_path).stat().st_size,
                   prompts_from=prompts_from, max_new_tokens=max_new_tokens,
                   seconds=round(time.time() - started, 2))
    target = verify_path(gguf_path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.partial")
    tmp.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, target)
    return figures
