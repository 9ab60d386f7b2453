"""Votes → training data the ``tone`` strategy reads: preference pairs and KTO rows.

Votes on the same prompt and the same two answers (several voters judging one pre-generated pair)
are pooled, so ``min_votes`` can ask for agreement:

- **pairs** (``prompt``, ``chosen``, ``rejected``; the data stage detects format ``preference``):
  for each pooled pair with at least ``min_votes`` votes, the answer with more "better" votes is
  chosen over the other (an even count gives no pair). A written better answer is chosen over
  both answers shown, whatever the vote.
- **kto** (``prompt``, ``completion``, ``label`` good/bad; format ``labeled``): each answer with at
  least ``min_votes`` votes is labelled by its majority: winning a vote counts good, losing or
  "both bad" counts bad, a tie counts good for both unless ``exclude_ties``. A written better answer
  is a good row.

``exclude_ties`` (default) drops tie votes entirely; they never make a pair either way.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from .store import Store, Vote

KINDS = ("pairs", "kto")


def _pooled(votes: list[Vote]) -> dict:
    groups: dict = defaultdict(list)
    for v in votes:
        b = v.battle
        groups[(b.prompt, frozenset((b.answer_a, b.answer_b)))].append(v)
    return groups


def pair_rows(votes: list[Vote], *, min_votes: int = 1, exclude_ties: bool = True) -> list[dict]:
    """Preference rows from ``votes`` (see the module docstring)."""
    rows: list[dict] = []
    for (prompt, _), group in _pooled(votes).items():
        decisive = [v for v in group if v.choice in ("a", "b") or (v.choice == "tie" and not exclude_ties)]
        counted = [v for v in group if not (exclude_ties and v.choice == "tie")]
        wins: dict[str, int] = defaultdict(int)
        for v in decisive:
            if v.choice == "a":
                wins[v.battle.answer_a] += 1
            elif v.choice == "b":
                wins[v.battle.answer_b] += 1
        answers = [group[0].battle.answer_a, group[0].battle.answer_b]
        if len(counted) >= min_votes and answers[0] != answers[1] and wins[answers[0]] != wins[answers[1]]:
            chosen, rejected = sorted(answers, key=lambda a: -wins[a])
            rows.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
    for v in votes:
        if v.better and not (exclude_ties and v.choice == "tie"):
            for shown in dict.fromkeys((v.battle.answer_a, v.battle.answer_b)):
                if shown != v.better:
                    rows.append({"prompt": v.battle.prompt, "chosen": v.better, "rejected": shown})
    return rows


def kto_rows(votes: list[Vote], *, min_votes: int = 1, exclude_ties: bool = True) -> list[dict]:
    """Good/bad rows from ``votes`` (see the module docstring)."""
    tally: dict = defaultdict(lambda: [0, 0])  # (prompt, answer) -> [good, bad]
    order: list = []
    for v in votes:
        b = v.battle
        if v.choice == "tie" and exclude_ties:
            continue
        marks = {"a": (1, 0), "b": (0, 1), "tie": (1, 1), "bad": (0, 0)}[v.choice]
        for answer, good in ((b.answer_a, marks[0]), (b.answer_b, marks[1])):
            key = (b.prompt, answer)
            if key not in tally:
                order.append(key)
            tally[key][0 if good else 1] += 1
    rows = []
    for key in order:
        good, bad = tally[key]
        if good + bad >= min_votes and good != bad:
            rows.append({"prompt": key[0], "completion": key[1], "label": "good" if good > bad else "bad"})
    for v in votes:
        if v.better and not (exclude_ties and v.choice == "tie"):
            rows.append({"prompt": v.battle.prompt, "completion": v.better, "label": "good"})
    return rows


def export_rows(store: Store, kind: str = "pairs", *, min_votes: int = 1, exclude_ties: bool = True,
                prompt_set: str | None = None) -> list[dict]:
    """The rows of ``kind`` ("pairs" or "kto") from the votes in ``store``."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    votes = [v for v in store.votes() if prompt_set is None or v.battle.prompt_set == prompt_set]
    make = pair_rows if kind == "pairs" else kto_rows
    return make(votes, min_votes=max(1, int(min_votes)), exclude_ties=exclude_ties)


def write_jsonl(rows: list[dict], path: Path) -> None:
    """Write rows as JSON Lines, atomically (a temporary file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    tmp.replace(path)


def arena_source(options: dict, ctx):
    """``[[data]] source = "arena"``: read the votes of an arena database as pairs or KTO rows."""
    from ..data import readers
    from ..errors import DataError, SftkitError

    try:
        store = Store(ctx.resolve(options["path"]), create=False)
    except SftkitError as err:
        raise DataError(err.message, where=ctx.name, hint=err.hint) from err
    rows = export_rows(store, options.get("kind", "pairs"), min_votes=options.get("min_votes", 1),
                       exclude_ties=options.get("exclude_ties", True), prompt_set=options.get("prompt_set"))
    store.close()
    if not rows:
        raise DataError(f"the arena at {store.path} has no votes that make {options.get('kind', 'pairs')} rows "
                        f"(min_votes = {options.get('min_votes', 1)})", where=ctx.name,
                        hint="collect more votes with `sftkit arena`, or lower min_votes")
    return readers.read_inline(rows, where=ctx.name, max_rows=ctx.max_rows)
