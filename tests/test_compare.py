"""``sftkit compare RUN_A RUN_B``: per-evaluator paired verdicts between two finished runs, the
regressed items, ``--gate`` (exit 3), the refusal of runs scored on different items (exit 2), and
``--junit``. Run directories are made from real evaluation rows (:func:`sftkit.evaluation.compare`),
and once from two real tiny runs."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from sftkit.api import EvalResult, RunContext
from sftkit.config import resolve
from sftkit.evaluation import compare as eval_rows

EVALS = [{"name": "json_valid"}, {"name": "classification"}]
N = 30


def _result(metric: str, scores: list[float], prompts=None) -> EvalResult:
    prompts = prompts or [f"question {i}" for i in range(len(scores))]
    items = [{"score": s, "prompt": p, "answer": f"answer {i}" if s else "bad", "expected": f"answer {i}"}
             for i, (s, p) in enumerate(zip(scores, prompts))]
    return EvalResult({metric: sum(scores) / len(scores)}, metric, items=items)


def make_run(root: Path, name: str, json_scores, class_scores, prompts=None) -> Path:
    """A finished run directory whose metrics.json holds real evaluation rows with these item scores."""
    run_dir = root / name
    run_dir.mkdir(parents=True)
    ctx = RunContext(config=resolve({"eval": EVALS}), recipe_path=None, base_dir=run_dir, run_dir=run_dir)
    tuned = {"json_valid": _result("valid_rate", json_scores, prompts),
             "classification": _result("accuracy", class_scores)}
    base = {"json_valid": _result("valid_rate", [0.0] * N, prompts), "classification": _result("accuracy", [0.0] * N)}
    rows = eval_rows(ctx, base, tuned)
    (run_dir / "metrics.json").write_text(json.dumps({"recipe": name, "strategy": "instruction", "eval": rows,
                                                      "gates": {"passed": True, "failures": []}}))
    (run_dir / "recipe.toml").write_text('[recipe]\nname = "x"\nseed = 3\n')
    return run_dir


def _compare(*args):
    from sftkit.commands.compare import compare

    return CliRunner().invoke(compare, [str(a) for a in args])


GOOD_JSON = [1.0] * N
GOOD_CLASS = [1.0] * 20 + [0.0] * 10


def test_b_worse_on_one_evaluator_fails_the_gate_and_lists_the_regressed_items(tmp_path):
    a = make_run(tmp_path, "a", GOOD_JSON, GOOD_CLASS)
    b = make_run(tmp_path, "b", [1.0] * 10 + [0.0] * 20, GOOD_CLASS)
    res = _compare(a, b, "--gate")
    assert res.exit_code == 3, res.output
    by_label = {line.split()[1]: line for line in res.output.splitlines() if line.startswith("eval ")}
    assert "B WORSE" in by_label["json_valid"] and "mcnemar" in by_label["json_valid"]
    assert "[" in by_label["json_valid"]  # the intervals of both sides
    assert "NO SIGNIFICANT DIFFERENCE" in by_label["classification"]
    assert "regressed items (right in A, wrong in B): 20" in res.output
    assert "'question 10'" in res.output and "'question 9'" not in res.output  # exactly the items that regressed
    assert "compare gate failed: json_valid.valid_rate: B is significantly worse" in res.output
    assert _compare(a, b).exit_code == 0  # without --gate the verdict is reported, not enforced
    doc = json.loads(_compare(a, b, "--format", "json").output)
    assert [r["verdict"] for r in doc["rows"]] == ["B worse", "no significant difference"]
    assert _compare(b, a, "--gate").exit_code == 0  # the other way round B is better


def test_identical_runs_show_no_significant_difference(tmp_path):
    a = make_run(tmp_path, "a", GOOD_JSON, GOOD_CLASS)
    b = make_run(tmp_path, "b", GOOD_JSON, GOOD_CLASS)
    res = _compare(a, b, "--gate")
    assert res.exit_code == 0, res.output
    verdicts = [line for line in res.output.splitlines() if line.startswith("eval ")]
    assert len(verdicts) == 2 and all("NO SIGNIFICANT DIFFERENCE" in v for v in verdicts)
    assert "regressed" not in res.output


def test_max_regression_fails_a_drop_too_small_to_be_significant(tmp_path):
    a = make_run(tmp_path, "a", GOOD_JSON, GOOD_CLASS)
    b = make_run(tmp_path, "b", GOOD_JSON, [1.0] * 18 + [0.0] * 12)
    assert _compare(a, b, "--gate").exit_code == 0
    res = _compare(a, b, "--gate", "--max-regression", "0.05")
    assert res.exit_code == 3 and "classification.accuracy regressed by 0.06667" in res.output


def test_runs_scored_on_different_items_are_refused_naming_the_evaluator(tmp_path):
    a = make_run(tmp_path, "a", GOOD_JSON, GOOD_CLASS)
    b = make_run(tmp_path, "b", GOOD_JSON, GOOD_CLASS, prompts=[f"other question {i}" for i in range(N)])
    res = _compare(a, b)
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and "evaluator 'json_valid' scored different items" in lines[0]
    res = _compare(a, tmp_path / "missing")
    assert res.exit_code == 2 and res.output.startswith("error:") and "Traceback" not in res.output


def test_junit_has_one_case_per_evaluator_and_fails_exactly_the_worse_one(tmp_path):
    a = make_run(tmp_path, "a", GOOD_JSON, GOOD_CLASS)
    b = make_run(tmp_path, "b", [1.0] * 10 + [0.0] * 20, GOOD_CLASS)
    res = _compare(a, b, "--junit", tmp_path / "out" / "compare.xml")
    assert res.exit_code == 0, res.output
    suite = ET.parse(tmp_path / "out" / "compare.xml").getroot().find("testsuite")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert set(cases) == {"compare json_valid.valid_rate", "compare classification.accuracy"}
    assert cases["compare json_valid.valid_rate"].find("failure") is not None
    assert cases["compare classification.accuracy"].find("failure") is None
    assert suite.get("failures") == "1" and suite.get("tests") == "2"


# --------------------------------------------------------------------------- two real tiny runs

@pytest.mark.parametrize("gate", ["--gate"])
def test_two_real_tiny_runs_of_one_recipe_compare_and_refuse_other_items(tmp_path, gate):
    """Same recipe twice: no difference; another seed draws other eval rows: refused."""
    import tomli_w

    from sftkit.commands.run import run as run_command
    from sftkit.tiny import save_tiny_model

    tiny = save_tiny_model(tmp_path / "tiny")
    (tmp_path / "train.jsonl").write_text("".join(json.dumps({"prompt": f"What is {i} plus {i}?",
                                                              "completion": f"It is {2 * i}."}) + "\n"
                                                  for i in range(16)))
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(tomli_w.dumps({
        "recipe": {"name": "t", "seed": 3}, "model": {"name": str(tiny)},
        "data": [{"source": "jsonl", "path": "train.jsonl"}], "template": {"formatter": "chatml"},
        "dataset": {"eval_fraction": 0.5}, "strategy": {"name": "instruction"},
        "training": {"max_steps": 1, "per_device_train_batch_size": 4, "max_length": 64},
        "eval": [{"name": "loss"}]}))  # items named by index: the eval split's content is in their hash
    runner = CliRunner()
    for name, extra in (("a", []), ("b", []), ("c", ["--set", "recipe.seed=4"])):
        res = runner.invoke(run_command, [str(recipe), "--output", str(tmp_path / name), *extra])
        assert res.exit_code == 0, res.output
    items = json.loads((tmp_path / "a" / "metrics.json").read_text())["eval"][0]["items"]
    assert items["n"] == 8 and len(items["digest"]) == 64
    res = _compare(tmp_path / "a", tmp_path / "b", gate)
    assert res.exit_code == 0 and "NO SIGNIFICANT DIFFERENCE" in res.output, res.output
    res = _compare(tmp_path / "a", tmp_path / "c", gate)
    assert res.exit_code == 2 and "'loss' scored different items" in res.output  # another seed, another split


def test_split_digest_is_the_rows_content_wherever_they_live():
    """The same rows give the same digest whether they are a table of their own or a shuffled
    selection of a bigger one (their Arrow bytes differ: a cache elsewhere gave another digest);
    other rows, or the same rows in another order, give another."""
    from datasets import Dataset

    from sftkit.evaluation.itemset import split_digest

    rows = [{"messages": [{"role": "user", "content": f"q{i}"}], "source": "jsonl:x.jsonl", "cluster": None}
            for i in range(40)]
    alone = Dataset.from_list(rows[10:20])
    big = Dataset.from_list(rows).shuffle(seed=3)
    order = {r["messages"][0]["content"]: i for i, r in enumerate(big)}
    picked = big.select([order[f"q{i}"] for i in range(10, 20)])
    assert split_digest(alone) == split_digest(picked)
    assert split_digest(alone) != split_digest(Dataset.from_list(rows[11:21]))
    assert split_digest(alone) != split_digest(Dataset.from_list(rows[10:20][::-1]))
