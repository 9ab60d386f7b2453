"""Where a recipe's model comes from: a hub id, a local directory or a GGUF file (no heavy imports)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import SftkitError, shorten
from ..paths import PACKAGE_SCHEME, resolve_path

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?$")


@dataclass
class ModelSource:
    """A model named by ``[model].name``: ``kind`` is "hub", "dir" or "gguf"; ``path`` is set for local ones."""

    name: str
    kind: str
    path: Path | None = None
    revision: str | None = None
    error: str | None = None  # set when the name could not even be resolved (e.g. package missing)

    def problem(self) -> str | None:
        """Why this source cannot be used (local paths only; hub ids are checked when loading), or None."""
        if self.error:
            return self.error
        if self.kind == "hub":
            return None
        if self.path is None or not self.path.exists():
            what = "the file" if self.kind == "gguf" else "the directory"
            return (f"model {self.name!r} not found: looked for {what} "
                    f"{self.path} — fix [model].name (a hub id, a local directory or a .gguf file; "
                    f"relative paths are relative to the recipe file)")
        if self.kind == "gguf" and not self.path.is_file():
            return f"model {self.name!r}: {self.path} is not a file — point [model].name at the .gguf file itself"
        if self.kind == "dir":
            if not self.path.is_dir():
                return (f"model {self.name!r}: {self.path} is a file but not a .gguf — point [model].name at a "
                        f"model directory (with config.json) or a .gguf file")
            if not (self.path / "config.json").exists():
                return (f"model {self.name!r}: {self.path} has no config.json — point [model].name at a directory "
                        f"written by save_pretrained (or a .gguf file)")
        return None

    def describe(self) -> str:
        """One line for logs: what will be loaded from where."""
        if self.kind == "hub":
            rev = f" @ {self.revision}" if self.revision else ""
            return f"hub model {self.name}{rev}"
        return f"{'GGUF file' if self.kind == 'gguf' else 'local model'} {self.path}"


def _looks_local(name: str) -> bool:
    """A name that cannot be a hub id ("org/name") is a local path."""
    return name.startswith((PACKAGE_SCHEME, "/", ".", "~")) or "\\" in name or not _HUB_ID.match(name)


def describe_model_source(model_section: dict, base_dir) -> ModelSource:
    """Classify ``model_section["name"]`` as hub id, local directory or GGUF file; never imports torch."""
    name = str((model_section or {}).get("name", "")).strip()
    revision = (model_section or {}).get("revision")
    if not name:
        return ModelSource(name, "hub", error="[model].name is empty — set it to a hub id, a directory or a .gguf file")
    try:
        path = resolve_path(name, Path(base_dir) if base_dir is not None else None)
    except SftkitError as err:
        kind = "gguf" if name.lower().endswith(".gguf") else "dir"
        return ModelSource(name, kind, None, revision, error=f"model {name!r}: {err}")
    gguf = name.lower().endswith(".gguf")
    try:
        exists = path.exists()
    except OSError as exc:  # a name or path too long for the file system, a loop of links
        return ModelSource(name, "gguf" if gguf else "dir", None, revision,
                           error=f"model {shorten(repr(name))}: cannot be used: {exc.strerror}")
    if gguf:
        return ModelSource(name, "gguf", path, revision)
    if exists or _looks_local(name):
        return ModelSource(name, "dir", path, revision)
    return ModelSource(name, "hub", None, revision)


GGUF_KIND = "models"  # the model cache kind of dequantized GGUF files


def _offline() -> bool:
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except Exception:  # pragma: no cover - huggingface_hub always ships with transformers
        return os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false", "False")


def not_found_error(src: ModelSource, base_dir, err: Exception | None = None) -> SftkitError:
    """The error for a model that could not be loaded: where we looked and what to change."""
    if src.kind != "hub":
        return SftkitError(src.problem() or f"could not load model {src.name!r} from {src.path}: {err}",
                           where="[model].name")
    try:
        from huggingface_hub import constants

        hub_cache = constants.HF_HUB_CACHE
    except Exception:  # pragma: no cover
        hub_cache = "~/.cache/huggingface/hub"
    local = Path(base_dir or ".") / src.name
    offline = "offline mode is on (HF_HUB_OFFLINE=1), so the hub was not asked" if _offline() else \
        "the hub could not provide it"
    detail = f" ({type(err).__name__}: {str(err).splitlines()[0][:200]})" if err else ""
    return SftkitError(
        f"model {src.name!r} not found: no local path {local}, not in the hub cache {hub_cache}, and {offline}{detail}",
        where="[model].name",
        hint="set [model].name to a local model directory or a .gguf file (package://... works too), "
             "or download the model first (`hf download NAME`) and run with network access",
    )
