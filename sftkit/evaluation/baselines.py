"""Prompt-only baselines: is fine-tuning worth it, or would a prompt do as well?

A ``[[baseline]]`` table runs the *base* model through the same ``[[eval]]`` tables again, on the
same items, with only the conversation changed before it is rendered:

- ``kind = "system_prompt"``: ``system`` is the system message (after the item's or the
  template's own system prompt, when there is one);
- ``kind = "few_shot"``: ``k`` conversations drawn from the training rows with the recipe's seed
  (``seed`` to change it) come first as user / assistant turns; an example whose user turn is the
  item's own prompt is replaced by the next one drawn, so no item sees its own answer.

Only evaluators that prompt a chat model through the Target (``Target.render`` / ``generate``) can
be prompted. One that asks the model for anything before it rendered a prompt (``loss``,
``forgetting``, an encoder classifier, multiple choice without ``chat = true``) is *not applicable*:
:class:`PromptedTarget` stops it at that first call, so it costs no forward pass. Generations go
through the base model's Target, so a rendered prompt that equals one the base evaluation already
generated (same ``max_new_tokens``) is not generated again.

The verdict (:func:`sftkit.evaluation.verdict.versus_prompts`) then asks whether the tuned model beats
the best of these baselines, with the paired test on the same items.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from ..core_schema import BASELINE_ITEM
from ..errors import SftkitError

KINDS = tuple(BASELINE_ITEM["properties"]["kind"]["enum"])

if TYPE_CHECKING:
    from ..config import Baseline as BaselineTable
EXAMPLE_ROLES = ("user", "assistant")


class NotPrompted(Exception):
    """An evaluator asked the model for something before rendering a prompt: a prompt cannot change it."""


@dataclass
class Baseline:
    """One ``[[baseline]]`` table, ready to apply: its label, kind, system prompt and few-shot examples."""

    label: str
    kind: str
    system: str | None = None
    k: int = 0
    examples: list = field(default_factory=list)  # conversations (user/assistant turns), in draw order

    def apply(self, messages: list[dict], default_system: str | None = None) -> list[dict]:
        """``messages`` with this baseline's prompt: system prompt joined to the existing one, then the
        few-shot examples (none that contain the item's own prompt), then the item's turns."""
        msgs = [dict(m) for m in messages]
        own = [m for m in msgs if m.get("role") == "system"]
        turns = [m for m in msgs if m.get("role") != "system"]
        system = "\n\n".join(str(m.get("content", "")) for m in own) or (default_system or "")
        if self.system:
            system = f"{system}\n\n{self.system}" if system else self.system
        shots: list[dict] = []
        if self.k:
            asked = {str(m.get("content", "")).strip() for m in turns if m.get("role") == "user"}
            chosen = [ex for ex in self.examples
                      if not any(str(m["content"]).strip() in asked for m in ex if m["role"] == "user")][: self.k]
            shots = [dict(m) for ex in chosen for m in ex]
        return ([{"role": "system", "content": system}] if system else []) + shots + turns


def specs(tables: Sequence[BaselineTable]) -> list[tuple[str, BaselineTable]]:
    """The ``[[baseline]]`` slices with their labels (``label``, else the kind, numbered when
    repeated): ``[(label, table), ...]``."""
    out, seen = [], {}
    for table in tables:
        kind = str(table.kind)
        label = str(table.label or (f"few_shot_{int(table.k)}" if kind == "few_shot" else kind))
        seen[label] = seen.get(label, 0) + 1
        out.append((label if seen[label] == 1 else f"{label}#{seen[label]}", table))
    return out


def example_turns(row: dict) -> list[dict] | None:
    """A training row as few-shot turns (user / assistant, ending with the answer), or None when the
    row holds no question and answer (raw text, a rejected answer, tool calls)."""
    if isinstance(row.get("messages"), list):
        msgs = [m for m in row["messages"] if isinstance(m, dict) and m.get("role") != "system"]
        if any(m.get("role") not in EXAMPLE_ROLES for m in msgs):
            return None
        while msgs and msgs[-1].get("role") != "assistant":
            msgs = msgs[:-1]
    elif isinstance(row.get("prompt"), list) and row.get("chosen") is not None:
        msgs = [*row["prompt"], {"role": "assistant", "content": row["chosen"]}]
    elif isinstance(row.get("prompt"), list) and row.get("completion") is not None and row.get("label") is True:
        msgs = [*row["prompt"], {"role": "assistant", "content": row["completion"]}]
    elif row.get("text") is not None and row.get("label") is not None:
        msgs = [{"role": "user", "content": row["text"]}, {"role": "assistant", "content": str(row["label"])}]
    else:
        return None
    msgs = [{"role": m.get("role"), "content": str(m.get("content", ""))} for m in msgs
            if isinstance(m, dict) and m.get("role") != "system"]
    if len(msgs) < 2 or msgs[0]["role"] != "user" or msgs[-1]["role"] != "assistant":
        return None
    if any(a["role"] == b["role"] for a, b in zip(msgs, msgs[1:])):
        return None
    return msgs


def draw_examples(rows: Any, k: int, *, seed: int, spare: int = 8) -> list[list[dict]]:
    """Up to ``k + spare`` few-shot conversations from ``rows`` (a list or an Arrow dataset), in an
    order drawn with ``seed``; the spares stand in for examples that hold an item's own prompt."""
    n = len(rows) if rows is not None else 0
    order = list(range(n))
    random.Random(seed).shuffle(order)
    out: list[list[dict]] = []
    for i in order:
        turns = example_turns(dict(rows[i]))
        if turns is not None:
            out.append(turns)
            if len(out) >= k + spare:
                break
    return out


def build(tables: Sequence[BaselineTable], train_rows: Any, *, seed: int) -> list[Baseline]:
    """The ``[[baseline]]`` slices as baselines with their examples drawn (``seed``: the recipe's,
    unless a table has its own); a few-shot baseline without usable training rows is a one-line
    error naming the table."""
    out = []
    for i, (label, table) in enumerate(specs(tables)):
        kind = str(table.kind)
        k = int(table.k) if kind == "few_shot" else 0
        examples: list = []
        if kind == "few_shot":
            examples = draw_examples(train_rows, k, seed=int(seed if table.seed is None else table.seed))
            if not examples:
                raise SftkitError(f"few-shot baseline {label!r} found no training row with a question and an "
                                  "answer to show as an example", where=f"baseline[{i}]",
                                  hint="few-shot needs conversations, prompt/completion, preference or classification "
                                       "rows; use kind = \"system_prompt\" for other data, or remove the table")
        out.append(Baseline(label, kind, system=table.system, k=k, examples=examples))
    return out


class PromptedTarget:
    """The base model's Target seen through a :class:`Baseline`: every rendered conversation gets the
    baseline's prompt; any model call before the first render raises :class:`NotPrompted`."""

    MODEL_CALLS = ("generate_text", "generate_ids", "loglikelihood", "loglikelihood_tokens", "rolling_loglikelihood",
                   "perplexity", "labeled_nll", "classify")

    def __init__(self, target: Any, baseline: Baseline):
        self._target = target
        self.baseline = baseline
        self.label = f"{getattr(target, 'label', 'base')} + {baseline.label}"
        self._rendered = False

    def __getattr__(self, name: str) -> Any:
        if name in PromptedTarget.MODEL_CALLS and not self.__dict__.get("_rendered"):
            raise NotPrompted(name)
        return getattr(self.__dict__["_target"], name)

    @property
    def is_classifier(self) -> bool:
        if getattr(self._target, "is_classifier", False):
            raise NotPrompted("classify")
        return False

    def render(self, messages: list[dict] | str) -> str:
        """The inner Target's prompt for ``messages`` with the baseline's prompt applied."""
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        self._rendered = True
        default = getattr(getattr(self._target, "formatter", None), "system", None)
        return self._target.render(self.baseline.apply(messages, default))

    def generate(self, list_of_messages, max_new_tokens: int = 128) -> list[str]:
        """Greedy answers, as ``Target.generate``, to the prompted conversations."""
        prompts = [self.render(m) for m in list_of_messages]
        return self._target.generate_text(prompts, max_new_tokens=max_new_tokens)
