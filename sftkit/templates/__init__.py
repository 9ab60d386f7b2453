"""Chat templates: turn conversations into token ids and loss labels, render prompts for generation.

``make_formatter(template)`` builds the formatter named by ``[template] formatter`` (default sftkit's
``chat``, the model's own template) through the plugin registry. Importing this package is light.
"""

from __future__ import annotations

from ..config import Template

DEFAULT_FORMATTER = Template().formatter  # sftkit's own (sftkit:chat), even when a plugin registers "chat"


def formatter_options(table: Template) -> tuple[str, dict]:
    """Split a ``[template]`` slice into the formatter name and its options (``system`` included)."""
    from ..config import factory_options

    return table.formatter or DEFAULT_FORMATTER, factory_options("template", table)


def make_formatter(template: Template | None = None, host=None):
    """Create the :class:`sftkit.api.Formatter` for the ``[template]`` slice
    (:class:`sftkit.config.Template`; None: the default template).

    The factory receives the table minus ``formatter``; call ``.setup(tokenizer, model)`` on the
    result before encoding.
    """
    from ..plugins import get_host

    host = host or get_host()
    name, options = formatter_options(template if template is not None else Template())
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
