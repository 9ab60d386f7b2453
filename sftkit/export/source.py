"""What ``sftkit export`` exports: a finished run directory, a saved model directory or a LoRA adapter
(merged into its base first), loaded with its tokenizer and the stop tokens it was trained to emit."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import SftkitError

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")


@dataclass
class ExportSource:
    """A loaded model ready to export: ``run_dir`` is set when the argument was a run directory."""

    ref: str
    model_dir: Path
    model: Any
    tokenizer: Any
    run_dir: Path | None = None
    stop_ids: list[int] = field(default_factory=list)
    saved_dtype: str | None = None  # the weights' dtype as saved (config.json), before loading in float32

    @property
    def chat_template(self) -> str | None:
        return getattr(self.tokenizer, "chat_template", None) or None


def locate(ref: str) -> tuple[Path, Path | None]:
    """``(model directory, run directory or None)`` of an argument, checked without loading anything heavy."""
    from ..serving.loading import parse_model_arg

    parsed = parse_model_arg(ref)
    if parsed.kind == "reference" or parsed.path is None:
        raise SftkitError(f"{ref} is neither a run directory nor a saved model or adapter directory",
                          where=ref, hint="pass RUN_DIR (finished), RUN_DIR/model or a save_pretrained directory")
    model_dir = Path(parsed.path)
    if not any((model_dir / f).is_file() for f in TOKENIZER_FILES):
        raise SftkitError(f"{model_dir} has no tokenizer (tokenizer.json / tokenizer_config.json): nothing written",
                          where=ref, hint="save the tokenizer beside the model (tokenizer.save_pretrained(DIR))")
    return model_dir, (model_dir.parent if parsed.kind == "run" else None)


def load_source(ref: str) -> ExportSource:
    """Load ``ref`` (adapters merged) in float32 on the CPU, with its stop token ids."""
    from ..modeling.loading import load_trained
    from ..modeling.stops import stop_token_ids

    model_dir, run_dir = locate(ref)
    model, tok = load_trained(model_dir)
    saved = getattr(model.config, "dtype", None) or getattr(model.config, "torch_dtype", None)
    try:
        saved = json.loads((model_dir / "config.json").read_text()).get("dtype") or saved
    except (OSError, ValueError):
        pass
    if hasattr(model, "merge_and_unload"):  # a LoRA adapter: the GGUF holds the merged weights
        from ..modeling.adapters import merged

        model = merged(model)  # a QLoRA adapter: its 4-bit base de-quantized first
    model = model.float().cpu().eval()
    return ExportSource(ref, model_dir, model, tok, run_dir, stop_token_ids(model, tok),
                        str(saved).removeprefix("torch.") if saved else None)
