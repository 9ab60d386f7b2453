"""The contract examples on docs/plugins.md (tests/fixtures/glossary_plugin.py) run: one smoke run on
a tiny model uses the source, formatter, evaluator, lifecycle hooks and report section; the command
runs through the CLI; every snippet of that file shown on the page is one of these tested regions."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
import glossary_plugin  # noqa: E402

from sftkit.testing import check_plugin, make_plugin_host  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
GLOSSARY_SAVED = glossary_plugin.GLOSSARY_TEMPLATE.replace("{% generation %}", "").replace("{% endgeneration %}", "")
GLOSSARY = "".join(f"term{i}: alpha beta gamma number {i}\n" for i in range(12))


@pytest.fixture
def sftkit_plugin():
    return glossary_plugin


def test_the_contract_plugin_conforms():
    check_plugin(glossary_plugin)


def test_every_contract_example_runs_in_one_smoke_run(sftkit_run, sftkit_recipe, tmp_path):
    (tmp_path / "glossary.txt").write_text(GLOSSARY, encoding="utf-8")
    recipe = sftkit_recipe(data=[{"source": "glossary", "path": "glossary.txt"}],
                           template={"formatter": "glossary"}, output={"report": True},
                           eval=[{"name": "definition_recall", "limit": 50}])
    lines = []
    outcome = sftkit_run(recipe, console=lines.append)
    assert "glossary: 12 training rows" in lines
    (row,) = outcome.metrics["eval"]
    assert row["name"] == "definition_recall" and row["primary"] == "recall" and 0 <= row["tuned"] <= 1
    assert json.loads((outcome.run_dir / "glossary.json").read_text()) == {"definition_recall": row["tuned"]}
    assert outcome.metrics["plugins"] == {"glossary": {"terms": 12}}  # persisted plugin metrics
    report = (outcome.run_dir / "report.md").read_text()
    assert "12 terms; definition recall:" in report and "[info] Only 12 glossary terms" in report
    # `sftkit report` rebuilds the run from its files: the plugin's section and finding come back the same
    from sftkit.reporting import write_report

    (outcome.run_dir / "report.md").unlink()
    write_report(outcome.run_dir, host=make_plugin_host(glossary_plugin))
    assert (outcome.run_dir / "report.md").read_text() == report
    # the formatter's template was saved with the model, so serving renders what training rendered
    config = json.loads((outcome.run_dir / "model" / "tokenizer_config.json").read_text())
    saved = config.get("chat_template") or (outcome.run_dir / "model" / "chat_template.jinja").read_text()
    assert saved == GLOSSARY_SAVED  # the markers removed


def test_the_contract_command_runs(sftkit_cli, tmp_path):
    path = tmp_path / "g.txt"
    path.write_text(GLOSSARY, encoding="utf-8")
    result = sftkit_cli("glossary-count", path)
    assert result.exit_code == 0 and result.output.strip() == "12 terms"
    result = sftkit_cli("glossary_plugin:glossary-count", path)  # the qualified name reaches it too
    assert result.exit_code == 0 and result.output.strip() == "12 terms"


def test_the_evaluator_is_capped_by_smoke():
    from sftkit.run.smoke import recipe as apply_smoke

    host = make_plugin_host(glossary_plugin)
    data = apply_smoke({"eval": [{"name": "definition_recall", "limit": 50, "max_new_tokens": 64}]}, host.registry)
    assert data["eval"][0]["limit"] == 4 and data["eval"][0]["max_new_tokens"] == 16


def test_the_page_shows_only_tested_regions_of_the_example():
    text = (REPO / "docs" / "plugins.md").read_text()
    shown = {ref.partition("#")[2] for ref in __import__("re").findall(r"<!-- snippet: ([^ ]+) -->", text)
             if ref.startswith("tests/fixtures/glossary_plugin.py")}
    assert shown == {"source", "formatter", "evaluator", "hooks", "command", "lifecycle", "report"}
