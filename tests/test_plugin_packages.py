"""The example plugin packages as installed distributions, and isolation from broken plugins.

The example plugins (plugins/sftkit-medical, plugins/sftkit-code) are expected pip-installed
(``pip install -e plugins/sftkit-medical -e plugins/sftkit-code``). The broken plugin
(tests/plugins/sftkit-broken) is never installed: a temporary dist-info directory plus its source
folder on PYTHONPATH make it look installed to the subprocesses that need it.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from importlib.metadata import entry_points
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BROKEN_SRC = REPO / "tests" / "plugins" / "sftkit-broken" / "src"
MEDICAL_RECIPE = REPO / "plugins" / "sftkit-medical" / "src" / "sftkit_medical" / "recipes" / "medical-domain.toml"

pytestmark = pytest.mark.skipif(
    not {"medical", "code"} <= {ep.name for ep in entry_points(group="sftkit")},
    reason="example plugins not installed: pip install -e plugins/sftkit-medical -e plugins/sftkit-code")


@pytest.fixture(scope="module")
def broken_site(tmp_path_factory) -> str:
    """A PYTHONPATH on which sftkit-broken 0.3.0 looks installed (dist-info + source folder)."""
    site = tmp_path_factory.mktemp("broken-site")
    info = site / "sftkit_broken-0.3.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sftkit-broken\nVersion: 0.3.0\n")
    (info / "entry_points.txt").write_text(
        "[sftkit]\nbroken_import = sftkit_broken.bad_import\nraising = sftkit_broken.raising\n")
    return os.pathsep.join([str(site), str(BROKEN_SRC)])


def sftkit(*args, env=None, pythonpath=None, cwd=None):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SFTKIT_")}
    full_env.update(env or {})
    if pythonpath:
        full_env["PYTHONPATH"] = pythonpath
    proc = subprocess.run([sys.executable, "-m", "sftkit.cli", *map(str, args)], capture_output=True, text=True,
                          env=full_env, cwd=cwd or REPO, timeout=180)
    return proc.returncode, proc.stdout, proc.stderr


def recipe(tmp_path, body: str, name="r.toml") -> Path:
    path = tmp_path / name
    path.write_text('[recipe]\nname = "r"\n' + body + '\n[model]\nname = "org/model"\n\n'
                    '[[data]]\nsource = "mmlu_medical"\n\n[strategy]\nname = "domain"\n')
    return path


def test_example_plugins_are_listed_with_components():
    code, out, err = sftkit("plugins", "--format", "json")
    assert code == 0, err
    plugins = {p["name"]: p for p in json.loads(out)["plugins"]}
    assert plugins["medical"]["dist"] == "sftkit-medical" and plugins["medical"]["version"] == "0.1.0"
    assert plugins["medical"]["components"] == {"sources": ["medical_text", "mmlu_medical"],
                                                "evaluators": ["medical_mmlu"], "recipes": ["medical-domain"]}
    assert plugins["code"]["components"] == {"sources": ["code_instructions", "humaneval_solutions"],
                                             "evaluators": ["humaneval"], "recipes": ["code-instruct"]}
    assert not plugins["medical"]["error"] and not plugins["code"]["error"]
    code, out, _ = sftkit("recipes", "list")
    assert code == 0
    assert any(line.split()[:2] == ["medical-domain", "sftkit-medical"] for line in out.splitlines())
    assert any(line.split()[:2] == ["code-instruct", "sftkit-code"] for line in out.splitlines())


@pytest.mark.parametrize("plugin, files", [
    ("sftkit-medical", ["sftkit_medical/plugin.py", "sftkit_medical/data/asthma.md",
                        "sftkit_medical/recipes/medical-domain.toml", "sftkit_medical/recipes/data/glossary.md"]),
    ("sftkit-code", ["sftkit_code/plugin.py", "sftkit_code/recipes/code-instruct.toml",
                     "sftkit_code/recipes/data/code_instructions.jsonl"]),
])
def test_wheel_ships_code_data_recipes_and_entry_point(plugin, files, tmp_path):
    source = tmp_path / plugin  # build from a copy: no build/ or egg-info left in the checkout
    shutil.copytree(REPO / "plugins" / plugin, source,
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".pytest_cache"))
    # offline when setuptools is here; otherwise an isolated build fetches it (Python >= 3.12 venvs lack it)
    isolation = ["--no-build-isolation"] if importlib.util.find_spec("setuptools") else []
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *isolation, "-w",
                    str(tmp_path / "dist"), str(source)], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert set(files) <= set(names), sorted(names)
    eps = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "[sftkit]" in eps
    assert not any("tests/" in n for n in names)


def test_broken_plugins_are_named_and_the_rest_keeps_working(broken_site):
    code, out, err = sftkit("plugins", pythonpath=broken_site)
    assert code == 1  # reported, not hidden
    assert "error: plugin 'raising' failed to load: raised in sftkit_register_evaluators" in err
    assert "broken_import (sftkit-broken 0.3.0)" in out
    assert "FAILED: ImportError: sftkit_broken needs libbroken, which is not installed" in out
    assert "FAILED: raised in sftkit_register_evaluators: RuntimeError: evaluator table corrupted" in out
    assert "medical (sftkit-medical 0.1.0)" in out  # the others still load
    code, out, _ = sftkit("recipes", "list", pythonpath=broken_site)
    assert code == 0 and "medical-domain" in out and "code-instruct" in out


def test_a_plugin_failing_in_one_hook_is_removed_entirely(broken_site, monkeypatch, tmp_path):
    """'raising' registered the source broken_rows before its evaluator hook raised: nothing of it stays."""
    from sftkit.errors import PluginError
    from sftkit.plugins import make_host

    for path in reversed(broken_site.split(os.pathsep)):
        monkeypatch.syspath_prepend(path)
    host = make_host()
    assert host.registry.by_origin("raising") == [] and not host.pm.has_plugin("raising")
    with pytest.raises(PluginError, match=r"unknown source 'broken_rows'"):
        host.registry.get("sources", "broken_rows")
    assert ("plugin 'raising' failed to load: raised in sftkit_register_evaluators: RuntimeError: evaluator table "
            "corrupted") in host.failure_note()



def test_requires_checks_installed_plugin_versions(tmp_path, broken_site):
    ok = recipe(tmp_path, 'requires = ["sftkit-medical>=0.1", "sftkit-code"]', "ok.toml")
    assert sftkit("validate", ok)[0] == 0
    too_new = recipe(tmp_path, 'requires = ["sftkit-medical>=99"]', "new.toml")
    code, out, _ = sftkit("validate", too_new)
    assert code == 1 and "sftkit-medical>=99" in out and "0.1.0" in out
    missing = recipe(tmp_path, 'requires = ["sftkit-radiology>=1"]', "missing.toml")
    code, out, _ = sftkit("validate", missing)
    assert code == 1 and "'sftkit-radiology>=1', which is not installed" in out
    broken = recipe(tmp_path, 'requires = ["sftkit-broken>=0.1"]', "broken.toml")
    code, out, _ = sftkit("validate", broken, pythonpath=broken_site)
    assert code == 1 and "failed to load" in out


def test_disable_plugins_by_entry_point_or_distribution_name(tmp_path):
    for value in ("medical", "sftkit-medical", "code,medical"):
        code, out, _ = sftkit("recipes", "list", env={"SFTKIT_DISABLE_PLUGINS": value})
        assert code == 0 and "medical-domain" not in out
    code, out, _ = sftkit("validate", MEDICAL_RECIPE, env={"SFTKIT_DISABLE_PLUGINS": "medical"})
    assert code == 1 and "unknown source 'medical_text'" in out


def test_load_plugins_allow_list(broken_site):
    code, out, _ = sftkit("plugins", env={"SFTKIT_LOAD_PLUGINS": "code"}, pythonpath=broken_site)
    assert code == 0
    assert "code (sftkit-code 0.1.0)" in out and "medical" not in out and "FAILED" not in out
    code, out, _ = sftkit("recipes", "list", env={"SFTKIT_LOAD_PLUGINS": "sftkit-medical"})
    assert "medical-domain" in out and "code-instruct" not in out
    code, out, _ = sftkit("validate", MEDICAL_RECIPE, env={"SFTKIT_LOAD_PLUGINS": "medical"})
    assert code == 0, out


def test_unknown_component_mentions_the_plugin_that_failed(tmp_path, broken_site):
    path = tmp_path / "uses_broken.toml"
    path.write_text('[recipe]\nname = "r"\n[model]\nname = "org/model"\n[[data]]\nsource = "mmlu_medical"\n'
                    '[strategy]\nname = "domain"\n[[eval]]\nname = "broken_eval"\n')
    code, out, _ = sftkit("validate", path, pythonpath=broken_site)
    assert code == 1 and "unknown evaluator 'broken_eval'" in out
    assert "plugin 'raising'" in out or "plugin 'broken_import'" in out
