"""Arena store, ratings and export: votes become pairs / KTO rows the tone strategy trains on."""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from sftkit.arena.export import export_rows, kto_rows, pair_rows
from sftkit.arena.ratings import ratings
from sftkit.arena.store import SCHEMA_VERSION, AlreadyVoted, Store
from sftkit.errors import SftkitError


def _vote(store, prompt, a, b, ans_a, ans_b, voter, choice, better=None, prompt_set="list"):
    battle = store.add_battle(prompt_set, prompt, a, b, ans_a, ans_b, {"temperature": 0.7})
    store.add_vote(battle.id, voter, choice, better)
    return battle


def test_store_is_wal_versioned_and_one_vote_per_voter(tmp_path):
    store = Store(tmp_path / "arena")
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    battle = _vote(store, "Hi", "m1", "m2", "Hello!", "Go away.", "v1", "a")
    with pytest.raises(AlreadyVoted):
        store.add_vote(battle.id, "v1", "b")
    store.add_vote(battle.id, "v2", "b")  # another voter may
    assert store.count("votes") == 2
    conn.execute("PRAGMA user_version = 99")
    conn.commit()
    with pytest.raises(SftkitError, match="schema version 99"):
        Store(tmp_path / "arena")
    with pytest.raises(SftkitError, match="no arena database"):
        Store(tmp_path / "elsewhere", create=False)


def test_concurrent_writers_lose_nothing(tmp_path):
    store = Store(tmp_path)
    battles = [store.add_battle("s", f"p{i}", "a", "b", "x", "y", {}) for i in range(25)]

    def voter(k):
        for b in battles:
            store.add_vote(b.id, f"voter{k}", "a")

    threads = [threading.Thread(target=voter, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = sqlite3.connect(store.path).execute("SELECT COUNT(*), COUNT(DISTINCT battle || voter) FROM votes").fetchone()
    assert rows == (200, 200)


def test_pairs_pool_votes_and_take_written_answers():
    class B:  # noqa: D401 - a battle stand-in
        def __init__(self, prompt, a, b):
            self.prompt, self.answer_a, self.answer_b = prompt, a, b
            self.model_a, self.model_b, self.prompt_set = "m1", "m2", "s"

    class V:
        def __init__(self, battle, choice, better=None):
            self.battle, self.choice, self.better = battle, choice, better

    polite, curt = "Thanks for asking! It is Paris.", "Paris."
    votes = [V(B("Capital?", polite, curt), "a"), V(B("Capital?", curt, polite), "b"),
             V(B("Capital?", polite, curt), "b"),
             V(B("Refund?", "No.", "Nope."), "bad", better="Of course, here is how."),
             V(B("Tie?", "x", "y"), "tie")]
    pairs = pair_rows(votes)
    assert {"prompt": "Capital?", "chosen": polite, "rejected": curt} in pairs  # 2 votes to 1, orders pooled
    assert {"prompt": "Refund?", "chosen": "Of course, here is how.", "rejected": "No."} in pairs
    assert {"prompt": "Refund?", "chosen": "Of course, here is how.", "rejected": "Nope."} in pairs
    assert not any(r["prompt"] == "Tie?" for r in pairs)
    assert not any(r["prompt"] == "Capital?" for r in pair_rows(votes, min_votes=4))
    kto = kto_rows(votes)
    assert {"prompt": "Capital?", "completion": polite, "label": "good"} in kto
    assert {"prompt": "Capital?", "completion": curt, "label": "bad"} in kto
    assert {"prompt": "Refund?", "completion": "No.", "label": "bad"} in kto
    assert {"prompt": "Refund?", "completion": "Of course, here is how.", "label": "good"} in kto
    assert not any(r["prompt"] == "Tie?" for r in kto)
    assert {"prompt": "Tie?", "completion": "x", "label": "good"} in kto_rows(votes, exclude_ties=False)


def test_bradley_terry_orders_models_with_intervals(tmp_path):
    store = Store(tmp_path)
    rng = random.Random(0)
    strength = {"strong": 4.0, "mid": 1.0, "weak": 0.25}
    for i in range(240):
        a, b = rng.sample(sorted(strength), 2)
        choice = "a" if rng.random() < strength[a] / (strength[a] + strength[b]) else "b"
        _vote(store, f"q{i % 7}", a, b, f"{a}{i % 7}", f"{b}{i % 7}", f"v{i}", choice)
    rows = ratings(store.votes(), rounds=100)
    assert [r["model"] for r in rows] == ["strong", "mid", "weak"]
    for r in rows:
        assert r["low"] <= r["score"] <= r["high"]
        assert r["wins"] + r["losses"] + r["ties"] == r["votes"]
    # true gaps are 400*log10(4) = 241 on the Elo scale; the fit lands near them
    assert 150 < rows[0]["score"] - rows[1]["score"] < 350
    assert rows[0]["low"] > rows[2]["high"]


TONE_RECIPE = """
[recipe]
name = "arena-tone"
[model]
name = "{model}"
[[data]]
source = "{source}"
path = "{path}"
{extra}
[dataset]
eval_fraction = 0.2
[template]
formatter = "chat"
[strategy]
name = "tone"
[training]
max_steps = 2
per_device_train_batch_size = 2
max_length = 64
[output]
dir = "{out}"
"""


def _votes_db(tmp_path) -> Path:
    store = Store(tmp_path / "arena")
    for i in range(12):
        polite, curt = f"Thank you for asking about item {i}! Here it is.", f"Item {i}. Done."
        a_first = i % 2 == 0
        _vote(store, f"Where is item {i}?", "tuned" if a_first else "base", "base" if a_first else "tuned",
              polite if a_first else curt, curt if a_first else polite, f"v{i}", "a" if a_first else "b")
    return tmp_path / "arena"


def _cli(*args, cwd):
    import os

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "sftkit.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=600)


def test_export_validates_and_trains_with_tone_smoke(tmp_path):
    from sftkit.tiny import CHATML_TEMPLATE, save_tiny_model

    arena_dir = _votes_db(tmp_path)
    model = save_tiny_model(tmp_path / "base", chat_template=CHATML_TEMPLATE)
    out = _cli("arena", "export", "--dir", str(arena_dir), "-o", str(tmp_path / "pairs.jsonl"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and all(r["chosen"].startswith("Thank you") for r in rows)
    recipe = tmp_path / "tone.toml"
    recipe.write_text(TONE_RECIPE.format(model=model, source="jsonl", path="pairs.jsonl", extra="",
                                         out=tmp_path / "run"))
    valid = _cli("validate", str(recipe), cwd=tmp_path)
    assert valid.returncode == 0, valid.stdout + valid.stderr
    run = _cli("run", str(recipe), "--smoke", cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert (tmp_path / "run-smoke" / "COMPLETE").exists()  # a smoke run writes beside the real run
    metrics = json.loads((tmp_path / "run-smoke" / "metrics.json").read_text())
    assert metrics["data"]["kind"] == "preference"
    empty = _cli("arena", "export", "--dir", str(arena_dir), "-o", str(tmp_path / "none.jsonl"), "--min-votes", "5",
                 cwd=tmp_path)
    assert empty.returncode == 1 and "no pairs rows" in empty.stderr and "Traceback" not in empty.stderr
    assert not (tmp_path / "none.jsonl").exists()


def test_arena_source_reads_the_database(tmp_path):
    from sftkit.data import load_data
    from sftkit.plugins import get_host

    arena_dir = _votes_db(tmp_path)
    for kind, expect in (("pairs", "preference"), ("kto", "labeled")):
        recipe = {"data": [{"source": "arena", "path": str(arena_dir), "kind": kind}],
                  "dataset": {"eval_fraction": 0.0}, "strategy": {"name": "tone"}}
        bundle = load_data(recipe, tmp_path, host=get_host())
        assert bundle.kind == expect
        assert len(bundle.train) == (12 if kind == "pairs" else 24)
    with pytest.raises(SftkitError, match="no votes that make pairs rows"):
        load_data({"data": [{"source": "arena", "path": str(arena_dir), "min_votes": 3}],
                   "dataset": {"eval_fraction": 0.0}, "strategy": {"name": "tone"}}, tmp_path, host=get_host())
    assert export_rows(Store(arena_dir, create=False), "kto", prompt_set="other") == []


def test_arena_prompts_from_recipe_and_file(tmp_path):
    from sftkit.commands.arena import file_prompts, recipe_prompts

    recipes = Path(__file__).resolve().parents[1] / "sftkit" / "recipes"
    import tomllib

    from sftkit.config import resolve

    tone = resolve(tomllib.loads((recipes / "tone.toml").read_text())).eval
    assert recipe_prompts(tone, recipes) == ["Where is my order?", "Your product broke after two days."]
    quick = resolve(tomllib.loads((recipes / "quickstart.toml").read_text())).eval
    listed = recipe_prompts(quick, recipes)
    assert len(listed) == len((recipes / "data" / "quickstart" / "eval.jsonl").read_text().splitlines())
    (tmp_path / "p.txt").write_text("one\n\n two \n")
    assert file_prompts(tmp_path / "p.txt") == ["one", "two"]
    (tmp_path / "p.jsonl").write_text('{"prompt": "a"}\n{"question": "b"}\n')
    assert file_prompts(tmp_path / "p.jsonl") == ["a", "b"]


def test_arena_command_errors_are_one_line(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text(TONE_RECIPE.format(model="HuggingFaceTB/SmolLM2-135M", source="jsonl", path="pairs.jsonl",
                                         extra="", out=tmp_path / "never"))
    (tmp_path / "pairs.jsonl").write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n')
    no_run = _cli("arena", str(recipe), "--port", "0", cwd=tmp_path)
    assert no_run.returncode == 1 and "no finished run" in no_run.stderr and "Traceback" not in no_run.stderr
    one = _cli("arena", "--models", "only-one", cwd=tmp_path)
    assert one.returncode == 2 and "two models" in one.stderr
    open_net = _cli("arena", "--models", "a", "b", "--host", "0.0.0.0", cwd=tmp_path)
    assert open_net.returncode == 2 and "--key" in open_net.stderr
    no_db = _cli("arena", "export", "--dir", str(tmp_path / "nothing"), "-o", "x.jsonl", cwd=tmp_path)
    assert no_db.returncode == 1 and "no arena database" in no_db.stderr


def test_recipe_arena_names_models_as_everywhere(tmp_path):
    """`sftkit arena RECIPE`: the base by its folder or file stem, the run by its folder (the names the
    next round uses for the same models); base=/tuned= only when the two would clash."""
    from sftkit.commands.arena import _recipe_models
    from sftkit.serving.loading import parse_model_arg

    (tmp_path / "d.jsonl").write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n')
    for model_dir, run_name, expect in (("smol", "mine", ["smol", "mine"]), ("same", "same", ["base", "tuned"])):
        (tmp_path / model_dir).mkdir(exist_ok=True)
        (tmp_path / model_dir / "config.json").write_text("{}")
        run = tmp_path / "runs" / run_name
        (run / "model").mkdir(parents=True, exist_ok=True)
        (run / "COMPLETE").write_text("{}")
        recipe = tmp_path / f"{run_name}.toml"
        recipe.write_text(f'[recipe]\nname = "{run_name}"\n[model]\nname = "{model_dir}"\n[[data]]\nsource = "jsonl"\n'
                          f'path = "d.jsonl"\n[strategy]\nname = "tone"\n[[eval]]\nname = "samples"\nitems = ["Hi?"]\n'
                          f'[output]\ndir = "{run}"\n')
        models, prompts = _recipe_models(recipe, ())
        assert [parse_model_arg(m).name for m in models] == expect
        assert prompts == [(f"{run_name} eval", "Hi?")]
