"""The ``reasoning`` strategy (GRPO / RLOO on TRL): trains to ``max_steps`` on a tiny model with the
per-step RL numbers in metrics.json, gives rewards the rows (other columns included), stops with one
line when a reward fails, resumes a killed run to the same weights, and 2 processes match one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
import tomli_w

import sftkit
from sftkit.api import Reward

SFTKIT = [sys.executable, "-m", "sftkit"]
SEEN: list = []  # (rows, step) each call of the test reward saw


class Echo(Reward):
    """Reward = completion length / 10 (spread within groups on a random model); records its rows."""

    def score(self, prompts, completions, rows, step):
        if self.options.get("fail_at") is not None and step >= self.options["fail_at"]:
            raise ValueError("scorer exploded")
        SEEN.append((rows, step, prompts))
        return [len(c) / 10 for c in completions]


def _plugin() -> types.ModuleType:
    plugin = types.ModuleType("echoplug")

    @sftkit.hookimpl
    def sftkit_register_rewards(register):
        register("echo", Echo, schema={"type": "object", "additionalProperties": False,
                                       "properties": {"fail_at": {"type": "integer"}}},
                 doc="test reward", reads=["tests"])

    plugin.sftkit_register_rewards = sftkit_register_rewards
    return plugin


@pytest.fixture
def sftkit_plugin():
    return _plugin()


def _env(**extra):
    env = dict(os.environ, SFTKIT_NO_PROGRESS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               OMP_NUM_THREADS="1")
    env.update(extra)
    return env


def _recipe(tmp_path: Path, model: str, *, rewards=None, strategy=None, training=None, template=None) -> Path:
    rows = [{"question": f"What is {i} plus {i}?", "answer": f"{i} plus {i} is {2 * i}. #### {2 * i}",
             "tests": f"assert add({i}, {i}) == {2 * i}"} for i in range(16)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = {
        "recipe": {"name": "rl", "seed": 3},
        "model": {"name": model},
        "data": [{"source": "jsonl", "path": "train.jsonl", "columns": {"prompt": "question", "completion": "answer"}}],
        "template": {"formatter": "chatml", **(template or {})},
        "strategy": {"name": "reasoning", "num_generations": 2, "max_completion_length": 8, **(strategy or {})},
        "reward": rewards if rewards is not None else [{"name": "echo"}, {"name": "format", "weight": 0.5, "pattern": "#"}],
        "training": {"max_steps": 3, "per_device_train_batch_size": 4, "learning_rate": 1e-2, "precision": "fp32",
                     "max_length": 64, **(training or {})},
        "output": {"report": True},
    }
    path = tmp_path / "recipe.toml"
    path.write_text(tomli_w.dumps(data))
    return path


def test_trains_to_max_steps_with_rows_and_per_step_metrics(sftkit_run, sftkit_tiny_model, tmp_path):
    SEEN.clear()
    out = sftkit_run(_recipe(tmp_path, sftkit_tiny_model, strategy={"beta": 0.05},
                             template={"system": "Add the numbers."}), smoke=False)
    assert (out.run_dir / "COMPLETE").exists()
    train = json.loads((out.run_dir / "metrics.json").read_text())["train"]
    assert train["steps"] == 3
    rl = train["reasoning"]
    assert rl["method"] == "grpo" and rl["loss_type"] == "dapo" and rl["num_generations"] == 2
    assert [r["label"] for r in rl["rewards"]] == ["echo", "format"]
    assert [r["judges"] for r in rl["rewards"]] == ["answer", "form"]  # echo reads the row, format only the text
    steps = rl["per_step"]
    assert [s["step"] for s in steps] == [1, 2, 3]
    for s in steps:
        assert set(s["rewards"]) == {"echo", "format"}
        assert s["rewards"]["echo"] > 0
        for key in ("reward", "reward_group_std", "zero_std_share", "length_mean", "clipped_share"):
            assert isinstance(s[key], (int, float)), (key, s)
        assert 0 <= s["zero_std_share"] <= 1 and 0 <= s["clipped_share"] <= 1
        assert 0 < s["length_mean"] <= 8
    assert any(s["reward_group_std"] > 0 for s in steps)  # the echo reward spreads within groups
    assert all(s["kl"] >= 0 for s in steps)  # beta > 0: KL to a frozen copy of the starting weights
    # the rewards got the rows: the reference, the conversation and the column no format reads
    rows, step, prompts = SEEN[0]
    assert step == 0 and len(rows) == 4
    assert rows[0]["tests"].startswith("assert add(")
    assert rows[0]["expected"].endswith(f"#### {2 * int(rows[0]['tests'].split('(')[1].split(',')[0])}")
    assert prompts[0][-1]["role"] == "user" and prompts[0][-1]["content"] in rows[0]["messages"][0]["content"]
    assert prompts[0][0] == {"role": "system", "content": "Add the numbers."}  # [template] system, as evaluation
    assert isinstance(rows[0]["truncated"], bool)
    assert [s for _r, s, _p in SEEN] == [0, 1, 2]
    report = (out.run_dir / "report.md").read_text()
    assert "![reward curves](loss.png)" in report and (out.run_dir / "loss.png").exists()
    assert "| echo | answer |" in report and "groups without spread" in report


def test_rloo_with_lora_and_a_reference(sftkit_run, sftkit_tiny_model, tmp_path):
    import tomllib

    recipe = _recipe(tmp_path, sftkit_tiny_model, strategy={"method": "rloo", "beta": 0.05},
                     training={"max_steps": 2})
    data = tomllib.loads(recipe.read_text())
    recipe.write_text(tomli_w.dumps({**data, "adapter": {"r": 4}}))
    out = sftkit_run(recipe, smoke=False)
    train = json.loads((out.run_dir / "metrics.json").read_text())["train"]
    assert train["steps"] == 2 and train["saved"] == "adapter"
    rl = train["reasoning"]
    assert rl["method"] == "rloo" and "loss_type" not in rl
    assert [s["step"] for s in rl["per_step"]] == [1, 2] and all("kl" in s for s in rl["per_step"])


def test_a_reward_that_raises_stops_with_one_line(sftkit_run, sftkit_tiny_model, tmp_path):
    from sftkit.rewards import RewardError

    recipe = _recipe(tmp_path, sftkit_tiny_model, rewards=[{"name": "echo", "fail_at": 1}])
    with pytest.raises(RewardError) as err:
        sftkit_run(recipe, smoke=False)
    assert str(err.value).startswith("reward 'echo' from plugin 'echoplug' raised at step 1: "
                                     "ValueError: scorer exploded"), str(err.value)
    assert "\n" not in str(err.value)
    assert not list(tmp_path.glob("sftkit-run-*/COMPLETE"))


def test_validate_refuses_what_cannot_train(sftkit_host, sftkit_tiny_model, tmp_path):
    from sftkit.validate import validate_file

    def problems(**kw) -> list[str]:
        return [p.format() for p in validate_file(_recipe(tmp_path, sftkit_tiny_model, **kw), sftkit_host)]

    assert problems() == []
    found = problems(strategy={"num_generations": 3})
    assert any("num_generations = 3 does not fit the batch of 4 completions" in p for p in found), found
    assert problems(strategy={"num_generations": 8}) == []  # a group across 2 processes of 4
    found = problems(rewards=[])
    assert any("strategy 'reasoning' trains on rewards, but the recipe has no [[reward]] table" in p for p in found), found
    found = problems(rewards=[{"name": "numeric_anser"}])
    assert any("numeric_answer" in p for p in found), found  # did you mean
    found = problems(strategy={"method": "rloo", "loss_type": "dr_grpo"})
    assert any("loss_type is a GRPO option" in p for p in found), found
    found = problems(strategy={"epsilon": 0.3, "epsilon_high": 0.2})
    assert any("epsilon_high = 0.2 is below epsilon = 0.3" in p for p in found), found
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        found = problems(strategy={"use_vllm": True})
        assert any("use_vllm = true needs vLLM, which is not installed" in p for p in found), found


def test_preview_shows_the_generation_prompt_and_what_rewards_compare(sftkit_host, sftkit_tiny_model, tmp_path):
    from sftkit.commands.preview import build_preview, render_text

    recipe = _recipe(tmp_path, sftkit_tiny_model, template={"system": "Add the numbers."})
    result = build_preview(recipe, host=sftkit_host, n=2)
    tok = result["tokenizer"]
    ex = result["examples"][0]
    text = tok.decode(ex["input_ids"])
    assert text.endswith("<|im_start|>assistant\n") and "plus" in text  # the generation prompt, no answer
    assert text.startswith("<|im_start|>system\nAdd the numbers.<|im_end|>")  # the template's system prompt
    assert "####" not in text
    assert all(x == -100 for x in ex["labels"])  # nothing of the prompt is trained
    assert ex["rewards"]["echo"].startswith("tests: assert add(")
    assert ex["rewards"]["format"] == "the completion alone (pattern = '#')"
    shown = render_text(result, color=False)
    assert "the rewards compare it against" in shown and "echo: tests: assert add(" in shown


def test_only_row_fields_strategies_keep_other_columns(sftkit_host, sftkit_tiny_model, tmp_path):
    from sftkit.data.loader import load_data
    from sftkit.recipe import load_recipe
    from sftkit.records import row_fields

    recipe = load_recipe(_recipe(tmp_path, sftkit_tiny_model), host=sftkit_host)
    kept = load_data(recipe.config, recipe.base_dir, host=sftkit_host, fields=True)
    row = row_fields(kept.train[0])
    assert row["tests"].startswith("assert add(") and "question" not in row and "answer" not in row
    plain = load_data(recipe.config, recipe.base_dir, host=sftkit_host)
    assert "fields" not in plain.train.column_names
    # an evaluator reading the eval split sees them too (e.g. code_exec's tests on held-out rows)
    from sftkit.evaluation.base import split_row_item

    item = split_row_item(kept.train[0])
    assert item["tests"] == row["tests"] and item["expected"] == row["messages"][-1]["content"]
    assert item["messages"] == row["messages"][:-1] and "fields" not in item


def _weights(run_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(run_dir / "model" / "model.safetensors"))


@pytest.fixture(scope="module")
def straight(sftkit_tiny_model, tmp_path_factory):
    """(recipe, run directory) of an uninterrupted one-process run with a length reward (it spreads
    within groups on the random model), 3 steps of 4 completions, a checkpoint every step."""
    from sftkit.run import run

    base = tmp_path_factory.mktemp("straight")
    recipe = _recipe(base, sftkit_tiny_model, rewards=[{"name": "length", "budget": 12}],
                     training={"save_steps": 1, "logging_steps": 1, "learning_rate": 1e-3})
    run_dir = run(recipe, output=base / "straight").run_dir
    return recipe, run_dir


def _same_weights(a_dir: Path, b_dir: Path, base_model: str) -> None:
    import torch
    from safetensors.torch import load_file

    a, b = _weights(a_dir), _weights(b_dir)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-5), (name, (a[name] - b[name]).abs().max().item(), (a[name] - b[name]).abs().gt(1e-5).sum().item(), a[name].numel())
    start = load_file(str(Path(base_model) / "model.safetensors"))
    assert any(not torch.equal(a[n], start[n]) for n in start if n in a)  # it trained


def test_killed_run_resumes_to_max_steps_and_the_same_weights(straight, sftkit_tiny_model, tmp_path):
    recipe, reference = straight
    killed = tmp_path / "killed"
    proc = subprocess.Popen([*SFTKIT, "run", str(recipe), "--output", str(killed)], cwd=tmp_path,
                            env=_env(SFTKIT_STEP_SLEEP="1"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    marker = killed / "checkpoints" / "checkpoint-1" / "trainer_state.json"
    deadline = time.time() + 120
    while not marker.exists():
        assert proc.poll() is None, f"run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
        assert time.time() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "COMPLETE").exists()
    from sftkit.run import run

    said: list = []
    run(recipe, output=killed, resume=True, console=said.append)
    assert any(line.startswith("resuming from") and line.endswith("checkpoint-1") for line in said), said
    metrics = json.loads((killed / "metrics.json").read_text())
    assert metrics["train"]["steps"] == 3
    assert [s["step"] for s in metrics["train"]["reasoning"]["per_step"]] == [1, 2, 3]
    _same_weights(killed, reference, sftkit_tiny_model)


def test_two_process_ddp_matches_one_process(straight, sftkit_tiny_model, tmp_path):
    """Per-completion seeded sampling: 2 processes of 2 completions sample, score and train exactly
    what one process of 4 does."""
    recipe, one = straight
    two = tmp_path / "two"
    res = subprocess.run([*SFTKIT, "run", str(recipe), "--nproc", "2", "--output", str(two),
                          "--set", "training.per_device_train_batch_size=2"], cwd=tmp_path,
                         env=_env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    m2 = json.loads((two / "metrics.json").read_text())
    m1 = json.loads((one / "metrics.json").read_text())
    assert m2["distributed"]["global"] == m1["distributed"]["global"] == 4
    assert m2["distributed"]["world_size"] == 2
    s2, s1 = m2["train"]["reasoning"]["per_step"], m1["train"]["reasoning"]["per_step"]
    assert len(s2) == len(s1) == 3
    assert any(s["reward_group_std"] > 0 for s in s1)  # a learning signal to train on
    for a, b in zip(s2, s1):
        for key in ("reward", "length_mean", "reward_group_std", "zero_std_share"):
            assert abs(a[key] - b[key]) < 1e-6, (key, a, b)
    _same_weights(two, one, sftkit_tiny_model)


def test_a_prompt_computed_once_per_group_trains_what_whole_rows_train(straight, sftkit_tiny_model, tmp_path,
                                                                        monkeypatch):
    """Sampling and scoring with each group's prompt computed once (the default) sample the same
    completions and reach the same weights as computing every row whole, as TRL does."""
    from sftkit.run import run
    from sftkit.strategies import reasoning

    recipe, shared = straight
    monkeypatch.setattr(reasoning, "SHARE_PROMPTS", False)
    whole = run(recipe, output=tmp_path / "whole").run_dir
    s1 = json.loads((shared / "metrics.json").read_text())["train"]["reasoning"]["per_step"]
    s0 = json.loads((whole / "metrics.json").read_text())["train"]["reasoning"]["per_step"]
    for a, b in zip(s0, s1):
        for key in ("reward", "length_mean", "reward_group_std"):
            assert abs(a[key] - b[key]) < 1e-6, (key, a, b)
    _same_weights(whole, shared, sftkit_tiny_model)


# --------------------------------------------------------------------------- health of an RL run (synthetic logs)

def _rl_log(steps=20, *, zero=0.2, clipped=0.1, length=40.0, form=(0.5, 0.5), answer=(0.2, 0.5)):
    log = []
    for s in range(1, steps + 1):
        t = (s - 1) / (steps - 1)
        log.append({"step": s, "loss": 0.0, "grad_norm": 0.5, "reward": 0.5, "frac_reward_zero_std": zero,
                    "completions/clipped_ratio": clipped, "completions/mean_length": length,
                    "rewards/fmt/mean": form[0] + t * (form[1] - form[0]),
                    "rewards/numeric/mean": answer[0] + t * (answer[1] - answer[0])})
    return log


RL_METRICS = {"reasoning": {"rewards": [{"label": "fmt", "judges": "form"}, {"label": "numeric", "judges": "answer"}]}}


def _rl_codes(log, eval_rows=None):
    from sftkit.reporting.health import analyze

    return {f["code"] for f in analyze(log, {"train_rows": 5000}, [], eval_rows=eval_rows, train_metrics=RL_METRICS)}


def test_a_healthy_rl_log_has_no_findings_and_no_loss_findings():
    # GRPO's loss sits at 0: neither "did not move" nor "memorisation" applies to it
    assert _rl_codes(_rl_log()) == set()


def test_rl_findings():
    assert "no_learning_signal" in _rl_codes(_rl_log(zero=0.9))
    assert "length_collapse" in _rl_codes(_rl_log(clipped=0.95))
    assert "empty_collapse" in _rl_codes(_rl_log(length=0.5))
    # form rises, the answer reward stays flat: hacking suspected
    assert "reward_hacking" in _rl_codes(_rl_log(form=(0.1, 0.9), answer=(0.3, 0.3)))
    # form and answers rise together: learning
    assert "reward_hacking" not in _rl_codes(_rl_log(form=(0.1, 0.9), answer=(0.1, 0.5)))
    # the held-out correctness verdict decides when there is one
    flat = [{"label": "gsm", "verdict": "no significant change", "checks_format": False}]
    better = [{"label": "gsm", "verdict": "better", "checks_format": False}]
    assert "reward_hacking" in _rl_codes(_rl_log(form=(0.1, 0.9)), flat)
    assert "reward_hacking" not in _rl_codes(_rl_log(form=(0.1, 0.9), answer=(0.3, 0.3)), better)


def test_reward_plot(tmp_path):
    from sftkit.reporting.plots import loss_plot

    png = loss_plot(_rl_log(), tmp_path / "loss.png")
    assert png is not None and png.stat().st_size > 1000


def test_seeded_sampler_samples_the_distribution_and_repeats_per_seed():
    import torch

    from sftkit.strategies.reasoning import SeededSampler

    scores = torch.log(torch.tensor([[0.2, 0.5, 0.3, 0.0], [0.0, 0.0, 1.0, 0.0]]))
    sampler = SeededSampler([7, 8])
    picks = [sampler(None, scores).argmax(dim=-1).tolist() for _ in range(4000)]
    first = torch.bincount(torch.tensor([p[0] for p in picks]), minlength=4).float() / len(picks)
    assert torch.allclose(first, torch.tensor([0.2, 0.5, 0.3, 0.0]), atol=0.03), first
    assert {p[1] for p in picks} == {2}  # a certain token is always taken, an impossible one never
    again = SeededSampler([7, 8])
    assert [again(None, scores).argmax(dim=-1).tolist() for _ in range(50)] == picks[:50]
    # a row's draws depend on its own seed only, not on the rows beside it
    alone = SeededSampler([7])
    assert [alone(None, scores[:1]).argmax(dim=-1).item() for _ in range(50)] == [p[0] for p in picks[:50]]


def test_a_reward_plugin_from_the_scaffold_trains_a_reasoning_run(sftkit_tiny_model, tmp_path, monkeypatch):
    """``sftkit plugin new --with reward``: its reward, unchanged, trains a reasoning run."""
    import importlib

    import sftkit.plugins
    from sftkit.run import run
    from sftkit.scaffold import plugin_files
    from sftkit.testing import make_plugin_host

    files = plugin_files("mathy", kinds=("reward",))
    root = tmp_path / "pkg"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    package = next(p.parent for p in root.rglob("rewards.py"))
    monkeypatch.syspath_prepend(str(package.parent))
    plugin = importlib.import_module(f"{package.name}.plugin")
    host = make_plugin_host(plugin)
    monkeypatch.setattr(sftkit.plugins, "_HOST", host)
    recipe = _recipe(tmp_path, sftkit_tiny_model, rewards=[{"name": "mathy_answer_word", "answer_column": "tests"}],
                     training={"max_steps": 2})
    out = run(recipe, output=tmp_path / "run", host=host)
    train = json.loads((out.run_dir / "metrics.json").read_text())["train"]
    assert (out.run_dir / "COMPLETE").exists() and train["steps"] == 2
    (reward,) = train["reasoning"]["rewards"]
    assert reward["plugin"] == f"{package.name}.plugin"  # a plugin's reward, named by its plugin
    assert [s["step"] for s in train["reasoning"]["per_step"]] == [1, 2]
    assert all(0 <= s["rewards"]["mathy_answer_word"] <= 1 for s in train["reasoning"]["per_step"])
