"""Write the quickstart dataset: short questions answered as one JSON object.

The behaviour the quickstart teaches is a strict answer format, measurable with `json_valid`:
the reply is exactly ``{"answer": "...", "confidence": "high" | "low"}`` and nothing else
("low" for questions nobody can answer). Rows are generated from templates over many topics;
the eval prompts use entities and question types that are not in the training rows.

    python benchmarks/make_quickstart_data.py   # writes sftkit/recipes/data/quickstart/{train,eval}.jsonl
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "sftkit" / "recipes" / "data" / "quickstart"

CAPITALS = {
    "France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid", "Portugal": "Lisbon",
    "Japan": "Tokyo", "China": "Beijing", "India": "New Delhi", "Russia": "Moscow", "Canada": "Ottawa",
    "Mexico": "Mexico City", "Brazil": "Brasilia", "Argentina": "Buenos Aires", "Egypt": "Cairo",
    "Kenya": "Nairobi", "Greece": "Athens", "Turkey": "Ankara", "Norway": "Oslo", "Sweden": "Stockholm",
    "Finland": "Helsinki", "Denmark": "Copenhagen", "Poland": "Warsaw", "Austria": "Vienna",
    "Ireland": "Dublin", "Belgium": "Brussels", "Netherlands": "Amsterdam", "Peru": "Lima",
    "Chile": "Santiago", "Thailand": "Bangkok", "Vietnam": "Hanoi", "South Korea": "Seoul",
    "Australia": "Canberra", "New Zealand": "Wellington", "Cuba": "Havana", "Hungary": "Budapest",
    "Czech Republic": "Prague", "Iran": "Tehran", "Iraq": "Baghdad", "Morocco": "Rabat", "Nigeria": "Abuja",
}
EVAL_CAPITALS = {"Switzerland": "Bern", "Colombia": "Bogota", "Ukraine": "Kyiv", "Indonesia": "Jakarta"}

OPPOSITES = {
    "hot": "cold", "big": "small", "fast": "slow", "happy": "sad", "light": "dark", "up": "down",
    "open": "closed", "early": "late", "full": "empty", "strong": "weak", "young": "old", "rich": "poor",
    "loud": "quiet", "hard": "soft", "wet": "dry", "high": "low", "clean": "dirty", "first": "last",
    "push": "pull", "win": "lose",
}
EVAL_OPPOSITES = {"thick": "thin", "heavy": "light", "brave": "afraid"}

FACTS = [  # (question, answer) general knowledge, short answers
    ("How many legs does a spider have?", "8"), ("How many legs does an insect have?", "6"),
    ("What do bees make?", "Honey"), ("What is the largest ocean on Earth?", "The Pacific Ocean"),
    ("What is the closest star to Earth?", "The Sun"), ("What planet is known as the Red Planet?", "Mars"),
    ("What gas do plants take in from the air?", "Carbon dioxide"), ("What is frozen water called?", "Ice"),
    ("At what temperature in Celsius does water boil at sea level?", "100 degrees Celsius"),
    ("How many continents are there?", "7"), ("What is the tallest animal?", "The giraffe"),
    ("What is the chemical symbol for gold?", "Au"), ("What is the chemical symbol for water?", "H2O"),
    ("How many days are in a week?", "7"), ("How many hours are in a day?", "24"),
    ("How many months are in a year?", "12"), ("What color do you get by mixing blue and yellow?", "Green"),
    ("What color do you get by mixing red and white?", "Pink"), ("What is the main language of Brazil?", "Portuguese"),
    ("Which animal is known as the king of the jungle?", "The lion"), ("What do caterpillars turn into?", "Butterflies"),
    ("What is the hardest natural material?", "Diamond"), ("What organ pumps blood through the body?", "The heart"),
    ("How many sides does a triangle have?", "3"), ("How many sides does a hexagon have?", "6"),
    ("What is the longest river in Africa?", "The Nile"), ("Who painted the Mona Lisa?", "Leonardo da Vinci"),
    ("What is the square root of 81?", "9"), ("What is the largest mammal?", "The blue whale"),
    ("What instrument has 88 keys?", "The piano"),
    ("What do you call a baby cat?", "A kitten"), ("What do you call a baby dog?", "A puppy"),
    ("Which season comes after winter?", "Spring"), ("What is the opposite of north?", "South"),
    ("How many minutes are in an hour?", "60"), ("What is the freezing point of water in Celsius?", "0 degrees Celsius"),
    ("Which metal is liquid at room temperature?", "Mercury"), ("What is the largest planet in the solar system?", "Jupiter"),
    ("Who wrote Romeo and Juliet?", "William Shakespeare"), ("What language is spoken in Mexico?", "Spanish"),
    ("What is the boiling point of water in Fahrenheit?", "212 degrees Fahrenheit"),
    ("How many wheels does a bicycle have?", "2"), ("What shape has four equal sides?", "A square"),
    ("What do cows drink?", "Water"), ("What is the color of a ripe banana?", "Yellow"),
    ("Which bird is a symbol of peace?", "The dove"), ("What is H2O commonly called?", "Water"),
]
EVAL_FACTS = [
    ("What is the smallest planet in the solar system?", "Mercury"), ("How many legs does a cat have?", "4"),
    ("Who developed the theory of relativity?", "Albert Einstein"), ("What is the largest desert in the world?", "Antarctica"),
    ("How many strings does a standard guitar have?", "6"), ("What do pandas mainly eat?", "Bamboo"),
    ("Which ocean lies between Europe and America?", "The Atlantic Ocean"),
]

UNKNOWABLE = [
    "What will the weather be in Paris next month?", "Who will win the next World Cup?",
    "What number am I thinking of?", "What will the stock market do tomorrow?",
    "What did I eat for breakfast today?", "How many coins are in my pocket?",
    "What is my favourite colour?", "What will be the most popular song in 2040?",
    "What is the name of my neighbour's dog?", "Will it rain in London on my birthday?",
    "What is the password to my email?", "How old is my grandmother?",
    "Which horse will win tomorrow's race?", "What will I dream about tonight?",
    "What is written on the note in my desk?", "What time did I wake up today?",
]
EVAL_UNKNOWABLE = ["What card am I holding right now?", "What will my boss say in tomorrow's meeting?",
                   "How many emails will I get next week?"]

CAPITAL_Q = ["What is the capital of {x}?", "Capital of {x}?", "Which city is the capital of {x}?",
             "Tell me the capital city of {x}.", "Name the capital of {x}.", "what's the capital of {x}"]
OPPOSITE_Q = ["What is the opposite of '{x}'?", "Give the opposite of the word {x}.", "Opposite of {x}?",
              "What word means the opposite of {x}?"]
ADD_Q = ["What is {a} + {b}?", "What is {a} plus {b}?", "Add {a} and {b}.", "Compute {a}+{b}.", "{a} + {b} = ?"]
MUL_Q = ["What is {a} times {b}?", "What is {a} x {b}?", "Multiply {a} by {b}.", "{a} * {b} = ?"]
SUB_Q = ["What is {a} minus {b}?", "Subtract {b} from {a}.", "{a} - {b} = ?"]
LETTERS_Q = ["How many letters are in the word '{w}'?", "Count the letters in '{w}'.",
             "How long is the word {w}, in letters?"]
WORDS = ["apple", "banana", "house", "computer", "river", "mountain", "garden", "pencil", "window", "elephant",
         "school", "orange", "planet", "dragon", "kitchen", "bottle"]
EVAL_WORDS = ["butterfly", "chair"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]


def reply(answer, confidence: str = "high") -> str:
    """The target format, byte for byte: compact keys, one space after ':' and ','."""
    return json.dumps({"answer": str(answer), "confidence": confidence}, ensure_ascii=False)


def build(seed: int = 7) -> tuple[list[dict], list[dict]]:
    rnd = random.Random(seed)
    train: list[dict] = []

    def add(prompt, answer, confidence="high", topic=""):
        train.append({"prompt": prompt, "completion": reply(answer, confidence), "topic": topic})

    for country, city in CAPITALS.items():
        add(rnd.choice(CAPITAL_Q).format(x=country), city, topic="capitals")
    for word, opp in OPPOSITES.items():
        add(rnd.choice(OPPOSITE_Q).format(x=word), opp, topic="opposites")
    for q, a in FACTS:
        add(q, a, topic="facts")
    for q in UNKNOWABLE:
        add(q, "I cannot know that.", "low", topic="unknowable")
    for _ in range(20):
        a, b = rnd.randint(2, 60), rnd.randint(2, 60)
        add(rnd.choice(ADD_Q).format(a=a, b=b), a + b, topic="arithmetic")
    for _ in range(14):
        a, b = rnd.randint(2, 12), rnd.randint(2, 12)
        add(rnd.choice(MUL_Q).format(a=a, b=b), a * b, topic="arithmetic")
    for _ in range(10):
        a, b = rnd.randint(20, 90), rnd.randint(1, 19)
        add(rnd.choice(SUB_Q).format(a=a, b=b), a - b, topic="arithmetic")
    for w in WORDS:
        add(rnd.choice(LETTERS_Q).format(w=w), len(w), topic="words")
    for i, d in enumerate(DAYS):
        add(f"What day comes after {d}?", DAYS[(i + 1) % 7], topic="calendar")
    for i, m in enumerate(MONTHS[:-2]):
        add(rnd.choice(["Which month comes after {m}?", "What month follows {m}?"]).format(m=m),
            MONTHS[i + 1], topic="calendar")
    for h in (2, 3, 5, 10):
        add(f"How many minutes are in {h} hours?", h * 60, topic="units")
    for km in (2, 4, 7):
        add(f"How many meters are in {km} kilometers?", km * 1000, topic="units")
    rnd.shuffle(train)

    ev: list[dict] = []
    for country, city in EVAL_CAPITALS.items():
        ev.append({"prompt": rnd.choice(CAPITAL_Q).format(x=country), "expected": city})
    for word, opp in EVAL_OPPOSITES.items():
        ev.append({"prompt": f"What is the opposite of '{word}'?", "expected": opp})
    for q, a in EVAL_FACTS:
        ev.append({"prompt": q, "expected": a})
    for q in EVAL_UNKNOWABLE:
        ev.append({"prompt": q, "expected": "low"})
    for a, b in ((17, 25), (33, 48)):
        ev.append({"prompt": f"What is {a} plus {b}?", "expected": str(a + b)})
    ev.append({"prompt": "What is 7 times 8?", "expected": "56"})
    for w in EVAL_WORDS:
        ev.append({"prompt": f"How many letters are in the word '{w}'?", "expected": str(len(w))})
    ev.append({"prompt": "Which month comes after November?", "expected": "December"})
    ev.append({"prompt": "How many minutes are in 4 hours?", "expected": "240"})
    ev.append({"prompt": "Name a fruit that is red.", "expected": "apple"})
    ev.append({"prompt": "What is the color of grass?", "expected": "green"})
    return train, ev


def main() -> None:
    train, ev = build()
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "train.jsonl", "w", encoding="utf-8") as fh:
        for row in train:
            fh.write(json.dumps({"prompt": row["prompt"], "completion": row["completion"]}, ensure_ascii=False) + "\n")
    with open(OUT / "eval.jsonl", "w", encoding="utf-8") as fh:
        for row in ev:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(train)} train rows and {len(ev)} eval prompts to {OUT}")


if __name__ == "__main__":
    main()
