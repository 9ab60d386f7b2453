"""The light core in a fresh virtual environment, installed by the GitHub Action's own shell steps
(action.yml, run as a runner would: inputs substituted, $GITHUB_PATH honoured): no torch, the
shipped recipes validate as annotations, the pre-commit hook's entry works, commands that need the
training stack say so in one line, and the report is written without its plot.

Skipped only when pip cannot install sftkit's build and core dependencies without the network."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
yaml = pytest.importorskip("yaml")


def _pip_offline_ok(tmp: Path) -> bool:
    """Whether pip can fetch what the light core's install needs from its cache / local indexes alone."""
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(tmp), "setuptools>=77", "click",
           "pluggy", "jsonschema", "tomli-w", "packaging"]
    env = {**os.environ, "PIP_NO_INPUT": "1", "PIP_DEFAULT_TIMEOUT": "5", "PIP_RETRIES": "0"}
    try:
        return subprocess.run(cmd, capture_output=True, env=env, timeout=120).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _expand(text: str, inputs: dict, action: dict) -> str:
    def value(m: re.Match) -> str:
        expr = m.group(1).strip()
        if expr.startswith("inputs."):
            name = expr.split(".", 1)[1]
            return str(inputs.get(name, action["inputs"][name].get("default", "")))
        if expr == "github.action_path":
            return str(ROOT)
        raise AssertionError(f"the test does not know the expression {expr!r}")

    return re.sub(r"\$\{\{(.*?)\}\}", value, text)


def run_action_steps(tmp: Path, inputs: dict, only: str | None = None) -> list[subprocess.CompletedProcess]:
    """Run action.yml's shell steps (``uses:`` steps are the runner's: Python is already here)."""
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    assert action["runs"]["using"] == "composite"
    github_path = tmp / "github_path"
    github_path.touch()
    results = []
    for step in action["runs"]["steps"]:
        if "run" not in step or (only and step.get("name") != only):
            continue
        assert step["shell"] == "bash"
        extra = [line for line in github_path.read_text().splitlines() if line]
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the installed sftkit, not the checkout
        env.update({k: _expand(str(v), inputs, action) for k, v in (step.get("env") or {}).items()})
        env.update(RUNNER_TEMP=str(tmp), GITHUB_PATH=str(github_path),
                   PATH=os.pathsep.join([*reversed(extra), str(Path(sys.executable).parent), env["PATH"]]))
        proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", _expand(step["run"], inputs, action)],
                              capture_output=True, text=True, env=env, cwd=inputs.get("_cwd", ROOT), timeout=600)
        results.append(proc)
        if proc.returncode:
            break
    return results


@pytest.fixture(scope="module")
def light(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("action")
    if not _pip_offline_ok(tmp_path_factory.mktemp("pip-probe")):
        pytest.skip("pip cannot install sftkit's light core without the network here")
    results = run_action_steps(tmp, {"plugins": str(ROOT / "plugins" / "sftkit-medical")})  # sources, a recipe
    install, validate = results
    assert install.returncode == 0, install.stderr[-3000:]
    bin_dir = Path((tmp / "github_path").read_text().split()[0])
    return {"tmp": tmp, "bin": bin_dir, "validate": validate}


def _env() -> dict:
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def test_the_action_validates_the_shipped_recipes_on_a_core_without_torch(light):
    proc = light["validate"]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "::notice file=recipes/feedback.toml,line=" in proc.stdout and "::error" not in proc.stdout
    python = light["bin"] / "python"
    found = subprocess.run([str(python), "-c", "import importlib.util as u, json; print(json.dumps("
                            "{m: u.find_spec(m) is not None for m in ('sftkit', 'torch', 'transformers', 'trl', "
                            "'datasets', 'numpy', 'matplotlib')}))"], capture_output=True, text=True, env=_env())
    assert json.loads(found.stdout) == {"sftkit": True, "torch": False, "transformers": False, "trl": False,
                                        "datasets": False, "numpy": False, "matplotlib": False}


def test_the_action_annotates_a_broken_recipe_and_fails(light, tmp_path):
    (tmp_path / "bad.toml").write_text('[recipe]\nname = "x"\n[model]\nname = "m"\n[[data]]\nsource = "jsonl"\n'
                                       'path = "missing.jsonl"\n[strategy]\nname = "instrucion"\n')
    proc, = run_action_steps(light["tmp"], {"paths": "bad.toml", "_cwd": tmp_path}, only="Validate recipes")
    assert proc.returncode == 1
    assert "::error file=bad.toml,line=7" in proc.stdout and "::error file=bad.toml,line=9" in proc.stdout


def test_a_plugin_the_action_names_is_installed_and_its_recipe_validates(light):
    sftkit = str(light["bin"] / "sftkit")
    proc = subprocess.run([sftkit, "plugins"], capture_output=True, text=True, env=_env())
    assert proc.returncode == 0 and "medical (sftkit-medical" in proc.stdout, proc.stdout + proc.stderr
    recipe = ROOT / "plugins" / "sftkit-medical" / "src" / "sftkit_medical" / "recipes" / "medical-domain.toml"
    proc = subprocess.run([sftkit, "validate", str(recipe)], capture_output=True, text=True, env=_env())
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_pre_commit_hook_entry_runs_on_the_light_core(light):
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "recipes").glob("*.toml"))
    for hook in hooks:
        assert re.search(hook["files"], files[0]) and re.search(hook["exclude"], "pyproject.toml")
        cmd = [str(light["bin"] / hook["entry"].split()[0]), *hook["entry"].split()[1:], *files]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=_env())
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "downloads the training" not in (ROOT / ".pre-commit-hooks.yaml").read_text()


def test_commands_that_train_say_what_to_install_and_report_works_without_plots(light, tmp_path):
    sftkit = str(light["bin"] / "sftkit")
    for args in (["run", "recipes/tone.toml"], ["plan", "recipes/tone.toml"]):
        proc = subprocess.run([sftkit, *args], capture_output=True, text=True, cwd=ROOT, env=_env())
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip() == (f"error: sftkit {args[0]} needs the training stack, which is not installed "
                                       f"(no {proc.stderr.split('(no ')[1].split(')')[0]}) — install it with: "
                                       'pip install "sftkit[train]"')
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.json").write_text(json.dumps({"recipe": "demo", "strategy": "instruction",
                                                      "train": {"steps": 2}, "eval": [], "gates": {"passed": True}}))
    (run_dir / "train_log.jsonl").write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.5}\n')
    proc = subprocess.run([sftkit, "report", str(run_dir)], capture_output=True, text=True, env=_env())
    assert proc.returncode == 0, proc.stderr
    assert "note: no loss plot: it needs matplotlib" in proc.stderr
    assert (run_dir / "report.html").is_file() and not (run_dir / "loss.png").exists()
