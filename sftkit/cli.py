"""The ``sftkit`` command line. Thin: parse, call, print, exit code.

Core commands live here (validate, schema, plugins, init, resolve); the rest (preview, run, eval,
report, recipes) and plugins' commands are added through ``sftkit_register_commands``.
Exit codes: 0 ok, 1 invalid input or failed run, 2 usage error, 3 a quality gate failed, 4 an evaluator failed (metrics and report are written).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import click

from . import __version__
from .errors import EXIT_INVALID, SftkitError


def fail(err: SftkitError) -> None:
    click.echo(f"error: {err}", err=True)
    sys.exit(err.exit_code)


class SftkitGroup(click.Group):
    """A click group that turns SftkitError into a one-line message and its exit code, and runs a
    plugin's command by its qualified name too (``plugin:name``, not listed in ``--help``)."""

    qualified_commands: dict = {}

    def get_command(self, ctx, cmd_name):
        found = super().get_command(ctx, cmd_name)
        if found is None and ":" in cmd_name:
            found = self.qualified_commands.get(cmd_name)
        return found

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SftkitError as err:
            fail(err)
        except ImportError as exc:  # the light core: a command that needs the training stack says so
            from .lazycli import refuse_without_stack

            refuse_without_stack(ctx.invoked_subcommand or "", exc)
            raise


@click.group(cls=SftkitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sftkit")
def cli():
    """Turn a TOML recipe into a fine-tuning run: validate, preview, run, evaluate, report."""
    from .redaction import install

    install()  # values taken from the environment never reach the terminal


# --------------------------------------------------------------------------- validate

@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "json", "github"]), default="text", show_default=True,
              help="Output: text lines, one JSON document, or GitHub workflow annotations.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe key before checking.")
def validate(paths, fmt, overrides):
    """Check recipe files (or directories of them, recursively) and report every problem at once."""
    from .plugins import get_host
    from .validate import collect_recipe_files, validate_file

    host = get_host()
    files, dir_problems = collect_recipe_files(paths)
    warned: dict = {f: [] for f in files}  # valid, but the run cannot show much (exit 0)
    results = [(f, validate_file(f, host, overrides, warned[f])) for f in files]
    if dir_problems:
        results.append((None, dir_problems))
    invalid = [r for r in results if r[1]]
    n_problems = sum(len(p) for _, p in results)
    if fmt == "json":
        doc = {
            "valid": not invalid,
            "files": [{"file": str(f) if f else None, "valid": not probs, "problems": [p.as_dict() for p in probs],
                       "warnings": [p.as_dict() for p in warned.get(f, [])]} for f, probs in results],
            "problems": n_problems,
        }
        click.echo(json.dumps(doc, indent=2))
    else:
        for f, probs in results:
            for p, level in [(p, "error") for p in probs] + [(w, _kind(w)) for w in warned.get(f, [])]:
                if fmt == "github":
                    click.echo(_github_annotation(p, f, "notice" if level == "note" else level))
                else:
                    text = (p if level == "error" else dataclasses.replace(p, message=f"{level}: {p.message}")).format()
                    click.echo(text if p.file else f"{f}: {text}" if f else text)
        n_files = len(files)
        if fmt == "text":
            if invalid:
                bad_files = sum(1 for f, probs in results if f is not None and probs)
                where = f" in {bad_files} of {n_files} recipe(s)" if n_files else ""
                click.echo(f"{n_problems} problem(s){where}", err=True)
            else:
                kinds = [_kind(w) for ws in warned.values() for w in ws]
                said = "".join(f", {kinds.count(k)} {k}(s)" for k in ("warning", "note") if k in kinds)
                click.echo(f"{n_files} recipe(s) valid{said}", err=True)
    sys.exit(EXIT_INVALID if invalid else 0)


def _kind(p) -> str:
    """What a problem that leaves a recipe valid is called: "note" (an earlier step not done yet, a
    model the training machine provides) or "warning"."""
    return "note" if p.level == "note" else "warning"


def _github_annotation(p, f, level: str = "error") -> str:
    def esc(s: str) -> str:
        return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")

    props = [f"file={p.file or f}"]
    if p.line:
        props.append(f"line={p.line}")
    if p.col:
        props.append(f"col={p.col}")
    props.append("title=sftkit validate")
    text = (f"{p.path}: " if p.path else "") + p.message + (f" ({p.hint})" if p.hint else "")
    return f"::{level} {','.join(esc(x).replace(',', '%2C').replace(':', '%3A') if i else esc(x) for i, x in enumerate(props))}::{esc(text)}"


# --------------------------------------------------------------------------- schema

@cli.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to a file instead of stdout.")
def schema(output):
    """Print the recipe JSON Schema, reflecting installed plugins (for the #:schema line of TOML editors)."""
    from .plugins import get_host
    from .schema import composed_schema

    text = json.dumps(composed_schema(get_host().registry), indent=2) + "\n"
    if output:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


# --------------------------------------------------------------------------- plugins

@cli.command()
@click.option("--all", "show_all", is_flag=True, help="Include sftkit's built-in plugins.")
@click.option("--timings", is_flag=True, help="Show how long each plugin took to load (import + registration).")
@click.option("--strict", is_flag=True, help="Also exit 1 when loading plugins takes over the budget (1 s).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def plugins(show_all, timings, strict, fmt):
    """List plugins with version, components, commands and hooks, and what failed to load (with why).

    Exits 1 when any plugin failed to load or two plugins clash on a name (with --strict, also when
    loading plugins took over the budget), 0 otherwise."""
    from .plugins import get_host, slow_plugins_message

    host = get_host()
    rows = []
    for info in host.plugins:
        if info.builtin and not show_all:
            continue
        comps = {}
        for c in host.registry.by_origin(info.name):
            comps.setdefault(c.kind, []).append(c.name)
        rows.append({"name": info.name, "dist": info.dist, "version": info.version, "builtin": info.builtin,
                     "module": info.module, "hooks": info.hooks, "components": comps, "commands": info.commands,
                     "qualified_commands": [f"{info.prefix}:{c}" for c in info.commands],
                     "disabled_commands": [c for c in info.commands if c in host.command_clashes],
                     "load_s": round(info.load_s, 4), "error": info.error})
    problems, notes = host.problems(), host.notes()
    slow = slow_plugins_message(host)
    if slow and strict:
        problems.append(slow)
    if fmt == "json":
        click.echo(json.dumps({"plugins": rows, "errors": problems, "notes": notes}, indent=2))
    else:
        if not rows:
            click.echo("no third-party plugins installed (--all shows the built-in ones)")
        for r in rows:
            title = f"{r['name']} ({r['dist'] or '?'} {r['version'] or ''})".replace(" )", ")")
            title += "  [builtin]" if r["builtin"] else ""
            click.echo(title + (f"  loaded in {r['load_s']:.3f}s" if timings else ""))
            if r["error"]:
                click.echo(f"  FAILED: {r['error']}")
                continue
            for kind, names in sorted(r["components"].items()):
                click.echo(f"  {kind}: {', '.join(sorted(names))}")
            if r["commands"]:
                shown = r["commands"] if r["builtin"] else [  # sftkit's own are reserved: never clash
                    f"{c} ({q}{'; the bare name clashes' if c in r['disabled_commands'] else ''})"
                    for c, q in zip(r["commands"], r["qualified_commands"])]
                click.echo(f"  commands: {', '.join(shown)}")
            click.echo(f"  hooks: {', '.join(r['hooks']) or '-'}")
        if timings:
            total = sum(i.load_s for i in host.plugins)
            click.echo(f"all plugins loaded in {total:.3f}s")
        if slow and not strict:
            click.echo(f"warning: {slow}", err=True)
        for line in notes:
            click.echo(f"note: {line}", err=True)
        for line in problems:
            click.echo(f"error: {line}", err=True)
    if problems:
        sys.exit(EXIT_INVALID)


# --------------------------------------------------------------------------- init

@cli.command()
@click.option("--strategy", "strategy", required=True, help="instruction, tone, classification, domain (or a plugin's).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File to write (default: stdout). Never overwrites an existing file.")
@click.option("--name", default=None, help="Recipe name (default: derived from the file name).")
def init(strategy, output, name):
    """Write a commented starting recipe for a strategy; it validates as written."""
    from .plugins import get_host
    from .starter import starter_recipe

    host = get_host()
    if output is not None and output.exists():
        raise SftkitError(f"{output} already exists", hint="choose another -o path or delete it first")
    recipe_name = name or (output.stem if output else f"my-{strategy}")
    text = starter_recipe(strategy, recipe_name, host)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}; check it with: sftkit validate {output}", err=True)


# --------------------------------------------------------------------------- resolve

@cli.command()
@click.argument("recipe", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe key.")
@click.option("--show-secrets", is_flag=True, help="Do not redact values taken from the environment (or keys that look like secrets).")
@click.option("--nproc", type=click.IntRange(1, 4096), default=None, help="Processes per machine the run will use (for the global batch).")
@click.option("--nnodes", type=click.IntRange(1, 4096), default=1, show_default=True, help="Machines the run will use.")
def resolve(recipe, overrides, show_secrets, nproc, nnodes):
    """Print the fully resolved recipe as TOML: extends merged, defaults filled, env vars substituted,
    and the global batch (per device × accumulation × processes) as a comment."""
    import tomli_w

    from .recipe import load_recipe, redact
    from .run.distributed import global_batch, world_from_env

    loaded = load_recipe(recipe, overrides)
    if show_secrets:
        from .redaction import show_secrets as show

        show()
    data = loaded.serialized() if show_secrets else redact(loaded.serialized(), loaded.secrets)
    size = nproc * nnodes if nproc else world_from_env().size
    b = global_batch(loaded.config.training, size)
    batch = (f"# global batch: {b['per_device']} per device × {b['accumulation']} accumulation × "
             f"{b['world_size']} process(es) = {b['global']} rows per optimizer step"
             + ("" if nproc else " (--nproc N shows it for N processes)"))
    click.echo(f"# resolved from {recipe}\n{batch}\n" + tomli_w.dumps(data), nl=False)


# --------------------------------------------------------------------------- entry point

_COMMANDS_LOADED = False


def attach_commands(group: click.Group, host) -> None:
    """Add the commands every loaded plugin contributed (builtins included) to ``group``; a name two
    plugins add gets a command that says so instead; ``plugin:name`` reaches each one."""
    from .errors import PluginError
    from .plugins import command_clash_message

    for name, cmd in host.commands.items():
        if name not in group.commands:
            group.add_command(cmd, name)
    group.qualified_commands = dict(host.qualified_commands)
    for name, owners in host.command_clashes.items():
        message = command_clash_message(name, owners)

        def clashed(message=message):
            raise PluginError(message)

        group.add_command(click.Command(name, callback=clashed, help=message, context_settings={
            "ignore_unknown_options": True, "allow_extra_args": True}), name)


def load_plugin_commands() -> None:
    """Let every plugin (builtins included) add its commands, once."""
    global _COMMANDS_LOADED
    if _COMMANDS_LOADED:
        return
    _COMMANDS_LOADED = True
    from .plugins import get_host

    attach_commands(cli, get_host())


# commands that must stay fast (no heavy imports): a slow plugin is named when they pay for it
LIGHT_COMMANDS = frozenset({"validate", "schema", "plugins", "init", "resolve", "recipes"})


def warn_if_plugins_slow(argv: list[str]) -> None:
    """A warning line naming the slow plugins when a light command (or ``--help``) paid more than
    the load budget for loading them (``plugins`` says it itself)."""
    from .plugins import get_host, slow_plugins_message

    command = next((a for a in argv if not a.startswith("-")), None)
    if command == "plugins" or (command is not None and command not in LIGHT_COMMANDS):
        return
    slow = slow_plugins_message(get_host())
    if slow:
        click.echo(f"warning: {slow}", err=True)


def main(argv=None) -> None:
    from .redaction import install

    install()
    load_plugin_commands()
    warn_if_plugins_slow(list(sys.argv[1:] if argv is None else argv))
    try:
        cli.main(args=argv, prog_name="sftkit", standalone_mode=True)
    except SftkitError as err:
        fail(err)


if __name__ == "__main__":  # pragma: no cover
    main()
