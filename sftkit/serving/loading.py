"""What ``sftkit serve`` / ``chat`` / ``arena`` accept as a model, and loading it.

A model argument is ``[NAME=]REF`` where REF is

- a run directory (has ``model/``; it must be finished, i.e. hold ``COMPLETE``): its trained model;
- a saved model directory (``config.json``) or LoRA adapter (``adapter_config.json``);
- any model reference a recipe's ``[model].name`` accepts: hub id, ``.gguf`` file, ``package://...``.

NAME defaults to the run directory's or model directory's name (the hub id for a hub model).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SftkitError


@dataclass
class ModelRef:
    """A model argument, parsed but not loaded: ``name`` served under, ``ref`` as given, ``kind``."""

    name: str
    ref: str
    kind: str  # "run" | "saved" | "reference"
    path: Path | None = None  # the directory to load for "run" / "saved"


def parse_model_arg(arg: str, base_dir: Path | None = None) -> ModelRef:
    """``[NAME=]REF`` → :class:`ModelRef`; raises SftkitError for an unfinished run directory."""
    name, sep, ref = arg.partition("=")
    if not sep or "/" in name or not name:
        name, ref = "", arg
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    path = Path(ref).expanduser()
    path = path if path.is_absolute() else base / path
    if path.is_dir() and (path / "model").is_dir() and not (path / "config.json").exists():
        if not (path / "COMPLETE").exists():
            raise SftkitError(f"{ref} is a run directory without COMPLETE: its training did not finish",
                              where=arg, hint="finish it with `sftkit run RECIPE --resume` or pass RUN/model")
        return ModelRef(name or path.resolve().name, ref, "run", path / "model")
    if path.is_dir() and ((path / "config.json").exists() or (path / "adapter_config.json").exists()):
        label = path.resolve().name
        if label == "model":
            label = path.resolve().parent.name
        return ModelRef(name or label, ref, "saved", path)
    from ..modeling.source import describe_model_source

    src = describe_model_source({"name": ref}, base)
    problem = src.problem()
    if problem:
        raise SftkitError(problem.replace("[model].name", "the model argument"), where=arg,
                          hint="pass a run directory, a model directory, a .gguf file or a hub id")
    label = src.path.stem if src.path is not None else src.name
    return ModelRef(name or label, ref, "reference")


@dataclass
class ServedModel:
    """A loaded model ready to generate: ``engine`` batches its requests."""

    name: str
    ref: str
    model: Any
    tokenizer: Any
    engine: Any

    def render(self, messages: list[dict]) -> str:
        """The generation prompt of a conversation, from the chat template saved with the model."""
        tok = self.tokenizer
        if not getattr(tok, "chat_template", None):
            raise SftkitError(f"model {self.name!r} has no chat template",
                              hint="use /v1/completions with a raw prompt, or train with a [template]")
        return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def encode(self, text: str) -> list[int]:
        """Token ids of a prompt: the tokenizer's special tokens unless the text already starts with BOS."""
        tok = self.tokenizer
        if tok.bos_token and text.startswith(tok.bos_token):
            return list(tok.encode(text, add_special_tokens=False))
        return list(tok.encode(text))

    @property
    def context_length(self) -> int:
        from ..modeling.loading import context_length

        return context_length(self.model)


def best_device() -> str:
    """cuda, then mps, then cpu (the run's own rule, ``sftkit.run.devices``)."""
    from ..run.devices import available

    return available()[0]


def load_model(ref: ModelRef, *, max_batch: int = 8, device: str | None = None, console=None) -> ServedModel:
    """Load ``ref`` onto ``device`` (default: the best one) and start its engine."""
    from ..modeling.loading import load_causal_lm, load_trained
    from .engine import Engine

    if console:
        console(f"loading {ref.name} from {ref.ref}")
    if ref.kind in ("run", "saved"):
        model, tok = load_trained(ref.path)
        if "SequenceClassification" in type(model).__name__:
            raise SftkitError(f"{ref.ref} is a sequence classifier: it labels text, it does not generate",
                              where=ref.ref, hint="serve a causal language model")
    else:
        model, tok = load_causal_lm({"name": ref.ref}, Path.cwd(), console=console)
    model.to(device or best_device())
    model.eval()
    return ServedModel(ref.name, ref.ref, model, tok, Engine(model, tok, max_batch=max_batch))


def load_models(args: list[str], *, max_batch: int = 8, device: str | None = None, console=None) -> dict[str, ServedModel]:
    """Parse every argument first (errors before any loading), then load each; names must be unique."""
    refs = [parse_model_arg(a) for a in args]
    seen: dict[str, str] = {}
    for r in refs:
        if r.name in seen:
            raise SftkitError(f"two models are named {r.name!r} ({seen[r.name]} and {r.ref})",
                              hint="name them: NAME=PATH")
        seen[r.name] = r.ref
    return {r.name: load_model(r, max_batch=max_batch, device=device, console=console) for r in refs}
