"""Batch pre-tokenized rows (``input_ids`` + ``labels``) for causal-LM training.

Two collators (the trainer counts trained/real/padding tokens per micro-batch with
:class:`TokenCounter`):

- :class:`PadCollator`: right-pads each batch to its longest row (combine with length-grouped
  batching so little is padding).
- :class:`FlattenCollator`: padding-free packing. The rows of a batch are concatenated into one
  sequence with ``position_ids`` restarting at 0 for each row; transformers builds a block-diagonal
  attention mask from the restarting positions, so rows never attend to each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sftkit.api import IGNORE_INDEX


@dataclass
class TokenCounter:
    """Tokens processed by the training steps of one run (this process only)."""

    trained: int = 0  # label tokens that contribute to the loss
    real: int = 0  # non-padding tokens
    padded: int = 0  # padding tokens
    batches: int = 0
    sizes: list = field(default_factory=list)  # processed (real + padding) tokens of each micro-batch

    @property
    def processed(self) -> int:
        return self.real + self.padded

    @property
    def padding_fraction(self) -> float:
        return self.padded / self.processed if self.processed else 0.0

    def as_dict(self) -> dict:
        return {"trained_tokens": self.trained, "real_tokens": self.real, "padding_tokens": self.padded,
                "padding_fraction": round(self.padding_fraction, 4)}

    def add_batch(self, inputs: dict) -> None:
        """Count one training micro-batch (tensors from a collator)."""
        labels = inputs.get("labels")
        ids = inputs["input_ids"]
        mask = inputs.get("attention_mask")
        real = int(mask.sum()) if mask is not None else ids.numel()
        self.real += real
        self.padded += ids.numel() - real
        if labels is not None and labels.dim() >= 2:
            self.trained += int((labels[..., 1:] != IGNORE_INDEX).sum())
        elif inputs.get("completion_mask") is not None:  # TRL preference batches (DPO, KTO)
            self.trained += int(inputs["completion_mask"].sum())
        else:  # sequence classification: every real token feeds the prediction
            self.trained += real
        self.batches += 1
        self.sizes.append(int(ids.numel()))


@dataclass
class PadCollator:
    """Right-pad ``input_ids``/``labels`` to the longest row of the batch (optionally to a multiple)."""

    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def __call__(self, features: list[dict]) -> dict:
        import torch

        longest = max(len(f["input_ids"]) for f in features)
        if self.pad_to_multiple_of:
            m = self.pad_to_multiple_of
            longest = (longest + m - 1) // m * m
        ids, labels, mask = [], [], []
        for f in features:
            n = len(f["input_ids"])
            pad = longest - n
            ids.append(list(f["input_ids"]) + [self.pad_token_id] * pad)
            lab = f.get("labels", f["input_ids"])
            labels.append(list(lab) + [IGNORE_INDEX] * pad)
            mask.append([1] * n + [0] * pad)
        return {"input_ids": torch.tensor(ids, dtype=torch.long),
                "labels": torch.tensor(labels, dtype=torch.long),
                "attention_mask": torch.tensor(mask, dtype=torch.long)}


@dataclass
class FlattenCollator:
    """Concatenate the batch into one row with per-row ``position_ids`` (no padding, no cross-attention).

    The first label of each row is set to IGNORE_INDEX so no row learns to predict its first token
    from the previous row's last token.
    """

    def __call__(self, features: list[dict]) -> dict:
        import torch

        ids, labels, pos = [], [], []
        for f in features:
            row = list(f["input_ids"])
            lab = list(f.get("labels", row))
            lab[0] = IGNORE_INDEX
            ids += row
            labels += lab
            pos += list(range(len(row)))
        return {"input_ids": torch.tensor([ids], dtype=torch.long),
                "labels": torch.tensor([labels], dtype=torch.long),
                "position_ids": torch.tensor([pos], dtype=torch.long)}
