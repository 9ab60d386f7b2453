"""The training stack: what ``pip install "sftkit[train]"`` adds to the light core, and whether it is here.

The light core (``pip install sftkit``) runs validate, schema, plugins, init, resolve, recipes and
report; everything that loads a model needs the stack. Light: looks modules up, never imports them.
"""

from __future__ import annotations

import importlib.util

# the [train] extra's packages, and what they bring that sftkit imports itself (numpy, pyarrow)
TRAINING_STACK = ("torch", "transformers", "trl", "datasets", "peft", "accelerate", "matplotlib", "gguf", "numpy",
                  "pyarrow")
TRAIN_INSTALL = 'pip install "sftkit[train]"'


def _absent(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is None
    except (ImportError, ValueError):
        return True


def installed() -> bool:
    """Whether this environment can train (torch, transformers and trl are importable)."""
    return not any(_absent(m) for m in ("torch", "transformers", "trl"))


def missing_module(exc: ImportError) -> str | None:
    """The training-stack module whose absence raised ``exc`` (None for any other import problem)."""
    top = (getattr(exc, "name", None) or "").split(".")[0]
    return top if top in TRAINING_STACK and _absent(top) else None
