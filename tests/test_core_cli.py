"""schema, init, resolve and the promise that light commands never import heavy libraries."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
import demo_plugin  # noqa: E402

from sftkit import plugins  # noqa: E402
from sftkit.cli import cli, load_plugin_commands  # noqa: E402
from sftkit.tomlpos import key_positions  # noqa: E402

HEAVY = ("torch", "transformers", "trl", "datasets", "peft", "accelerate", "numpy", "pyarrow")


def test_schema_is_valid_json_schema_and_reflects_plugins():
    from jsonschema import Draft7Validator

    plugins._HOST = plugins.make_host(builtins=False, entry_points=False, extra=(("demo", demo_plugin),))
    result = CliRunner().invoke(cli, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    Draft7Validator.check_schema(schema)
    data_items = schema["properties"]["data"]["items"]
    assert "demo_file" in data_items["properties"]["source"]["enum"]
    branch = next(b for b in data_items["allOf"] if b["if"]["properties"]["source"]["const"] == "demo_file")
    assert "encoding" in branch["then"]["properties"] and branch["then"]["additionalProperties"] is False
    # the composed schema accepts a good recipe and rejects an unknown key inside a component table
    good = {"recipe": {"name": "x"}, "model": {"name": "m"}, "data": [{"source": "demo_file", "path": "a"}],
            "strategy": {"name": "demo_sft"}}
    assert not list(Draft7Validator(schema).iter_errors(good))
    bad = {**good, "data": [{"source": "demo_file", "pathh": "a"}]}
    assert list(Draft7Validator(schema).iter_errors(bad))


def test_key_positions_handle_arrays_multiline_and_inline_tables():
    text = ('[recipe]\nname = "a"\ndesc = """\n[fake]\nk = 1\n"""\n[[data]]\nsource = "x"\n'
            'columns = {prompt = "q"}\n[[data]]\nsource = "y"\nlist = [\n  1,\n]\n[training]\nmax_steps = 2\n')
    pos = key_positions(text)
    assert pos[("recipe", "desc")] == (3, 1)
    assert ("fake",) not in pos
    assert pos[("data", 0, "columns", "prompt")] == (9, 12)
    assert pos[("data", 1, "source")] == (11, 1)
    assert pos[("training", "max_steps")] == (16, 1)


def test_init_writes_a_commented_recipe_that_validates_for_every_strategy(tmp_path):
    load_plugin_commands()
    host = plugins.get_host()
    strategies = host.registry.names("strategies")
    assert {"instruction", "tone", "classification", "domain"} <= set(strategies)
    runner = CliRunner()
    for name in strategies:
        out = tmp_path / f"{name}.toml"
        result = runner.invoke(cli, ["init", "--strategy", name, "-o", str(out)])
        assert result.exit_code == 0, result.output
        text = out.read_text()
        assert text.count("\n# ") >= 5, "the starting recipe explains itself"
        result = runner.invoke(cli, ["validate", str(out)])
        assert result.exit_code == 0, f"{name}: {result.output}"
    result = runner.invoke(cli, ["init", "--strategy", strategies[0], "-o", str(tmp_path / f"{strategies[0]}.toml")])
    assert result.exit_code == 1 and "already exists" in result.output
    result = runner.invoke(cli, ["init", "--strategy", "instructoin"])
    assert result.exit_code == 1 and "unknown strategy" in result.output


@pytest.mark.parametrize("command", [["validate", "RECIPES"], ["schema"], ["plugins", "--all"],
                                     ["init", "--strategy", "instruction"], ["--help"]])
def test_light_commands_import_no_heavy_library(command):
    recipes = Path(__file__).resolve().parents[1] / "sftkit" / "recipes"
    args = [str(recipes) if a == "RECIPES" else a for a in command]
    code = (
        "import sys\n"
        "from sftkit.cli import main\n"
        "try:\n"
        f"    main({args!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        f"heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
        "print('HEAVY=' + ','.join(heavy), file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("HEAVY=")]
    assert line, proc.stderr
    assert line[0] == "HEAVY=", f"{command} imported {line[0]}"


def test_the_host_reserves_exactly_the_commands_the_cli_defines_itself():
    from sftkit.cli import cli
    from sftkit.plugins import CORE_COMMANDS

    own = {name for name, cmd in cli.commands.items() if getattr(cmd.callback, "__module__", "") == "sftkit.cli"}
    assert own == CORE_COMMANDS
