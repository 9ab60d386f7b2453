"""docs/plugins.md: every hook documented, the generated reference and the snippets up to date,
and the console example matching what sftkit prints."""

import importlib.util
import os
import re
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "plugins.md"


def _load_generator():
    spec = importlib.util.spec_from_file_location("gen_hook_reference", REPO / "docs" / "gen_hook_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen = _load_generator()


def test_every_hook_has_a_docstring_and_a_reference_entry():
    from sftkit import hookspecs

    assert gen.undocumented_hooks() == []
    specs = [name for name, fn in vars(hookspecs).items() if name.startswith("sftkit_") and hasattr(fn, "sftkit_spec")]
    assert len(specs) == len(gen.hook_specs()) >= 6
    reference = DOC.read_text().split(gen.REF_START, 1)[1].split(gen.REF_END, 1)[0]
    for name in specs:
        assert re.search(rf"^### `{name}\(", reference, re.M), f"{name} missing from the hook reference"


def test_hook_specs_are_typed_with_real_types_at_no_import_cost():
    """Every parameter and return of a hook spec names its real type (behind ``TYPE_CHECKING``, as
    pytest's hookspec.py does), the types resolve, and the generated reference shows them."""
    import typing

    import click
    from transformers import TrainerCallback

    from sftkit.api import RunContext

    names = {"RunContext": RunContext, "TrainerCallback": TrainerCallback, "click": click}
    reference = DOC.read_text().split(gen.REF_START, 1)[1].split(gen.REF_END, 1)[0]
    for fn in gen.hook_specs():
        hints = typing.get_type_hints(fn, localns=names)  # raises when a named type does not exist
        assert set(hints) == {*inspect_params(fn), "return"}, fn.__name__
        assert typing.Any not in hints.values(), f"{fn.__name__} has an untyped parameter"
        assert f"### `{gen.typed_signature(fn)}`" in reference
    assert hints_of("sftkit_run_start")["run"] is RunContext
    assert "### `sftkit_run_end(run: RunContext, metrics: dict) -> None`" in reference
    code = ("import sys, sftkit.hookspecs\n"
            "heavy = [m for m in ('torch', 'transformers', 'sftkit.api', 'click') if m in sys.modules]\n"
            "assert not heavy, heavy")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def inspect_params(fn) -> list:
    import inspect

    return list(inspect.signature(fn).parameters)


def hints_of(name: str) -> dict:
    import typing

    from sftkit import hookspecs
    from sftkit.api import RunContext

    return typing.get_type_hints(getattr(hookspecs, name), localns={"RunContext": RunContext})


def test_reference_and_snippets_are_up_to_date():
    current = DOC.read_text(encoding="utf-8")
    assert gen.update(current) == current, "docs/plugins.md is out of date: run python docs/gen_hook_reference.py"


def test_snippets_come_from_the_tested_example_plugin():
    refs = gen.snippet_refs(DOC.read_text())
    assert len(refs) >= 8
    for ref in refs:
        path = REPO / ref.partition("#")[0]
        assert path.is_file(), ref
        assert gen.snippet_text(ref).strip(), ref
    assert any(r.startswith("plugins/sftkit-medical/tests/") for r in refs)  # tests shown are tests run
    assert any(r.startswith("plugins/sftkit-medical/src/sftkit_medical/plugin.py") for r in refs)


def test_an_undocumented_hook_or_a_changed_snippet_is_caught(monkeypatch, tmp_path):
    import pluggy

    from sftkit import hookspecs

    @pluggy.HookspecMarker("sftkit")
    def sftkit_new_hook(run):
        pass

    monkeypatch.setattr(hookspecs, "sftkit_new_hook", sftkit_new_hook, raising=False)
    assert gen.undocumented_hooks() == ["sftkit_new_hook"]
    current = DOC.read_text()
    assert gen.update(current) != current  # the reference would change: the doc is stale
    assert gen.main(["--check"]) == 1
    monkeypatch.delattr(hookspecs, "sftkit_new_hook")
    edited = current.replace("def sftkit_register_recipes(register):", "def sftkit_register_recipes(reg):", 1)
    assert edited != current and gen.update(edited) == current  # snippets are regenerated from the files
    with pytest.raises(ValueError, match="no '# \\[docs:nope\\]'"):
        gen.snippet_text("plugins/sftkit-medical/src/sftkit_medical/plugin.py#nope")


def test_check_mode_of_the_script():
    proc = subprocess.run([sys.executable, str(REPO / "docs" / "gen_hook_reference.py"), "--check"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def _console_block(command: str) -> list[str]:
    text = DOC.read_text()
    block = text.split("```console\n", 1)[1].split("```", 1)[0]
    out, grab = [], False
    for line in block.splitlines():
        if line.startswith("$ "):
            grab = line == f"$ {command}"
            continue
        if grab:
            out.append(line)
    return out


@pytest.mark.skipif("medical" not in {ep.name for ep in entry_points(group="sftkit")},
                    reason="sftkit-medical not installed")
@pytest.mark.parametrize("command", ["sftkit plugins", "sftkit recipes list"])
def test_console_example_matches_real_output(command):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SFTKIT_")}
    env["SFTKIT_LOAD_PLUGINS"] = "medical"
    proc = subprocess.run([sys.executable, "-m", "sftkit.cli", *command.split()[1:]], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    shown = _console_block(command)
    assert shown
    real = [re.sub(r"\s+", " ", line).strip() for line in proc.stdout.splitlines()]
    for line in shown:
        assert re.sub(r"\s+", " ", line).strip() in real, line


def test_the_folder_shown_is_the_example_plugins_folder():
    """The ```text tree of section 1 names files of plugins/sftkit-medical that exist."""
    block = DOC.read_text().split("```text\n", 1)[1].split("```", 1)[0].splitlines()
    root = REPO / "plugins" / block[0].rstrip("/")
    stack: list[str] = []
    shown = []
    for line in block[1:]:
        entry = re.sub(r"\s+#.*$", "", line)
        name = entry.lstrip("│├└─ \u00a0")
        depth = (len(entry) - len(name)) // 4 - 1
        stack = stack[:depth] + [name.rstrip("/")]
        shown.append("/".join(stack))
    assert len(shown) >= 10
    for rel in shown:
        assert list(root.glob(rel)), f"docs/plugins.md shows {rel}, which plugins/sftkit-medical does not have"


def test_where_to_make_a_change_names_files_that_exist():
    """docs/design.md's "Where to make a change" table: every path it names is there (a move or a
    rename that forgets the table fails here), and it names the changes a newcomer makes most."""
    text = (REPO / "docs" / "design.md").read_text(encoding="utf-8")
    section = text.split("## Where to make a change", 1)[1].split("\n## ", 1)[0]
    paths = re.findall(r"`((?:sftkit|tests|docs)/[\w/.-]+)`", section)
    assert len(paths) >= 15, paths
    missing = [p for p in paths if not (REPO / p).exists()]
    assert not missing, missing
    for change in ("evaluator", "data format", "checkpoint selection", "distributed backend", "tracker", "strategy"):
        assert change in section, change
