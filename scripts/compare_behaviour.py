"""Did a change alter what users see? Runs every shipped recipe with ``sftkit run --smoke`` at two
commits (a git worktree of BASE, and this checkout) and compares what a user reads: the exit code,
the summary printed on stdout, the evaluators' numbers and verdicts and the gates in metrics.json,
and the report's headings. Timings, paths and dates are left out; everything else must be equal.

    python scripts/compare_behaviour.py BASE [--recipes quickstart,tone] [--out FILE.json]

Exit code 0 when nothing differs, 1 when something does (each difference printed).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ("quickstart", "instruction", "tone", "classification", "domain")  # feedback needs an arena first
VOLATILE = re.compile(r"\d[\d,]*(\.\d+)?\s*(s|ms|min|GB|MB)\b|(tokens|rows)/s [\d,.]+|/tmp/\S+|\d{4}-\d{2}-\d{2}\S*")


def run_recipe(tree: Path, recipe: str, out: Path) -> dict:
    """One smoke run of ``recipe`` with ``tree``'s sftkit; what a user sees of it."""
    env = {**os.environ, "PYTHONPATH": str(tree), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, "-m", "sftkit", "run", recipe, "--smoke", "--output", str(out)],
                          cwd=tree, env=env, capture_output=True, text=True)
    seen: dict = {"exit_code": proc.returncode, "stdout": VOLATILE.sub("…", proc.stdout).splitlines()}
    metrics_path = out / "metrics.json"
    if metrics_path.exists():
        metrics = json.loads(metrics_path.read_text())
        seen["sections"] = sorted(metrics)
        seen["train_keys"] = sorted(metrics.get("train") or {})
        seen["eval"] = metrics.get("eval") or []  # numbers, intervals, paired tests, verdicts, answers
        seen["gates"] = metrics.get("gates")
        seen["health"] = sorted(str(f.get("title") or f.get("kind") or f) for f in metrics.get("health") or [])
    report = out / "report.md"
    if report.exists():
        seen["report_headings"] = [line for line in report.read_text().splitlines() if line.startswith("#")]
    if proc.returncode not in (0, 3):
        seen["stderr_tail"] = proc.stderr.strip().splitlines()[-1:]
    return seen


def differences(a, b, where: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in differences(a.get(k), b.get(k), f"{where}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{where}[{i}]")]
    return [] if a == b else [f"{where}: {a!r} -> {b!r}"]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("base", help="the commit to compare with (e.g. origin/main, a38cd58)")
    ap.add_argument("--recipes", default=",".join(SHIPPED))
    ap.add_argument("--out", default=None, help="write the comparison as JSON here")
    args = ap.parse_args()
    recipes = [r for r in args.recipes.split(",") if r]
    with tempfile.TemporaryDirectory() as tmp:
        base_tree = Path(tmp) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", str(base_tree), args.base], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            result = {}
            for recipe in recipes:
                before = run_recipe(base_tree, recipe, Path(tmp) / f"before-{recipe}")
                after = run_recipe(ROOT, recipe, Path(tmp) / f"after-{recipe}")
                diff = differences(before, after)
                result[recipe] = {"exit_code": [before["exit_code"], after["exit_code"]], "differences": diff}
                print(f"{recipe}: exit {before['exit_code']} -> {after['exit_code']}, "
                      f"{len(diff)} difference(s)" + "".join(f"\n  {d}" for d in diff))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base_tree)], cwd=ROOT, capture_output=True)
            shutil.rmtree(base_tree, ignore_errors=True)
    if args.out:
        Path(args.out).write_text(json.dumps({"base": args.base, "recipes": result}, indent=2) + "\n")
    return 1 if any(r["differences"] for r in result.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
