"""Chat templates: turn conversations into token ids and loss labels, render prompts for generation.

``make_formatter(recipe)`` builds the formatter named by ``[template] formatter`` (default sftkit's
``chat``, the model's own template) through the plugin registry. Importing this package is light.
"""

from __future__ import annotations

DEFAULT_FORMATTER = "sftkit:chat"  # sftkit's own, even when a plugin registers a formatter "chat"


def formatter_options(template_table: dict | None) -> tuple[str, dict]:
    """Split a ``[template]`` table into the formatter name and its options (``system`` included)."""
    table = dict(template_table or {})
    name = table.pop("formatter", None) or DEFAULT_FORMATTER
    return name, table


def make_formatter(recipe: dict, host=None):
    """Create the :class:`sftkit.api.Formatter` for a resolved recipe dict (reads ``[template]``).

    The factory receives the table minus ``formatter``; call ``.setup(tokenizer, model)`` on the
    result before encoding.
    """
    from ..plugins import get_host

    host = host or get_host()
    name, options = formatter_options(recipe.get("template"))
    return host.registry.get("formatters", name).create(options)


def __getattr__(name):  # lazy re-exports, so `import sftkit.templates` stays light
    if name in ("TemplateFormatter",):
        from .formatter import TemplateFormatter

        return TemplateFormatter
    if name in ("BUILTINS", "has_generation_markers", "strip_generation_markers"):
        from . import builtin_templates

        return getattr(builtin_templates, name)
    raise AttributeError(name)


__all__ = ["make_formatter", "formatter_options", "DEFAULT_FORMATTER", "TemplateFormatter", "BUILTINS"]
