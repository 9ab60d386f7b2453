"""The shipped feedback loop on a tiny model: tune → arena → export → tone (recipes/feedback.toml) →
arena again, with scripted voters on the arena's own HTTP routes; the tone run trains on the
exported votes and its report shows the ratings of both rounds."""

from __future__ import annotations

import json
import re

import pytest

pytest.importorskip("uvicorn", reason="the arena needs uvicorn and starlette (pip install sftkit[serve])")
pytest.importorskip("httpx")

TUNE = """
[recipe]
name = "quickstart"
[model]
name = "smol"
[[data]]
source = "jsonl"
path = "package://sftkit/recipes/data/quickstart/train.jsonl"
[template]
formatter = "chat"
[strategy]
name = "instruction"
[training]
max_steps = 3
per_device_train_batch_size = 4
learning_rate = 5e-3
max_length = 64
[adapter]
kind = "lora"
r = 4
alpha = 8
merge = true
[[eval]]
name = "contains"
prompts = "package://sftkit/recipes/data/quickstart/eval.jsonl"
max_new_tokens = 4
"""

SETTINGS = {"temperature": 0.7, "top_p": 0.9, "max_tokens": 10, "seed": 0}


def _run(command, *args):
    from click.testing import CliRunner

    from sftkit.commands.arena import arena
    from sftkit.commands.report import report
    from sftkit.commands.run import run

    res = CliRunner().invoke({"run": run, "arena": arena, "report": report}[command], [str(a) for a in args])
    assert res.exit_code == 0, res.output[-3000:]
    return res.output


def _round(recipe, favourite: str, votes: int):
    """Open `sftkit arena RECIPE`'s models and let one scripted voter prefer ``favourite``."""
    from starlette.testclient import TestClient

    from sftkit.arena.app import Arena
    from sftkit.arena.store import Store
    from sftkit.commands.arena import _recipe_models
    from sftkit.serving.loading import load_models

    models, prompts = _recipe_models(recipe, ())
    served = load_models(models, device="cpu")
    store = Store("arena")
    try:
        app = Arena(store, served, prompts, SETTINGS, seed=0)
        app.generate_ahead()
        client = TestClient(app.app())
        for _ in range(votes):
            page = client.get("/")
            bid = str(page.url).rsplit("/", 1)[1]
            token = re.search(r'name=csrf value="([0-9a-f]{64})"', page.text).group(1)
            battle = store.battle(bid)
            assert battle is not None, (page.url, page.text[-600:], prompts[:2], models)
            choice = "a" if battle.model_a == favourite else "b" if battle.model_b == favourite else "tie"
            shown = client.post(f"/battle/{bid}/vote", data={"csrf": token, "choice": choice})
            assert shown.status_code == 200 and "You voted" in shown.text
        return sorted(served)
    finally:
        for m in served.values():
            m.engine.close()
        store.close()


def test_feedback_loop_trains_on_votes_and_reports_both_rounds(tmp_path, monkeypatch):
    from sftkit.commands.recipes import copy_recipe
    from sftkit.tiny import CHATML_TEMPLATE, save_tiny_model

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SFTKIT_NO_PROGRESS", "1")
    save_tiny_model(tmp_path / "smol", chat_template=CHATML_TEMPLATE)
    (tmp_path / "quickstart.toml").write_text(TUNE)
    _run("run", "quickstart.toml")  # 1. tune -> runs/quickstart

    assert _round(tmp_path / "quickstart.toml", "quickstart", 20) == ["quickstart", "smol"]  # 2. round 1

    _run("arena", "export", "-o", "votes.jsonl")  # 3. the pairs the votes make
    exported = [json.loads(line) for line in (tmp_path / "votes.jsonl").read_text().splitlines()]
    assert exported and all(set(r) == {"prompt", "chosen", "rejected"} for r in exported)

    copy_recipe("feedback", tmp_path)  # 4. tone on the votes, the shipped recipe (shortened)
    _run("run", "feedback.toml", "--set", "training.max_steps=2", "--set", "training.per_device_train_batch_size=2",
         "--set", "training.max_length=64", "--set", "eval.1.max_new_tokens=4")
    metrics = json.loads((tmp_path / "runs" / "feedback" / "metrics.json").read_text())
    assert metrics["data"]["kind"] == "preference" and metrics["strategy"] == "tone"
    assert metrics["data"]["rows_read"] == len(exported)  # it trained on exactly the exported votes
    db = metrics["plugins"]["arena"]["databases"][0]
    assert db["votes"] == 20 and db["path"] == str((tmp_path / "arena" / "arena.sqlite").resolve())
    first = (tmp_path / "runs" / "feedback" / "report.md").read_text()
    assert "Arena ratings: before and after" in first and "no votes since this run" in first

    assert _round(tmp_path / "feedback.toml", "feedback", 10) == ["feedback", "quickstart"]  # 5. round 2

    from sftkit.arena.ratings import ratings_by_set
    from sftkit.arena.store import Store

    by_set = ratings_by_set(Store("arena", create=False).votes(), rounds=10)  # the /ratings page: a set per round
    assert [r["model"] for r in by_set["quickstart eval"]] == ["quickstart", "smol"]
    assert [r["model"] for r in by_set["feedback eval"]] == ["feedback", "quickstart"]

    _run("report", "runs/feedback")  # 6. the ratings of both rounds
    report = (tmp_path / "runs" / "feedback" / "report.md").read_text()
    section = report.split("Arena ratings: before and after", 1)[1]
    before = section.split("**Before**", 1)[1].split("**After**", 1)[0]
    after = section.split("**After** (10 votes cast since)", 1)[1].split("**All votes**", 1)[0]
    everyone = section.split("**All votes**", 1)[1]
    assert re.findall(r"\*\*(\w+)\*\*: \d+", before) == ["quickstart", "smol"]  # the favourite first
    assert re.findall(r"\*\*(\w+)\*\*: \d+", after) == ["feedback", "quickstart"]
    assert re.findall(r"\*\*(\w+)\*\*: \d+", everyone) == ["feedback", "quickstart", "smol"]  # one scale
    assert "20 votes (20 won" in before and "10 votes (10 won" in after
    assert re.search(r"\*\*feedback\*\*: .*← this run", after)
    assert "Arena ratings" in (tmp_path / "runs" / "feedback" / "report.html").read_text()
