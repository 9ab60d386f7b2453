"""The medical subjects of MMLU and the fixed train/eval split shared by the source and the evaluator.

A question belongs to the evaluation part when a hash of its text falls in one fifth of the range,
so the split is stable whatever the file order, and the ``mmlu_medical`` source (split ``train``)
never sees a question the ``medical_mmlu`` evaluator scores.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

from sftkit.errors import DataError

MEDICAL_TOPICS = (
    "anatomy",
    "clinical knowledge",
    "college medicine",
    "medical genetics",
    "nutrition",
    "professional medicine",
    "virology",
)
LETTERS = ("A", "B", "C", "D")
EVAL_BUCKETS = 5  # one question in five is held out for evaluation


def is_eval_question(question: str) -> bool:
    """True when ``question`` is in the held-out evaluation part."""
    digest = hashlib.sha256(question.strip().encode("utf-8")).digest()
    return digest[0] % EVAL_BUCKETS == 0


def load_items(path: Path, topics=MEDICAL_TOPICS, split: str = "all") -> list[dict]:
    """Read MMLU rows of ``topics``: ``{question, choices, answer (index), topic}``.

    ``split``: ``"train"`` (not held out), ``"eval"`` (held out) or ``"all"``.
    """
    wanted = set(topics)
    items = []
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        fh = opener(path, "rt", encoding="utf-8")
    except OSError as exc:
        raise DataError(f"cannot read MMLU file {path}: {exc}",
                        hint="set path to a JSONL (.gz allowed) with question, answer_a..d, correct_answer, topic")
    with fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if row.get("topic") not in wanted:
                    continue
                item = {
                    "question": row["question"],
                    "choices": [row[f"answer_{c.lower()}"] for c in LETTERS],
                    "answer": LETTERS.index(str(row["correct_answer"]).strip().upper()),
                    "topic": row["topic"],
                }
            except (ValueError, KeyError, TypeError) as exc:
                raise DataError(f"{path}:{lineno}: not an MMLU row ({type(exc).__name__}: {exc})",
                                hint="expected keys question, answer_a..answer_d, correct_answer (A-D), topic")
            if split != "all" and is_eval_question(item["question"]) != (split == "eval"):
                continue
            items.append(item)
    return items


def balanced(items: list[dict], limit: int) -> list[dict]:
    """At most ``limit`` items, taken round-robin over topics in file order (deterministic)."""
    by_topic: dict[str, list[dict]] = {}
    for item in items:
        by_topic.setdefault(item["topic"], []).append(item)
    queues = [list(v) for _, v in sorted(by_topic.items())]
    out: list[dict] = []
    while len(out) < limit and any(queues):
        for q in queues:
            if q and len(out) < limit:
                out.append(q.pop(0))
    return out


def format_question(item: dict) -> str:
    """The question as the ``medical_mmlu`` evaluator prompts it (lm-evaluation-harness's MMLU layout),
    ending with ``Answer:``."""
    lines = [f"The following are multiple choice questions (with answers) about {item['topic']}.", "",
             item["question"].strip()]
    lines += [f"{letter}. {choice}" for letter, choice in zip(LETTERS, item["choices"])]
    lines.append("Answer:")
    return "\n".join(lines)
