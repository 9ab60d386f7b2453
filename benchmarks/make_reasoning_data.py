"""Write the reasoning recipe's dataset: one-step multiplication word problems with a distractor.

Every problem needs one fact from the times table (2..9 x 2..9), the one arithmetic skill
SmolLM2-135M-Instruct has (about 9 in 10 bare ``a * b =`` right), and holds one irrelevant number
("Tom is 7 years old.") before or inside the story. The base model fails these by rambling past
its answer or multiplying the wrong numbers, a few-shot prompt mostly by the distractor; the
correctness reward can teach it to pick the two numbers that matter. Answers are GSM8K style,
``3 * 6 = 18`` then ``#### 18``; how to answer is the recipe's ``[template] system`` prompt, not
part of the questions. No held-out problem is in the training rows by sftkit's own contamination
check (:mod:`sftkit.evaluation.contamination`: no equal text, no shared run of 13 words), so the run's
report measures problems the model never trained on.

    python benchmarks/make_reasoning_data.py   # writes sftkit/recipes/data/reasoning/{train,eval}.jsonl
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "sftkit" / "recipes" / "data" / "reasoning"
SEED = 1
N_TRAIN, N_EVAL = 1000, 120
DISTRACTED = 0.5  # share of problems with an irrelevant number

NAMES = ["Tom", "Anna", "Ben", "Lily", "Sam", "Mia", "Leo", "Emma", "Noah", "Zoe", "Omar", "Ivy"]
THINGS = [("box", "boxes", "pencils"), ("bag", "bags", "apples"), ("pack", "packs", "stickers"),
          ("jar", "jars", "cookies"), ("basket", "baskets", "eggs"), ("shelf", "shelves", "books"),
          ("row", "rows", "chairs"), ("tray", "trays", "cupcakes")]
DISTRACTORS = ["{n} is {d} years old.", "{n} has {d} friends.", "It is {d} o'clock.",
               "{n} walks {d} minutes to the shop.", "The shop opens at {d}.", "{n} has {d} cousins."]


def problem(rng: random.Random) -> tuple[str, int, str]:
    """(question, answer, worked answer) of one problem drawn from ``rng``."""
    n = rng.choice(NAMES)
    one, many, item = rng.choice(THINGS)
    a, b = rng.randint(2, 9), rng.randint(2, 9)
    story = rng.choice([
        f"{n} has {a} {many}. Each {one} holds {b} {item}. How many {item} does {n} have?",
        f"There are {a} {many} with {b} {item} in each {one}. How many {item} are there in total?",
        f"{n} buys {a} {many} of {item}. There are {b} {item} in every {one}. How many {item} did {n} buy?",
    ])
    d = rng.randint(2, 12)
    distractor = rng.choice(DISTRACTORS).format(n=n, d=d)
    if rng.random() >= DISTRACTED:
        question = story
    elif rng.random() < 0.5:
        question = f"{distractor} {story}"
    else:
        first, rest = story.split(". ", 1)
        question = f"{first}. {distractor} {rest}"
    return question, a * b, f"{a} * {b} = {a * b}\n#### {a * b}"


def split(seed: int = SEED, n_train: int = N_TRAIN, n_eval: int = N_EVAL) -> tuple[list, list]:
    """Held-out problems drawn first (so they follow the task's distribution), then training
    problems that share no text and no run of 13 words with any of them; checked at the end with
    sftkit's own contamination index of the training rows, as the run's report does."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from sftkit.evaluation.contamination import TrainIndex

    rng = random.Random(seed)
    seen: set[str] = set()
    held: list = []
    while len(held) < n_eval:
        p = problem(rng)
        if p[0] not in seen:
            seen.add(p[0])
            held.append(p)
    near_held = TrainIndex([{"prompt": q} for q, _, _ in held])
    train: list = []
    while len(train) < n_train:
        p = problem(rng)
        if p[0] not in seen and near_held.match(p[0]) is None:
            seen.add(p[0])
            train.append(p)
    index = TrainIndex([{"prompt": q, "completion": worked} for q, _, worked in train])
    assert not any(index.match(q) for q, _, _ in held), "a held-out problem is in the training rows"
    return train, held


def main() -> None:
    train, held = split()
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "train.jsonl", "w", encoding="utf-8") as fh:
        for q, _, worked in train:
            fh.write(json.dumps({"question": q, "answer": worked}) + "\n")
    with open(OUT / "eval.jsonl", "w", encoding="utf-8") as fh:
        for q, answer, _ in held:
            fh.write(json.dumps({"prompt": q, "expected": answer}) + "\n")
    print(f"wrote {len(train)} training and {len(held)} held-out problems to {OUT}")


if __name__ == "__main__":
    main()
