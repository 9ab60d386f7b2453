"""``length``: a penalty for completions longer than a budget (0 within it, down to
``-max_penalty`` at twice the budget and beyond), so a run cannot buy reward with rambling."""

from __future__ import annotations

from ..evaluation.metrics import clean_text
from .base import Reward


class LengthReward(Reward):
    name = "length"
    doc = ("0 for a completion within `budget` characters (or words), falling linearly to -max_penalty at "
           "twice the budget: a penalty on length.")
    option_schema = {"type": "object", "additionalProperties": False, "required": ["budget"], "properties": {
        "budget": {"type": "integer", "minimum": 1, "description": "Length allowed without penalty."},
        "unit": {"enum": ["chars", "words"], "default": "chars", "description": "What budget counts."},
        "max_penalty": {"type": "number", "exclusiveMinimum": 0, "default": 1.0,
                        "description": "The penalty at twice the budget and beyond (the score is its negative)."},
    }}
    reads = ()

    def size(self, text: str) -> int:
        text = clean_text(text)
        return len(text.split()) if self.opt("unit", "chars") == "words" else len(text)

    def score(self, prompts, completions, rows, step):
        budget, cap = int(self.options["budget"]), float(self.opt("max_penalty", 1.0))
        return [0.0 - cap * min(1.0, max(0, self.size(c) - budget) / budget) for c in completions]
