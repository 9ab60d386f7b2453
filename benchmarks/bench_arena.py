#!/usr/bin/env python
"""Arena load test: concurrent voters against ``sftkit arena`` on 127.0.0.1, bounded in time.

Starts the real command (``sftkit arena --models`` with two tiny random models, answers generated
ahead for ``--prompts`` listed prompts) in a subprocess, waits for the answers, then runs
``--voters`` concurrent voters (each its own cookie jar, like a browser) who each take ``--votes``
battles: ``GET /`` (a new battle), ``POST /battle/ID/vote`` with the page's CSRF token. Checks the
database afterwards: exactly voters × votes rows, no (battle, voter) twice, each voter's count
right. Reports vote latency (p50 / p95 / max, milliseconds, the POST alone) and the whole run's
throughput with the load average, into ``benchmarks/results/bench_arena.json``. Only loopback; the
whole run is bounded by ``--timeout`` seconds (exit 1 beyond it, or on any lost or duplicated vote).

    python benchmarks/bench_arena.py --voters 20 --votes 100
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]



def _simd_flags() -> list[str]:
    """The CPU's vector and bfloat16 flags (avx2, avx512_bf16, amx_bf16, ...): they decide fp32 vs bf16."""
    from sftkit.modeling.precision import cpu_flags

    return sorted(f for f in cpu_flags() if f.startswith(("avx", "amx")))

def start_arena(root: Path, n_prompts: int) -> tuple[subprocess.Popen, str]:
    from sftkit.tiny import CHATML_TEMPLATE, save_tiny_model

    model = save_tiny_model(root / "model", chat_template=CHATML_TEMPLATE)
    prompts = root / "prompts.txt"
    prompts.write_text("\n".join(f"Question {i}: what is {i} plus {i}?" for i in range(n_prompts)) + "\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
               TOKENIZERS_PARALLELISM="false")
    proc = subprocess.Popen([sys.executable, "-m", "sftkit.cli", "arena", "--models", f"alpha={model}",
                             f"beta={model}", "--prompts", str(prompts), "--dir", str(root / "arena"),
                             "--port", "0", "--max-tokens", "16", "--device", "cpu"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    url = proc.stdout.readline().strip().rstrip("/")
    if not url.startswith("http://127.0.0.1:"):
        proc.kill()
        raise SystemExit(f"the arena did not start (printed {url!r})")
    return proc, url


async def wait_ready(url: str, deadline: float) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=url) as client:
        while time.monotonic() < deadline:
            try:
                page = await client.get("/", follow_redirects=True)
                if "/battle/" in str(page.url):
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise SystemExit("the arena's answers were not ready in time")


async def voter(url: str, votes: int, latencies: list[float], seed: int) -> int:
    import httpx

    rng = random.Random(seed)
    done = 0
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        for _ in range(votes):
            page = await client.get("/", follow_redirects=True)
            token = re.search(r'name=csrf value="([0-9a-f]{64})"', page.text).group(1)
            bid = str(page.url).rsplit("/", 1)[1]
            t0 = time.perf_counter()
            reply = await client.post(f"/battle/{bid}/vote", data={"csrf": token, "choice": rng.choice("ab") if rng.random() < 0.8 else "tie"})
            latencies.append(time.perf_counter() - t0)
            if reply.status_code != 303:
                raise SystemExit(f"vote refused: HTTP {reply.status_code}")
            done += 1
    return done


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--voters", type=int, default=20)
    ap.add_argument("--votes", type=int, default=100, help="votes per voter")
    ap.add_argument("--prompts", type=int, default=20, help="listed prompts (answers generated ahead)")
    ap.add_argument("--timeout", type=float, default=600, help="bound on the whole run, seconds")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "bench_arena.json")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        started = time.monotonic()
        deadline = started + args.timeout
        proc, url = start_arena(root, args.prompts)
        try:
            asyncio.run(wait_ready(url, deadline))
            ready = time.monotonic()
            latencies: list[float] = []

            async def everyone():
                return await asyncio.wait_for(
                    asyncio.gather(*(voter(url, args.votes, latencies, k) for k in range(args.voters))),
                    timeout=max(1.0, deadline - time.monotonic()))

            counts = asyncio.run(everyone())
            voting = time.monotonic() - ready
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        db = sqlite3.connect(root / "arena" / "arena.sqlite")
        total, distinct = db.execute("SELECT COUNT(*), COUNT(DISTINCT battle || ' ' || voter) FROM votes").fetchone()
        per_voter = sorted(n for (n,) in db.execute("SELECT COUNT(*) FROM votes GROUP BY voter"))
    expected = args.voters * args.votes
    ok = total == expected and distinct == expected and per_voter == [args.votes] * args.voters and sum(counts) == expected
    result = {
        "benchmark": "arena load test (127.0.0.1)",
        "voters": args.voters, "votes_per_voter": args.votes, "expected_rows": expected,
        "rows": total, "distinct_battle_voter": distinct, "lost": expected - total, "duplicated": total - distinct,
        "ok": ok,
        "vote_latency_ms": {"p50": round(1000 * percentile(latencies, 0.5), 1),
                            "p95": round(1000 * percentile(latencies, 0.95), 1),
                            "max": round(1000 * max(latencies), 1)},
        "voting_seconds": round(voting, 2), "votes_per_second": round(expected / voting, 1),
        "startup_seconds": round(ready - started, 2),
        "loadavg": open("/proc/loadavg").read().split()[:3] if Path("/proc/loadavg").exists() else None,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "cpu_flags": _simd_flags()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
