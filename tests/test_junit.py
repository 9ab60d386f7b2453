"""``--junit FILE`` on ``sftkit run`` / ``eval``: a JUnit XML a standard parser reads, with one case
per gate and per evaluator verdict, failing exactly the gates that failed."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from click.testing import CliRunner


def _cases(path):
    root = ET.parse(path).getroot()
    suite = root.find("testsuite")
    return suite, {c.get("name"): c for c in suite.iter("testcase")}


def test_a_run_with_a_failing_gate_marks_exactly_that_gate_failed(tmp_path):
    import tomli_w

    from sftkit.commands.eval import eval_command
    from sftkit.commands.run import run as run_command
    from sftkit.tiny import save_tiny_model

    tiny = save_tiny_model(tmp_path / "tiny")
    (tmp_path / "train.jsonl").write_text("".join(json.dumps({"prompt": f"What is {i}?", "completion": f"{i}."}) + "\n"
                                                  for i in range(12)))
    recipe = tmp_path / "recipe.toml"
    items = [f"Say {w}" for w in ("hi", "bye", "yes", "no", "1", "2")]  # enough for a decided gate
    recipe.write_text(tomli_w.dumps({
        "recipe": {"name": "t", "seed": 3}, "model": {"name": str(tiny)},
        "data": [{"source": "jsonl", "path": "train.jsonl"}], "template": {"formatter": "chatml"},
        "strategy": {"name": "instruction"},
        "training": {"max_steps": 1, "per_device_train_batch_size": 4, "max_length": 64},
        "eval": [{"name": "json_valid", "label": "strict", "items": items, "max_new_tokens": 3, "min": 0.9},
                 {"name": "json_valid", "label": "lenient", "items": items, "max_new_tokens": 3, "min": 0.0},
                 {"name": "json_valid", "label": "ungated", "items": items, "max_new_tokens": 3}]}))
    res = CliRunner().invoke(run_command, [str(recipe), "--output", str(tmp_path / "run"),
                                           "--junit", str(tmp_path / "junit.xml")])
    assert res.exit_code == 3, res.output
    suite, cases = _cases(tmp_path / "junit.xml")
    gates = {name for name in cases if name.startswith("gate ")}
    assert gates == {"gate strict.valid_rate", "gate lenient.valid_rate"}  # a table without a gate has none
    failed = {name for name, c in cases.items() if c.find("failure") is not None or c.find("error") is not None}
    assert failed == {"gate strict.valid_rate"}
    assert "< min 0.9" in cases["gate strict.valid_rate"].find("failure").get("message")
    assert {"verdict strict", "verdict lenient", "verdict ungated"} <= set(cases)
    assert suite.get("failures") == "1" and suite.get("errors") == "0" and suite.get("tests") == str(len(cases))

    # sftkit eval on the trained model: the same cases, from the same rows
    res = CliRunner().invoke(eval_command, [str(recipe), "--model", str(tmp_path / "run" / "model"), "--output",
                                            str(tmp_path / "eval"), "--junit", str(tmp_path / "eval.xml")])
    assert res.exit_code == 3, res.output
    _, cases = _cases(tmp_path / "eval.xml")
    assert {n for n, c in cases.items() if c.find("failure") is not None} == {"gate strict.valid_rate"}


def test_a_run_that_stops_before_judging_is_one_errored_case(tmp_path):
    from sftkit.commands.run import run as run_command

    res = CliRunner().invoke(run_command, [str(tmp_path / "nope.toml"), "--junit", str(tmp_path / "j.xml")])
    assert res.exit_code == 2
    suite, cases = _cases(tmp_path / "j.xml")
    assert list(cases) == ["run"] and cases["run"].find("error") is not None and suite.get("errors") == "1"


def test_junit_with_each_holdout_is_refused_in_one_line(tmp_path):
    from sftkit.commands.run import run as run_command

    res = CliRunner().invoke(run_command, ["x.toml", "--each-holdout", "--junit", str(tmp_path / "j.xml")])
    assert res.exit_code == 2 and res.output.count("error:") == 1 and "--each-holdout" in res.output
