"""Benchmark: `sftkit validate` on 100 recipes, against what a validator that imports the training
stack (as Axolotl's and LLaMA-Factory's config checks do) pays before it reads a single recipe.

Also checks with ``python -X importtime`` that validate, schema, plugins and init import none of
torch, transformers, trl, datasets or peft.

    python benchmarks/bench_validate.py [--recipes 100] [--out benchmarks/results/bench_validate.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAVY = ("torch", "transformers", "trl", "datasets", "peft")
ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "sftkit" / "recipes"


LOAD_AT_START = os.getloadavg()  # before this benchmark adds its own load


def _simd_flags() -> list[str]:
    """The CPU's vector and bfloat16 flags (avx2, avx512_bf16, amx_bf16, ...): they decide fp32 vs bf16."""
    from sftkit.modeling.precision import cpu_flags

    return sorted(f for f in cpu_flags() if f.startswith(("avx", "amx")))

def make_recipes(directory: Path, n: int) -> None:
    """n recipes: copies of the shipped ones (with their data) under distinct names."""
    shipped = sorted(p for p in SHIPPED.glob("*.toml"))
    if not shipped:
        raise SystemExit("no shipped recipes to copy")
    shutil.copytree(SHIPPED / "data", directory / "data", dirs_exist_ok=True) if (SHIPPED / "data").exists() else None
    for i in range(n):
        src = shipped[i % len(shipped)]
        text = src.read_text(encoding="utf-8")
        (directory / f"r{i:03d}-{src.name}").write_text(text, encoding="utf-8")


# as a user runs it: pip writes byte code on install, so imports read .pyc files; some sandboxes set
# PYTHONDONTWRITEBYTECODE, which makes every run compile sftkit's sources again (~0.1 s here)
USER_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def wall(cmd: list[str], repeat: int = 3) -> tuple[float, int, str]:
    """Best of ``repeat`` wall times (after one untimed run that writes the byte code)."""
    subprocess.run(cmd, capture_output=True, text=True, env=USER_ENV)
    best, code, out = float("inf"), 0, ""
    for _ in range(repeat):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=USER_ENV)
        best = min(best, time.perf_counter() - t0)
        code, out = proc.returncode, proc.stdout + proc.stderr
    return best, code, out


def heavy_imports(args: list[str]) -> list[str]:
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "sftkit.cli", *args], capture_output=True, text=True)
    found = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            top = name.split(".")[0]
            if top in HEAVY:
                found.add(top)
    return sorted(found)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--recipes", type=int, default=100)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_validate.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        make_recipes(d, args.recipes)
        sftkit_s, code, out = wall([sys.executable, "-m", "sftkit.cli", "validate", str(d)])
        if code != 0:
            print(out[-2000:])
            raise SystemExit(f"validate failed with exit code {code}")
        stack_s, _, _ = wall([sys.executable, "-c", "import torch, transformers, trl, datasets"], repeat=2)
        commands = {"validate": ["validate", str(d)], "schema": ["schema"], "plugins": ["plugins", "--all"],
                    "init": ["init", "--strategy", "instruction"]}
        imports = {name: heavy_imports(cmd) for name, cmd in commands.items()}
    result = {
        "benchmark": "validate",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "cpu_flags": _simd_flags()},
        "loadavg_at_start": LOAD_AT_START,
        "recipes": args.recipes,
        "sftkit_validate_wall_s": round(sftkit_s, 3),
        "target_wall_s": 1.5,
        "meets_target": sftkit_s < 1.5,
        "training_stack_import_wall_s": round(stack_s, 3),
        "byte_code": "written once before timing (as pip install does), PYTHONDONTWRITEBYTECODE unset",
        "note": "training_stack_import_wall_s is the floor for a validator that imports torch/transformers/trl/datasets, "
                "before it reads any recipe",
        "heavy_imports": imports,
        "no_heavy_imports": not any(imports.values()),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
