"""Rewards (issue 20): the registry kind and hook, ``[[reward]]`` validated without torch, each
reward call isolated, the built-in rewards scoring exactly as the evaluator of the same name, the
``code_exec`` reward refusing a forged pass, and the docs' reward plugin built as a run builds it."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from sftkit import hookimpl
from sftkit.config import RewardSpec, resolve
from sftkit.errors import PluginError, SftkitError
from sftkit.plugins import make_host
from sftkit.rewards import BoundReward, Reward, RewardError, build_rewards, check_columns
from sftkit.validate import validate_file

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
import reward_plugin  # noqa: E402  (the example on docs/plugins.md, "A reward")

REPO = Path(__file__).resolve().parents[1]


class RLPlugin:
    """A strategy that trains on rewards (registration metadata ``rewards=True``), as ``reasoning`` does."""

    @hookimpl
    def sftkit_register_strategies(self, register):
        register("rl", "json:loads", doc="x", accepts=["messages"], rewards=True,
                 schema={"type": "object", "additionalProperties": False, "properties": {}})


@pytest.fixture(scope="module")
def host():
    return make_host(entry_points=False, extra=(("rl_plugin", RLPlugin()), ("mine", reward_plugin)))


def write(tmp_path: Path, strategy: str, rewards: str, rows: str = '{"question": "1+1?", "answer": "#### 2"}') -> Path:
    (tmp_path / "d.jsonl").write_text(rows + "\n", encoding="utf-8")
    path = tmp_path / "r.toml"
    path.write_text(f'[recipe]\nname = "r"\n[model]\nname = "org/m"\n[[data]]\nsource = "jsonl"\npath = "d.jsonl"\n'
                    f'columns = {{prompt = "question", completion = "answer"}}\n[strategy]\nname = "{strategy}"\n{rewards}',
                    encoding="utf-8")
    return path


def problems(path: Path, host) -> list[str]:
    return [p.format() for p in validate_file(path, host)]


# ---------------------------------------------------------------------------- registry and hook

def test_builtin_rewards_register_through_the_hook_like_a_plugin(host):
    names = host.registry.names("rewards")
    assert set(names) >= {"numeric_answer", "exact_match", "contains", "regex", "json_valid", "code_exec", "format",
                          "length", "arithmetic_steps"}
    comp = host.registry.get("rewards", "numeric_answer")
    assert comp.origin == "sftkit.builtin.rewards" and comp.doc and comp.schema["additionalProperties"] is False
    assert host.registry.get("rewards", "arithmetic_steps").origin == "mine"
    assert "sftkit_register_rewards" in next(p for p in host.plugins if p.name == "sftkit.builtin.rewards").hooks


def test_builtin_reward_schemas_are_valid_and_the_scorers_options_are_the_evaluators(host):
    from sftkit.registry import schema_problem

    for comp in host.registry.all("rewards"):
        assert schema_problem(comp.schema) is None, comp.name  # built-ins skip the check when registered
        evaluator = host.registry.find("evaluators", comp.name)
        if evaluator is not None:  # each shared option declared once, on the evaluator
            theirs = evaluator.schema["properties"]
            shared = [k for k in comp.schema["properties"] if k in theirs]
            assert shared and all(comp.schema["properties"][k] is theirs[k] for k in shared), comp.name


def test_malformed_reads_or_rewards_metadata_fails_the_plugin():
    class Bad:
        @hookimpl
        def sftkit_register_rewards(self, register):
            register("bad", "json:loads", reads="answer")  # a string, not a list of columns

    class BadStrategy:
        @hookimpl
        def sftkit_register_strategies(self, register):
            register("bad_rl", "json:loads", rewards="yes")

    h = make_host(builtins=False, entry_points=False, extra=(("bad", Bad()), ("bad_rl", BadStrategy())))
    errors = {p.name: p.error for p in h.plugins}
    assert "reads='answer' must be a list of column names" in errors["bad"]
    assert "rewards='yes' must be true" in errors["bad_rl"]


def test_sftkit_schema_shows_the_reward_options(host):
    from sftkit.schema import composed_schema

    reward = composed_schema(host.registry)["properties"]["reward"]
    assert reward["type"] == "array"
    branches = {b["if"]["properties"]["name"]["const"]: b["then"] for b in reward["items"]["allOf"]}
    assert set(branches["numeric_answer"]["properties"]) >= {"name", "weight", "label", "match", "tolerance"}
    assert "prompts" not in branches["numeric_answer"]["properties"]  # the scorer's options, not the eval's items
    assert branches["format"]["required"] == ["name", "pattern"]
    assert "min_steps" in branches["arithmetic_steps"]["properties"]


# ---------------------------------------------------------------------------- [[reward]] validation

def test_a_valid_reward_recipe_resolves_to_typed_reward_specs(tmp_path, host):
    from sftkit.recipe import load_recipe

    path = write(tmp_path, "rl", '[[reward]]\nname = "numeric_answer"\nmatch = "strict"\n'
                                 '[[reward]]\nname = "format"\nweight = 0.2\npattern = "#### -?[0-9]"\n'
                                 '[[reward]]\nname = "arithmetic_steps"\nlabel = "steps"\nweight = -0.5\n')
    assert problems(path, host) == []
    rewards = load_recipe(path, host=host).config.rewards
    assert [(r.name, r.weight, r.label) for r in rewards] == [("numeric_answer", 1.0, None), ("format", 0.2, None),
                                                              ("arithmetic_steps", -0.5, "steps")]
    assert rewards[0].options["match"] == "strict" and rewards[0].options["tolerance"] == 1e-6  # defaults filled
    assert isinstance(rewards[0], RewardSpec) and resolve({}).rewards == ()


def test_reward_names_options_and_weights_are_checked_with_their_lines(tmp_path, host):
    path = write(tmp_path, "rl", '[[reward]]\nname = "numeric_anwser"\n'
                                 '[[reward]]\nname = "format"\npatern = "####"\n'
                                 '[[reward]]\nname = "length"\nbudget = 10\nweight = nan\n'
                                 '[[reward]]\nname = "numeric_answer"\nmatch = "strictly"\n')
    out = problems(path, host)
    assert f'{path}:12:1: reward[0].name: unknown reward \'numeric_anwser\'; did you mean "numeric_answer"?' in out[0]
    assert f"{path}:13:3: reward[1]: missing required key 'pattern' in this table (add it)" in out
    assert f'{path}:15:1: reward[1].patern: unknown key \'patern\'; did you mean "pattern"?' in out
    assert f"{path}:19:1: reward[2].weight: must be a finite number, got nan" in out
    assert any(o.startswith(f"{path}:22:1: reward[3].match: 'strictly' is not one of: strict, flexible") for o in out)
    assert len(out) == 5


def test_rewards_need_a_strategy_that_trains_on_them_and_such_a_strategy_needs_rewards(tmp_path, host):
    path = write(tmp_path, "instruction", '[[reward]]\nname = "numeric_answer"\n')
    (out,) = problems(path, host)
    assert out.startswith(f"{path}:11:3: reward[0]: [[reward]] tables have no effect: strategy 'instruction' does not "
                          "train on rewards (use a strategy that does (")
    assert "rl" in out.split("does (", 1)[1].split(")")[0].split(", ")  # the strategies that do, by registration
    path = write(tmp_path, "rl", "")
    (out,) = problems(path, host)
    assert out.startswith(f"{path}:10:1: strategy.name: strategy 'rl' trains on rewards, but the recipe has no "
                          "[[reward]] table")


def test_two_rewards_with_one_label_are_refused(tmp_path, host):
    path = write(tmp_path, "rl", '[[reward]]\nname = "format"\npattern = "x"\n'
                                 '[[reward]]\nname = "regex"\npattern = "y"\nlabel = "format"\n')
    (out,) = problems(path, host)
    assert out.startswith(f"{path}:17:1: reward[1].label: two [[reward]] tables are labelled 'format' (reward[0] and "
                          "this one)")


def test_a_column_a_reward_reads_is_checked_against_the_data(tmp_path, host):
    path = write(tmp_path, "rl", '[[reward]]\nname = "code_exec"\n')
    (out,) = problems(path, host)
    assert out.startswith(f"{path}:12:1: reward[0].name: reward 'code_exec' reads column 'test', which data[0] lacks "
                          "(its fields: prompt, completion)")
    path = write(tmp_path, "rl", '[[reward]]\nname = "numeric_answer"\nexpected_field = "solution"\n')
    assert "reads column 'solution'" in problems(path, host)[0]
    # the mapped column and the file's own name both count
    path = write(tmp_path, "rl", '[[reward]]\nname = "numeric_answer"\nexpected_field = "answer"\n')
    assert problems(path, host) == []


def test_validating_rewards_imports_nothing_heavy(tmp_path):
    path = write(tmp_path, "instruction", "")
    code = ("import sys\nfrom sftkit.plugins import make_host\nfrom sftkit.validate import validate_file\n"
            f"validate_file({str(path)!r}, make_host(entry_points=False))\n"
            "import sftkit.rewards, sftkit.rewards.scorers, sftkit.rewards.code, sftkit.rewards.shape\n"
            "heavy = [m for m in ('torch', 'transformers', 'trl', 'datasets', 'peft') if m in sys.modules]\n"
            "assert not heavy, heavy")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr


# ---------------------------------------------------------------------------- building and isolation

class Returns(Reward):
    def score(self, prompts, completions, rows, step):
        value = self.options["value"]
        return value(completions) if callable(value) else value


def bound(value) -> BoundReward:
    return BoundReward(label="odd", name="odd", plugin="mine", weight=1.0, reward=Returns({"value": value}))


def test_a_reward_call_returns_floats_and_none():
    import numpy as np

    assert bound([1, None, np.float32(0.5), True])(None, ["a", "b", "c", "d"], [{}] * 4, 0) == [1.0, None, 0.5, 1.0]


@pytest.mark.parametrize("value, said", [
    (lambda c: 1 / 0, "reward 'odd' from plugin 'mine' raised at step 3: ZeroDivisionError: division by zero"),
    ([1.0, float("nan")], "reward 'odd' from plugin 'mine' returned nan for completion 1"),
    ([1.0, float("inf")], "reward 'odd' from plugin 'mine' returned inf for completion 1"),
    ([1.0, "1.0"], "reward 'odd' from plugin 'mine' returned str '1.0' for completion 1, not a number"),
    ([1.0], "reward 'odd' from plugin 'mine' returned 1 score(s) for 2 completion(s)"),
    (0.5, "reward 'odd' from plugin 'mine' returned float, not a list of 2 scores"),
    (lambda c: (_ for _ in ()).throw(SftkitError("bad pattern")), "reward 'odd' from plugin 'mine' failed at step 3: bad pattern"),
])
def test_whatever_a_reward_does_wrong_is_one_line_naming_it_and_its_plugin(value, said):
    with pytest.raises(RewardError) as info:
        bound(value)(None, ["a", "b"], [{}, {}], 3)
    assert isinstance(info.value, SftkitError) and "\n" not in str(info.value)
    assert str(info.value).startswith(said)


def test_build_rewards_names_unknown_rewards_failing_factories_and_clashing_labels(host, tmp_path):
    with pytest.raises(SftkitError, match="reward\\[0\\].name: unknown reward 'formt'; did you mean \"format\""):
        build_rewards([RewardSpec(name="formt")], base_dir=tmp_path, plugins=host)
    with pytest.raises(SftkitError, match="two \\[\\[reward\\]\\] tables are labelled 'format'"):
        build_rewards([RewardSpec(name="format", options={"pattern": "x"}),
                       RewardSpec(name="regex", label="format", options={"pattern": "y"})], base_dir=tmp_path, plugins=host)
    (tmp_path / "s.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(SftkitError, match="schema file .*s.json could not be read"):  # resolved against base_dir
        build_rewards([RewardSpec(name="json_valid", options={"schema_file": "s.json"})], base_dir=tmp_path, plugins=host)

    class Broken:
        @hookimpl
        def sftkit_register_rewards(self, register):
            register("broken", f"{__name__}:_raise")

    h = make_host(builtins=False, entry_points=False, extra=(("brk", Broken()),))
    with pytest.raises(PluginError, match="reward 'broken' from plugin 'brk' failed: RuntimeError: no model"):
        build_rewards([RewardSpec(name="broken")], base_dir=tmp_path, plugins=h)


def _raise(options):
    raise RuntimeError("no model")


def test_check_columns_is_one_data_error_naming_reward_and_column(host, tmp_path):
    from sftkit.errors import DataError

    rewards = build_rewards([RewardSpec(name="code_exec", options={"test_column": "tests"})], base_dir=tmp_path,
                            plugins=host)
    assert rewards[0].reads == (("tests",), ("entry_point",))
    check_columns(rewards, ["prompt", "tests", "entry_point"])
    with pytest.raises(DataError, match="reward 'code_exec' from plugin 'sftkit' reads column 'tests', which "
                                        "data\\[0\\] lacks \\(columns: entry_point, prompt\\)"):
        check_columns(rewards, ["prompt", "entry_point"], where="data[0]")


def test_the_docs_reward_plugin_is_built_and_called_as_a_run_does(host, tmp_path):
    from sftkit.testing import check_plugin

    check_plugin(reward_plugin)
    specs = (RewardSpec(name="arithmetic_steps", weight=0.2, options={"min_steps": 2}),
             RewardSpec(name="numeric_answer", options={"match": "strict"}))
    steps, correct = build_rewards(specs, base_dir=tmp_path, plugins=host)
    assert (steps.plugin, steps.weight, correct.plugin) == ("mine", 0.2, "sftkit")
    completions = ["3 + 4 = 7\n7 x 2 = 14\n#### 14", "3 + 4 = 8\n8 x 2 = 16\n#### 16", "7 x 2 = 14\n#### 14", "#### 14"]
    rows = [{"answer": "#### 14"}] * 3 + [{"answer": "14", "kind": "trivia"}]
    assert steps(None, completions, rows, 0) == [1.0, 0.5, 0.0, None]
    assert correct(None, completions, rows, 0) == [1.0, 0.0, 1.0, 1.0]


# ---------------------------------------------------------------------------- one scorer, two uses

TRICKY = [
    "The answer is 42.\n#### 42", "#### 42.0", "#### 1,234", "I think 41... no, 42", "#### -3", "",
    "  Paris.  ", "Paris", "paris", "The capital is Paris, of course", "Parisian", "```json\n{\"a\": 1}\n```",
    "{\"a\": \"x\"}", "not json {", "[1, 2", "\u00e9t\u00e9 #### 7", "Answer: 42\n#### 42\n#### 43",
]
EXPECTED = ["42", "#### 1234", "Paris", "-3", "7"]
SCORERS = [
    ("numeric_answer", {"match": "strict"}), ("numeric_answer", {"match": "flexible"}),
    ("numeric_answer", {"match": "strict", "answer_pattern": "Answer: (\\d+)"}), ("exact_match", {}),
    ("exact_match", {"normalize": ["strip"]}), ("contains", {}), ("contains", {"whole_words": False}),
    ("regex", {"pattern": "#### -?\\d+\\s*$"}), ("regex", {}), ("regex", {"pattern": "paris", "ignore_case": True}),
    ("json_valid", {}), ("json_valid", {"extract": False}),
    ("json_valid", {"schema": {"type": "object", "properties": {"a": {"type": "integer"}}}}),
    ("exact_match", {"extract": "regex:#### (.*)"}),
]


@pytest.mark.parametrize("truncated", [False, True])
@pytest.mark.parametrize("name, options", SCORERS, ids=lambda v: str(v))
def test_each_reward_scores_exactly_as_the_evaluator_of_its_name(host, name, options, truncated, tmp_path):
    evaluator = host.registry.get("evaluators", name).create(options)
    (reward,) = build_rewards([RewardSpec(name=name, options=options)], base_dir=tmp_path, plugins=host)
    rows = [{"question": "q", "answer": e, "truncated": truncated} for e in EXPECTED for _ in TRICKY]
    completions = TRICKY * len(EXPECTED)
    judged = [evaluator.score_output(c, r, truncated)[0] for c, r in zip(completions, rows)]
    assert reward(None, completions, rows, 0) == judged
    strict_cut = truncated and options.get("match") == "strict"  # strict refuses every truncated answer
    assert 0 < sum(judged) < len(judged) or strict_cut  # the outputs tell right from wrong


def test_format_is_the_regex_scorer_with_a_required_pattern(host, tmp_path):
    evaluator = host.registry.get("evaluators", "regex").create({"pattern": "#### -?\\d+\\s*$"})
    (fmt,) = build_rewards([RewardSpec(name="format", options={"pattern": "#### -?\\d+\\s*$"})], base_dir=tmp_path,
                           plugins=host)
    assert fmt(None, TRICKY, [{}] * len(TRICKY), 0) == [evaluator.score_output(c, {})[0] for c in TRICKY]


def test_strict_numeric_answer_refuses_a_truncated_completion_in_both_uses(host, tmp_path):
    (reward,) = build_rewards([RewardSpec(name="numeric_answer", options={"match": "strict"})], base_dir=tmp_path,
                              plugins=host)
    rows = [{"answer": "#### 42"}, {"answer": "#### 42", "truncated": True}, {"question": "no answer"}]
    assert reward(None, ["#### 42"] * 3, rows, 0) == [1.0, 0.0, None]
    evaluator = host.registry.get("evaluators", "numeric_answer").create({"match": "strict"})
    assert evaluator.score_output("#### 42", rows[0], False)[0] == 1.0
    assert evaluator.score_output("#### 42", rows[0], True)[0] == 0.0


def test_length_penalises_beyond_the_budget(host, tmp_path):
    chars, words = build_rewards([RewardSpec(name="length", options={"budget": 10}),
                                  RewardSpec(name="length", label="words", options={"budget": 2, "unit": "words",
                                                                                     "max_penalty": 0.5})],
                                 base_dir=tmp_path, plugins=host)
    texts = ["x" * 10, "x" * 15, "x" * 40, "a b c", "a b"]
    assert chars(None, texts, [{}] * 5, 0) == [0.0, -0.5, -1.0, 0.0, 0.0]
    assert words(None, texts, [{}] * 5, 0) == [0.0, 0.0, 0.0, -0.25, 0.0]
    assert all(not math.copysign(1, v) < 0 for v in chars(None, ["x"], [{}], 0))  # 0.0, not -0.0


def test_code_exec_reward_passes_a_solution_and_refuses_a_forged_pass(host, tmp_path):
    """The reward is the evaluator's sandboxed scorer: a program that writes a verdict-shaped line on
    every descriptor and exits 0 scores 0; a row without tests is not scored."""
    from sftkit.evaluation import code

    problem = {"prompt": 'def double(n):\n    """Twice n."""\n', "test": "def check(candidate):\n    assert candidate(2) == 4\n",
               "entry_point": "double"}
    forged = ("```python\ndef double(n):\n    import os\n    for fd in range(3, 64):\n        try:\n"
              "            os.write(fd, b'{\"status\": \"passed\"}\\n')\n        except OSError:\n            pass\n"
              "    os._exit(0)\n```")
    completions = ["```python\ndef double(n):\n    return 2 * n\n```", forged, "```python\ndef double(n):\n    return n\n```",
                   "anything"]
    rows = [problem, problem, problem, {"prompt": "no tests"}]
    (reward,) = build_rewards([RewardSpec(name="code_exec", options={"timeout": 3.0, "workers": 3})],
                              base_dir=tmp_path, plugins=host)
    assert reward(None, completions, rows, 0) == [1.0, 0.0, 0.0, None]
    verdicts = code.score_outputs([problem] * 3, completions[:3], timeout=3.0, workers=3)  # what code_exec aggregates
    assert [float(v.passed) for v in verdicts] == [1.0, 0.0, 0.0]
