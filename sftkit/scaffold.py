"""``sftkit plugin new NAME``: the files of a new plugin package that installs, conforms and runs.

:func:`plugin_files` returns ``{relative path: text}``; the command writes them into ``NAME/``.
Every package gets ``pyproject.toml`` (the ``sftkit`` entry point), ``plugin.py`` (the hooks, light),
one module per component kind asked for, a shipped recipe with its data, tests built on
``sftkit.testing`` (conformance, the source, the recipe validated and run with ``--smoke`` on a tiny
model) and a README. Light: imports nothing heavy.
"""

from __future__ import annotations

import re

KINDS = ("source", "evaluator", "reward", "formatter", "command", "hooks")
DEFAULT_KINDS = ("source", "evaluator", "command")

NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


def plugin_name(given: str) -> str | None:
    """The plugin's name (entry point, ``[a-z][a-z0-9_]*``) from what ``sftkit plugin new`` was given:
    ``sentiment_pro``, ``sentiment-pro`` or the distribution name ``sftkit-sentiment-pro`` all give
    ``sentiment_pro`` (the distribution is ``sftkit-sentiment-pro``, the package ``sftkit_sentiment_pro``);
    None when it cannot be one."""
    name = re.sub(r"^sftkit[-_]", "", given).replace("-", "_")
    return name if NAME_RE.match(name) else None

SAMPLE_ROWS = [
    ("What is the capital of France?", "Paris."), ("How many legs does a spider have?", "Eight."),
    ("What colour is the sky on a clear day?", "Blue."), ("What is 3 times 4?", "Twelve."),
    ("Which planet do we live on?", "Earth."), ("What do bees make?", "Honey."),
    ("What is frozen water called?", "Ice."), ("How many days are in a week?", "Seven."),
]


def _pyproject(n: dict) -> str:
    return f'''[build-system]
requires = ["setuptools>=77"]
build-backend = "setuptools.build_meta"

[project]
name = "{n["dist"]}"
version = "0.1.0"
description = "An sftkit plugin."
readme = "README.md"
requires-python = ">=3.10"
license = "Apache-2.0"  # change to your licence (an SPDX expression)
dependencies = ["sftkit>=0.1"]

[project.optional-dependencies]
test = ["pytest>=8"]

# the line that makes this a plugin: sftkit loads every entry point of the group "sftkit"
[project.entry-points.sftkit]
{n["name"]} = "{n["pkg"]}.plugin"

[tool.setuptools.packages.find]
where = ["src"]

[tool.setuptools.package-data]
{n["pkg"]} = ["recipes/*.toml", "recipes/data/*"]

[tool.pytest.ini_options]
testpaths = ["tests"]
sftkit_plugin = "{n["pkg"]}.plugin"
'''


def _plugin_py(n: dict, kinds: tuple) -> str:
    parts = [f'''"""The hooks sftkit calls for {n["dist"]}. Keep this module light: every sftkit command imports it;
factories are "module:attr" strings imported only when a recipe uses them."""

from __future__ import annotations

import sftkit
''']
    if "source" in kinds:
        parts.append(f'''

@sftkit.hookimpl
def sftkit_register_sources(register):
    register("{n["name"]}_qa", "{n["pkg"]}.sources:qa_rows", emits="messages",
             doc="Question/answer pairs from a JSON Lines file.",
             schema={{"type": "object", "additionalProperties": False, "required": ["path"], "properties": {{
                 "path": {{"type": "string", "x-sftkit-path": True, "description": "JSONL of question/answer rows."}},
                 "question_key": {{"type": "string", "default": "question"}},
                 "answer_key": {{"type": "string", "default": "answer"}}}}}})
''')
    if "evaluator" in kinds:
        parts.append(f'''

@sftkit.hookimpl
def sftkit_register_evaluators(register):
    register("{n["name"]}_recall", "{n["pkg"]}.evaluators:AnswerRecall",
             doc="Share of answers whose first word the model says.",
             schema={{"type": "object", "additionalProperties": False, "properties": {{
                 "limit": {{"type": "integer", "minimum": 1, "default": 32, "description": "Rows scored."}},
                 "max_new_tokens": {{"type": "integer", "minimum": 1, "default": 32,
                                    "description": "Tokens generated per answer."}}}}}})
''')
    if "reward" in kinds:
        parts.append(f'''

def _answer_column(options):
    """The row column the reward reads (checked against the data by `sftkit validate`)."""
    return [options["answer_column"]]


@sftkit.hookimpl
def sftkit_register_rewards(register):
    register("{n["name"]}_answer_word", "{n["pkg"]}.rewards:AnswerWord", reads=_answer_column,
             doc="1 when the completion says the first word of the row's answer, else 0.",
             schema={{"type": "object", "additionalProperties": False, "properties": {{
                 "answer_column": {{"type": "string", "default": "answer",
                                   "description": "Row column holding the expected answer."}}}}}})
''')
    if "formatter" in kinds:
        parts.append(f'''

@sftkit.hookimpl
def sftkit_register_formatters(register):
    register("{n["name"]}_chat", "{n["pkg"]}.formatters:make_formatter",
             doc="'role: text' lines; the assistant's answers are trained.",
             schema={{"type": "object", "additionalProperties": False, "properties": {{}}}})
''')
    parts.append(f'''

@sftkit.hookimpl
def sftkit_register_recipes(register):
    register("{n["name"]}", "package://{n["pkg"]}/recipes/{n["name"]}.toml", doc="The {n["name"]} plugin's recipe.")
''')
    if "command" in kinds:
        parts.append(f'''

@sftkit.hookimpl
def sftkit_register_commands(cli):
    import click

    @cli.command("{n["name"].replace("_", "-")}-hello")
    def hello():
        """Say hello from {n["dist"]}."""
        click.echo("hello from {n["dist"]}")
''')
    if "hooks" in kinds:
        parts.append('''

@sftkit.hookimpl
def sftkit_run_end(run, metrics):
    run.console(f"finished {metrics['recipe']} with {len(metrics['eval'])} evaluation(s)")


@sftkit.hookimpl
def sftkit_report_sections(run, metrics):
    return [("Plugin notes", f"{len(metrics.get('eval', []))} evaluation(s) ran.")]
''')
    return "".join(parts)


SOURCES_PY = '''"""Data sources: ``factory(options, ctx) -> rows`` (see docs/plugins.md, "A source")."""

from __future__ import annotations

import json

from sftkit.errors import DataError


def qa_rows(options, ctx):
    """prompt/completion rows from question/answer JSON lines."""
    path = ctx.resolve(options["path"])
    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                rows.append({"prompt": row[options["question_key"]], "completion": row[options["answer_key"]]})
            except (ValueError, KeyError, TypeError) as exc:
                raise DataError(f"{path}:{lineno}: not a question/answer row ({type(exc).__name__}: {exc})",
                                hint=f"each line needs {options['question_key']!r} and {options['answer_key']!r}")
    return rows
'''

EVALUATORS_PY = '''"""Evaluators: ``evaluate(target, run) -> EvalResult`` (see docs/plugins.md, "An evaluator")."""

from __future__ import annotations

from sftkit.api import EvalResult
from sftkit.evaluation.base import BaseEvaluator


class AnswerRecall(BaseEvaluator):
    """Share of rows whose expected answer's first word appears in the model's answer."""

    primary = "recall"
    higher_is_better = True

    def evaluate(self, target, run):
        rows = list(run.data.eval or run.data.train)[: self.opt("limit", 32)]
        prompts = [row["messages"][:-1] for row in rows]
        outputs = target.generate(prompts, max_new_tokens=self.opt("max_new_tokens", 32))
        items = []
        for row, out in zip(rows, outputs):
            expected = row["messages"][-1]["content"]
            word = expected.split()[0].strip(".,!?").lower() if expected.split() else ""
            items.append({"score": float(bool(word) and word in out.lower()), "answer": out, "expected": expected})
        recall = sum(i["score"] for i in items) / max(1, len(items))
        return EvalResult(metrics={"recall": recall}, primary="recall", items=items,
                          samples=[{"output": i["answer"], "expected": i["expected"], "score": i["score"]}
                                   for i in items[:3]])
'''

REWARDS_PY = '''"""Rewards: ``score(prompts, completions, rows, step) -> [float | None]`` (see docs/plugins.md, "A reward")."""

from __future__ import annotations

from sftkit.api import Reward


class AnswerWord(Reward):
    """1 when the completion says the first word of the row's answer, 0 when it does not, None for a
    row without an answer (the reward does not apply there)."""

    def score(self, prompts, completions, rows, step):
        scores = []
        for completion, row in zip(completions, rows):
            words = str(row.get(self.options["answer_column"]) or "").split()
            word = words[0].strip(".,!?").lower() if words else ""
            scores.append(float(word in completion.lower()) if word else None)
        return scores
'''

FORMATTERS_PY = '''"""Formatters: ``factory(options) -> Formatter`` (see docs/plugins.md, "A formatter")."""

from __future__ import annotations

TEMPLATE = (  # {% generation %} marks the trained tokens
    "{% for m in messages %}"
    "{% if m['role'] == 'assistant' %}{% generation %}{{ m['content'] + eos_token }}{% endgeneration %}"
    "{% else %}{{ m['role'] + ': ' + m['content'] + '\\\\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}"
)


def make_formatter(options):
    from sftkit.templates.builtin_templates import BuiltinTemplate
    from sftkit.templates.formatter import TemplateFormatter

    return TemplateFormatter("plain_chat", builtin=BuiltinTemplate("plain_chat", TEMPLATE),
                             system=options.get("system"))
'''


def _recipe(n: dict, kinds: tuple) -> str:
    data = (f'source = "{n["name"]}_qa"\npath = "data/{n["name"]}.jsonl"' if "source" in kinds
            else f'source = "jsonl"\npath = "data/{n["name"]}.jsonl"\ncolumns = {{prompt = "question", completion = "answer"}}')
    text = f'''# Shipped by {n["dist"]}: `sftkit recipes copy {n["name"]} DEST` gives an editable copy.
[recipe]
name = "{n["name"]}"
description = "The {n["name"]} plugin's recipe."
requires = ["{n["dist"]}>=0.1"]

[model]
name = "HuggingFaceTB/SmolLM2-135M-Instruct"

[[data]]
{data}

[strategy]
name = "instruction"

[training]
max_steps = 20
max_length = 256
'''
    if "formatter" in kinds:
        text += f'\n[template]\nformatter = "{n["name"]}_chat"\n'
    if "evaluator" in kinds:
        text += f'\n[[eval]]\nname = "{n["name"]}_recall"\nlimit = 8\n'
    return text


def _tests(n: dict, kinds: tuple) -> str:
    text = f'''"""{n["dist"]}'s tests, on sftkit's pytest plugin (sftkit.testing): the plugin under test is named by
`sftkit_plugin` in pyproject.toml, so these fixtures load sftkit's built-ins and this plugin only."""

from sftkit.testing import check_plugin


def test_plugin_conforms(sftkit_plugin):
    host = check_plugin(sftkit_plugin)  # hooks match specs, schemas valid, factories import, light import
    assert host.registry.find("recipes", "{n["name"]}") is not None


def test_shipped_recipe_validates_and_runs_with_smoke(sftkit_cli, sftkit_run, sftkit_tiny_model, tmp_path):
    copied = sftkit_cli("recipes", "copy", "{n["name"]}", tmp_path / "copy")
    assert copied.exit_code == 0, copied.output
    recipe = tmp_path / "copy" / "{n["name"]}.toml"
    checked = sftkit_cli("validate", recipe)
    assert checked.exit_code == 0, checked.output
    outcome = sftkit_run(recipe, f"model.name={{sftkit_tiny_model!r}}", smoke=True)
    assert (outcome.run_dir / "COMPLETE").exists()
'''
    if "evaluator" in kinds:
        text += f'''    (row,) = outcome.metrics["eval"]
    assert row["name"] == "{n["name"]}_recall" and 0 <= row["tuned"] <= 1
'''
    if "source" in kinds:
        text += f'''

def test_source_reads_question_answer_rows(sftkit_host, tmp_path):
    from sftkit.api import SourceContext

    (tmp_path / "qa.jsonl").write_text('{{"question": "Hi?", "answer": "Hello."}}\\n', encoding="utf-8")
    rows = sftkit_host.registry.get("sources", "{n["name"]}_qa").create(
        {{"path": "qa.jsonl", "question_key": "question", "answer_key": "answer"}},
        SourceContext(base_dir=tmp_path, name="qa"))
    assert rows == [{{"prompt": "Hi?", "completion": "Hello."}}]
'''
    if "reward" in kinds:
        text += f'''

def test_reward_scores_rows_and_a_failure_names_it(sftkit_host):
    import pytest

    from sftkit.config import RewardSpec
    from sftkit.rewards import RewardError, build_rewards, check_columns

    (reward,) = build_rewards([RewardSpec(name="{n["name"]}_answer_word", weight=0.5)], base_dir=".",
                              plugins=sftkit_host)
    rows = [{{"answer": "Paris."}}, {{"answer": "Eight."}}, {{"question": "no answer here"}}]
    assert reward(None, ["It is Paris.", "Six.", "Hello"], rows, 0) == [1.0, 0.0, None]
    with pytest.raises(RewardError, match="{n["name"]}_answer_word"):  # a row that is not a dict: one line
        reward(None, ["x"], [None], 0)
    with pytest.raises(Exception, match="reads column 'answer'"):  # data without the column it reads
        check_columns([reward], ["question", "completion"])
'''
    if "command" in kinds:
        text += f'''

def test_command(sftkit_cli):
    result = sftkit_cli("{n["name"].replace("_", "-")}-hello")
    assert result.exit_code == 0 and result.output == "hello from {n["dist"]}\\n"
'''
    return text


def _readme(n: dict, kinds: tuple) -> str:
    d = n["dir"]
    return f'''# {n["dist"]}

An sftkit plugin made with `sftkit plugin new {n["name"]}` ({", ".join(kinds)}, and a recipe). The
contracts each component follows are in sftkit's docs/plugins.md.

```bash
pip install -e {d}           # with sftkit installed
sftkit plugins                       # lists "{n["name"]}"
sftkit recipes copy {n["name"]} my-{n["name"]} && sftkit validate my-{n["name"]}/{n["name"]}.toml
pytest {d}                   # conformance, and the recipe run with --smoke on a tiny model
```
'''


def plugin_files(name: str, kinds=DEFAULT_KINDS, directory: str | None = None) -> dict[str, str]:
    """The files of a new plugin ``name`` (lower case, ``[a-z][a-z0-9_]*``) with ``kinds`` components;
    ``directory`` is where they are written (the README's commands use it; default ``name``)."""
    import json

    n = {"name": name, "dist": f"sftkit-{name.replace('_', '-')}", "pkg": f"sftkit_{name}", "dir": directory or name}
    kinds = tuple(k for k in KINDS if k in set(kinds))
    pkg = f"src/{n['pkg']}"
    files = {
        "pyproject.toml": _pyproject(n),
        "README.md": _readme(n, kinds),
        f"{pkg}/__init__.py": f'"""{n["dist"]}: an sftkit plugin."""\n',
        f"{pkg}/plugin.py": _plugin_py(n, kinds),
        f"{pkg}/recipes/{name}.toml": _recipe(n, kinds),
        f"{pkg}/recipes/data/{name}.jsonl": "".join(json.dumps({"question": q, "answer": a}) + "\n"
                                                    for q, a in SAMPLE_ROWS),
        "tests/test_plugin.py": _tests(n, kinds),
    }
    if "source" in kinds:
        files[f"{pkg}/sources.py"] = SOURCES_PY
    if "evaluator" in kinds:
        files[f"{pkg}/evaluators.py"] = EVALUATORS_PY
    if "reward" in kinds:
        files[f"{pkg}/rewards.py"] = REWARDS_PY
    if "formatter" in kinds:
        files[f"{pkg}/formatters.py"] = FORMATTERS_PY
    return files
