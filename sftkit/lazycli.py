"""Click commands imported only when invoked (keeps ``sftkit --help`` free of heavy imports)."""

from __future__ import annotations

import sys

import click

from .errors import EXIT_USAGE


def refuse_without_stack(command: str, exc: ImportError) -> None:
    """Exit 2 with one line naming the pip command, if ``exc`` is the training stack not being installed
    (the light core). Called where commands are imported (:class:`LazyCommand`) and run
    (:class:`sftkit.cli.SftkitGroup`), for every command, plugins' too."""
    from .stack import TRAIN_INSTALL, missing_module

    module = missing_module(exc)
    if module is None:
        return
    click.echo(f"error: sftkit {command} needs the training stack, which is not installed (no {module}) — "
               f"install it with: {TRAIN_INSTALL}", err=True)
    sys.exit(EXIT_USAGE)


class LazyCommand(click.Command):
    """A placeholder that imports ``module:attr`` on first real use and delegates to it."""

    def __init__(self, name: str, target: str, help_text: str):
        super().__init__(name, help=help_text, short_help=help_text)
        self._target = target
        self._real: click.Command | None = None

    def _load(self) -> click.Command:
        if self._real is None:
            from .registry import import_object

            try:
                self._real = import_object(self._target)
            except ImportError as exc:
                refuse_without_stack(self.name, exc)
                raise click.ClickException(f"command {self.name!r} is not available: {exc}") from exc
        return self._real

    def get_params(self, ctx):
        return self._load().get_params(ctx)

    def get_usage(self, ctx):
        return self._load().get_usage(ctx)

    def format_help(self, ctx, formatter):
        return self._load().format_help(ctx, formatter)

    def parse_args(self, ctx, args):
        return self._load().parse_args(ctx, args)

    def invoke(self, ctx):
        return self._load().invoke(ctx)

    def make_context(self, info_name, args, parent=None, **extra):
        return self._load().make_context(info_name, args, parent=parent, **extra)

    def main(self, *args, **kwargs):
        return self._load().main(*args, **kwargs)


def add_lazy_command(group: click.Group, name: str, target: str, help_text: str = "") -> None:
    """Add ``target`` (``"module:attr"`` naming a click command) to ``group`` under ``name``."""
    group.add_command(LazyCommand(name, target, help_text), name)
