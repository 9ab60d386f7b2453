"""``sftkit plugin new NAME``: write a new plugin package (see :mod:`sftkit.scaffold`)."""

from __future__ import annotations

from pathlib import Path

import click

from sftkit.errors import UsageError


@click.group()
def plugin():
    """Create sftkit plugins."""


@plugin.command("new")
@click.argument("name")
@click.option("--with", "kinds", default=",".join(("source", "evaluator", "command")), show_default=True,
              help="Components to include, comma-separated, from: source, evaluator, formatter, command, hooks "
                   "(run start/end and a report section). A shipped recipe is always included.")
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory to create (default: ./NAME). Never overwrites a non-empty one.")
def new_command(name, kinds, output):
    """Write a plugin package NAME: pyproject with the entry point, the components asked for, a shipped
    recipe, tests on sftkit.testing and a README. It installs with `pip install -e NAME` and its tests
    pass with `pytest NAME`.

    NAME is the plugin's name in lower case (letters, digits, `_` or `-`, starting with a letter), or
    its distribution name: `sentiment_pro`, `sentiment-pro` and `sftkit-sentiment-pro` all make the
    plugin `sentiment_pro` in the distribution `sftkit-sentiment-pro` (package `sftkit_sentiment_pro`)."""
    from sftkit.scaffold import KINDS, plugin_files, plugin_name

    derived = plugin_name(name)
    if derived is None:
        suggestion = plugin_name(name.lower())
        hint = f"e.g. {suggestion}" if suggestion else "lower-case letters, digits, _ and -, starting with a letter"
        raise UsageError(f"plugin name {name!r} is not a Python identifier in lower case", hint=hint)
    chosen = [k.strip() for k in kinds.split(",") if k.strip()]
    unknown = [k for k in chosen if k not in KINDS]
    if unknown:
        raise UsageError(f"--with: unknown component kind(s) {', '.join(map(repr, unknown))}",
                         hint=f"choose from {', '.join(KINDS)}")
    target = output or Path(name)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UsageError(f"{target} already exists and is not empty", hint="choose another -o directory")
    for rel, text in plugin_files(derived, chosen, directory=str(target)).items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    click.echo(f"wrote {target}/ (plugin {derived!r}, distribution sftkit-{derived.replace('_', '-')}); next: "
               f"pip install -e {target} && pytest {target}", err=True)
