"""``sftkit plan`` estimate vs what ``sftkit run`` then measures, for the shipped recipes.

For each recipe: the plan's training time and peak memory, then a real run of the same recipe
(same overrides) and its measured train_runtime and peak memory (resident high-water mark during
training on the CPU, allocated GPU memory on CUDA), and the relative error. The target is ±30%.
Both run on this machine one after the other; the load average is recorded next to each.

    python benchmarks/bench_plan.py [--recipes quickstart,instruction] [--set training.max_steps=10]

Writes benchmarks/results/bench_plan.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("SFTKIT_NO_PROGRESS", "1")

RESULTS = Path(__file__).resolve().parent / "results" / "bench_plan.json"
SHIPPED = ("quickstart", "instruction", "domain", "tone", "classification")


def _loadavg() -> float | None:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except OSError:
        return None


def _err(estimate, measured):
    if estimate is None or not measured:
        return None
    return round(estimate / measured - 1, 3)


def one(name: str, overrides: list[str], tmp: Path) -> dict:
    from sftkit.run import run
    from sftkit.run import plan as make_plan
    from sftkit.commands.run import resolve_recipe

    path = resolve_recipe(name)
    overrides = [*overrides, "output.report=false", "output.save_model=false"]
    load_plan = _loadavg()
    with contextlib.redirect_stdout(sys.stderr):
        plan = make_plan(path, overrides)
        load_run = _loadavg()
        metrics = run(path, overrides, output=tmp / name, overwrite=True).metrics
    train = metrics["train"]
    est_t, meas_t = plan["time"]["train_seconds"], train.get("train_runtime")
    est_m, meas_m = plan["memory"]["estimate_gb"], train.get("peak_memory_gb")
    return {"recipe": name, "overrides": overrides, "steps": plan["schedule"]["steps"],
            "train_seconds": {"estimate": est_t, "measured": meas_t, "relative_error": _err(est_t, meas_t)},
            "peak_memory_gb": {"estimate": est_m, "measured": meas_m, "relative_error": _err(est_m, meas_m),
                               "modelled": plan["memory"]["total_gb"]},
            "loadavg": {"plan": load_plan, "run": load_run}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--recipes", default=",".join(SHIPPED))
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    a = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.recipes.split(","):
            row = one(name, a.overrides, Path(tmp))
            rows.append(row)
            print(json.dumps(row), flush=True)
    within = [abs(r[k]["relative_error"]) <= 0.3 for r in rows for k in ("train_seconds", "peak_memory_gb")
              if r[k]["relative_error"] is not None]
    result = {"benchmark": "sftkit plan estimate vs sftkit run measured", "rows": rows,
              "within_30_percent": f"{sum(within)}/{len(within)}", "cores": os.cpu_count(),
              "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({"within_30_percent": result["within_30_percent"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
