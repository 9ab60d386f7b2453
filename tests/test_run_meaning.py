"""Runs that cannot mean anything fail or warn loudly: dropped rows are counted and flagged, an empty
eval split or an errored evaluator is a non-zero exit, and settings that cannot take effect are
validate errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import tomli_w
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from test_run import cli, error_line, make_recipe, qa_rows, write_jsonl  # noqa: E402

from sftkit.reporting import health  # noqa: E402
from sftkit.reporting.accounting import row_accounting  # noqa: E402


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from sftkit.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def test_row_accounting_counts_every_drop_and_health_warns():
    loaded = {"dropped": {"duplicate": 2}, "skipped": {"invalid JSON": 1}}
    tokenized = {"dropped": {"duplicate": 2, "too_long": 9}, "train_rows": 5}
    acc = row_accounting(loaded, tokenized, train_rows=14, eval_rows=2)
    assert acc["dropped"] == {"duplicate": 2, "invalid": 1, "too_long": 9} and acc["train_rows"] == 5
    assert acc["rows_read"] == 19 and acc["dropped_share"] == pytest.approx(12 / 19)
    few, finding = health.check_data(acc)
    assert finding["code"] == "dropped_rows" and "max_length" in finding["fix"]
    assert few["code"] == "few_rows" and "few-shot" in few["fix"]
    assert health.check_data(row_accounting({}, {"train_rows": 900, "dropped": {"too_long": 1}},
                                            train_rows=901, eval_rows=0)) == []


def test_rows_dropped_as_too_long_are_in_metrics_and_the_report(tmp_path, tiny_dir):
    rows = [{"prompt": f"Question {i}?" + (" very long" * 60 if i % 16 < 9 else ""), "completion": f"Answer {i}."}
            for i in range(32)]
    recipe = make_recipe(tmp_path, tiny_dir, rows=rows, training={"max_steps": 1, "max_length": 64},
                         dataset={"eval_fraction": 0.0, "truncation": "drop"})
    res = cli("run", recipe, "--output", tmp_path / "run")
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["data"]["dropped"]["too_long"] == 18 and m["data"]["train_rows"] == 14
    assert m["data"]["dropped_share"] == pytest.approx(18 / 32)
    md = (tmp_path / "run" / "report.md").read_text()
    top = md[: md.index("## Evaluation")]
    assert "[warning] 56% of the rows were dropped" in top and "too_long: 18" in md


def test_all_duplicates_leave_an_empty_eval_split_and_the_run_fails(tmp_path, tiny_dir):
    rows = [{"prompt": "Same?", "completion": "Same."}] * 40
    recipe = make_recipe(tmp_path, tiny_dir, rows=rows, training={"max_steps": 1}, eval=[{"name": "loss"}])
    res = cli("run", recipe, "--output", tmp_path / "run")
    assert res.exit_code == 1, res.output
    line = error_line(res)
    assert "eval split is empty" in line and "39 duplicate" in line
    assert not (tmp_path / "run" / "COMPLETE").exists()


def test_an_errored_evaluator_exits_non_zero_after_writing(tmp_path, tiny_dir):
    evals = [{"name": "exact_match", "items": [{"prompt": "Hi"}], "max_new_tokens": 2}]  # no expected answer
    recipe = make_recipe(tmp_path, tiny_dir, training={"max_steps": 1}, eval=evals)
    res = cli("run", recipe, "--output", tmp_path / "run")
    assert res.exit_code == 4, res.output
    assert "evaluator exact_match failed on the base model" in error_line(res)
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["eval"][0]["verdict"] == "error"
    assert "[error] Evaluator exact_match failed" in (tmp_path / "run" / "report.md").read_text()


def _validate(tmp_path, recipe: dict) -> tuple[int, str]:
    from sftkit.cli import cli as main

    (tmp_path / "train.jsonl").write_text('{"prompt": "hi", "completion": "hello"}\n')
    path = tmp_path / "r.toml"
    path.write_text(tomli_w.dumps(recipe))
    res = CliRunner().invoke(main, ["validate", str(path)])
    return res.exit_code, res.output


def test_settings_that_cannot_take_effect_are_validate_errors(tmp_path):
    base = {"recipe": {"name": "v"}, "model": {"name": "org/m"}, "data": [{"source": "jsonl", "path": "train.jsonl"}],
            "strategy": {"name": "instruction"}}
    code, out = _validate(tmp_path, {**base, "eval": [{"name": "exact_match", "items": ["a"], "min": 70}]})
    assert code == 1 and "gate min = 70 is outside the range of exact_match's metric (0..1)" in out
    assert "min = 0.7" in out and ":" in out.split("gate min")[0]  # located, with the fix
    code, out = _validate(tmp_path, {**base, "eval": [{"name": "loss", "max": 3.0, "gate_on": "lower_bound"}]})
    assert code == 0, out
    code, out = _validate(tmp_path, {**base, "training": {"eval_steps": 5}})
    assert code == 1 and "eval_steps has no effect: the recipe has no eval split" in out
    code, out = _validate(tmp_path, {**base, "training": {"eval_steps": 5}, "dataset": {"eval_fraction": 0.1}})
    assert code == 0, out


def test_contaminated_items_are_counted_in_a_real_run(tmp_path, tiny_dir):
    rows = qa_rows(32)
    items = [{"prompt": r["prompt"], "expected": r["completion"]} for r in rows[:3]]
    items += [{"prompt": "What is seven times six?", "expected": "42"}]
    write_jsonl(tmp_path / "items.jsonl", items)
    evals = [{"name": "exact_match", "prompts": "items.jsonl", "max_new_tokens": 2, "max_contamination": 0.5}]
    recipe = make_recipe(tmp_path, tiny_dir, rows=rows, training={"max_steps": 1}, eval=evals,
                         dataset={"eval_fraction": 0.0})
    res = cli("run", recipe, "--output", tmp_path / "run")
    assert res.exit_code == 3, res.output  # 3 of 4 items were trained on: the gate fails
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    c = m["eval"][0]["contamination"]
    assert (c["n"], c["exact"]) == (4, 3) and c["share"] == 0.75
    assert m["eval"][0]["stats"]["tuned"]["n"] == 4
    md = (tmp_path / "run" / "report.md").read_text()
    assert "**Contamination:** exact_match: 3 of 4 items (75%) appear in the training data" in md


def test_one_eval_row_gives_no_verdict_and_its_gate_fails_undecided(tmp_path, tiny_dir):
    """eval_fraction leaving 1 eval row: no BETTER anywhere, "not enough evidence" in the summary,
    metrics.json and the report, and a gate on it fails with the reason (exit 3), in run and eval."""
    recipe = make_recipe(tmp_path, tiny_dir, rows=qa_rows(32), training={"max_steps": 2},
                         dataset={"eval_fraction": 0.01}, eval=[{"name": "loss", "max": 100.0}])
    res = cli("run", recipe, "--output", tmp_path / "run")
    assert res.exit_code == 3, res.output
    reason = "n=1 below the minimum of 6 items; add evaluation rows"
    assert f"gate loss.eval_loss not decided: {reason}" in error_line(res)
    assert "BETTER" not in res.output and f"NOT ENOUGH EVIDENCE ({reason})" in res.output
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    (row,) = m["eval"]
    assert row["verdict"] == "not enough evidence" and row["improved"] is None
    assert row["evidence"]["n"] == 1 and m["data"]["eval_rows"] == 1
    assert m["gates"]["passed"] is False
    md = (tmp_path / "run" / "report.md").read_text()
    assert "| loss | not enough evidence |" in md and "| better |" not in md and "▲ better" not in md
    assert "FAIL, not decided (max 100)" in md
    html = (tmp_path / "run" / "report.html").read_text()
    assert "not enough evidence" in html
    # sftkit eval on the same split: the same answer
    from sftkit.commands.eval import eval_command

    res = CliRunner().invoke(eval_command, [str(recipe), "--model", str(tmp_path / "run" / "model"), "--base",
                                            "--output", str(tmp_path / "evaluation")])
    assert res.exit_code == 3, res.output
    assert f"NOT ENOUGH EVIDENCE ({reason})" in res.output and f"gate loss.eval_loss not decided: {reason}" in res.output
    assert json.loads((tmp_path / "evaluation" / "metrics.json").read_text())["eval"][0]["verdict"] == \
        "not enough evidence"


def test_validate_warns_when_the_eval_split_is_too_small(tmp_path):
    def validate(recipe: dict) -> tuple[int, str]:
        from sftkit.cli import cli as main

        path = tmp_path / "r.toml"
        path.write_text(tomli_w.dumps(recipe))
        res = CliRunner().invoke(main, ["validate", str(path)])
        return res.exit_code, res.output

    write_jsonl(tmp_path / "train.jsonl", qa_rows(32))
    (tmp_path / "held.csv").write_text("prompt,completion\n" + "".join(f"q{i},a{i}\n" for i in range(3)))
    base = {"recipe": {"name": "v"}, "model": {"name": "org/m"}, "data": [{"source": "jsonl", "path": "train.jsonl"}],
            "strategy": {"name": "instruction"}, "eval": [{"name": "loss"}]}
    code, out = validate({**base, "dataset": {"eval_fraction": 0.01}})
    assert code == 0, out
    (line,) = [x for x in out.splitlines() if "warning:" in x]
    assert line.startswith(f"{tmp_path / 'r.toml'}:") and "dataset.eval_fraction: warning:" in line  # located
    assert "at most 1 row(s) (1 of 32 in data[0])" in line and "at least 6 items" in line
    code, out = validate({**base, "dataset": {"eval_fraction": 0.2}})  # 6 of 32 rows
    assert code == 0 and "warning" not in out, out
    # an eval-only entry of 3 rows, counted in a CSV file
    held = [*base["data"], {"source": "csv", "path": "held.csv", "split": "eval"}]
    code, out = validate({**base, "data": held})
    assert code == 0 and "data[1].split: warning: the eval split will hold at most 3 row(s)" in out, out
    code, out = validate({**base, "data": [{**base["data"][0], "max_rows": 20}], "dataset": {"eval_fraction": 0.25}})
    assert "at most 5 row(s) (5 of 20 in data[0])" in out, out  # max_rows samples before the split
    # rows that cannot be counted cheaply (a hub dataset): no guess, no warning
    hub = [{"source": "hf", "id": "org/data"}]
    code, out = validate({**base, "data": hub, "dataset": {"eval_fraction": 0.01}})
    assert "warning" not in out, out
