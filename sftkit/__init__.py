"""sftkit: turn a TOML recipe into a fine-tuning run.

Importing this package is light: it pulls in pluggy only. Heavy libraries (torch,
transformers, trl, datasets, peft) are imported inside the functions that need them.
"""

import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("sftkit")
"""Decorator for plugin hook implementations: ``@sftkit.hookimpl``."""

__all__ = ["__version__", "hookimpl"]
