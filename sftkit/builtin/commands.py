"""Built-in commands beyond the core ones, added through ``sftkit_register_commands``.

Each is imported only when invoked (``LazyCommand``), so ``sftkit --help`` stays light.
"""

from __future__ import annotations

from sftkit import hookimpl
from sftkit.lazycli import add_lazy_command

COMMANDS = {
    "preview": ("sftkit.commands.preview:preview", "Render examples with trained tokens highlighted, and data statistics."),
    "plan": ("sftkit.commands.plan:plan", "Estimate a run's time, memory, disk and data before it runs."),
    "run": ("sftkit.commands.run:run", "Train (and evaluate) a recipe into a run directory."),
    "eval": ("sftkit.commands.eval:eval_command", "Evaluate a model with a recipe's [[eval]] tables and write a report."),
    "report": ("sftkit.commands.report:report", "Re-render a run directory's report."),
    "compare": ("sftkit.commands.compare:compare", "Compare two finished runs evaluator by evaluator (paired tests; --gate for CI)."),
    "recipes": ("sftkit.commands.recipes:recipes", "List, show and copy recipes shipped by sftkit and plugins."),
    "cache": ("sftkit.commands.cache:cache", "Show or clear sftkit's cache of converted models and data."),
    "serve": ("sftkit.commands.serve:serve", "Serve tuned models behind an OpenAI-compatible HTTP API."),
    "chat": ("sftkit.commands.chat:chat", "Chat with a model in the terminal (history, /reset, /system, streaming)."),
    "arena": ("sftkit.commands.arena:arena", "Blind side-by-side battles between models; votes become preference data."),
    "export": ("sftkit.commands.export:export", "Export a run's model as GGUF or for Ollama, verified against the model."),
    "plugin": ("sftkit.commands.plugin:plugin", "Create a new plugin package: sftkit plugin new NAME."),
}


@hookimpl
def sftkit_register_commands(cli):
    for name, (target, help_text) in COMMANDS.items():
        add_lazy_command(cli, name, target, help_text)
