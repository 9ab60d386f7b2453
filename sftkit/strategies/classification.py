"""Classification: a sequence-classification head on a pretrained backbone (encoder or decoder).

Labels are the sorted label names found in the data (ids in that order; ``id2label``/``label2id``
are saved in the model config). A class-balance report is written to the run's data statistics;
``freeze_backbone = true`` trains the head only. Accuracy on the eval split is computed at the end.
"""

from __future__ import annotations

from collections import Counter

from sftkit.errors import DataError
from sftkit.modeling.adapters import HEAD_NAMES

from .base import CausalStrategy


def class_balance(labels: list[str], warn_ratio: float = 3.0) -> dict:
    """Rows per class, the largest/smallest ratio, and a warning when it reaches ``warn_ratio``."""
    counts = Counter(labels)
    out = {"counts": dict(sorted(counts.items())), "classes": len(counts)}
    if counts:
        ratio = max(counts.values()) / max(1, min(counts.values()))
        out["imbalance_ratio"] = round(ratio, 2)
        if ratio >= warn_ratio:
            small = min(counts, key=counts.get)
            out["warning"] = (f"classes are imbalanced ({ratio:.1f}x between the largest and {small!r}): "
                              f"accuracy may hide a poor minority class; add rows of the small classes")
    return out


def freeze_backbone(model) -> dict:
    """Freeze everything but the classification head; return counts."""
    trainable = 0
    for name, p in model.named_parameters():
        head = name.split(".")[0] in HEAD_NAMES
        p.requires_grad_(head)
        trainable += p.numel() if head else 0
    return {"trainable": trainable}


class ClassificationStrategy(CausalStrategy):
    name = "classification"
    uses_formatter = False

    def labels(self, bundle) -> list[str]:
        names = {str(x) for x in bundle.train["label"]}
        if len(names) < 2:
            raise DataError(f"classification needs at least 2 labels in the training data, found {sorted(names)}",
                            where="[[data]]", hint="check the label column (columns = {label = \"...\"})")
        return sorted(names)

    def check_data(self, bundle) -> None:
        self.labels(bundle)

    def load(self, run):
        if run.base is not None:
            return run.base
        if run.load_model is None:
            raise TypeError("RunContext.load_model is unset: the run hands strategies its loader of [model]")
        labels = self.labels(run.data)
        model, tokenizer = run.load_model(run, task="classification", labels=labels)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        if getattr(model.config, "pad_token_id", None) is None:
            model.config.pad_token_id = tokenizer.pad_token_id
        run.base = (model, tokenizer)
        run.tokenizer = tokenizer
        return model, tokenizer

    def encode(self, ds, tokenizer, label2id: dict, max_length: int):
        def enc(batch):
            out = tokenizer(batch["text"], truncation=True, max_length=max_length)
            return {"input_ids": out["input_ids"], "attention_mask": out["attention_mask"],
                    "labels": [label2id[str(x)] for x in batch["label"]]}

        ds = ds.map(enc, batched=True, remove_columns=ds.column_names)
        return ds

    def preview_encode(self, run, split: str = "train"):
        """The rows of ``split`` exactly as training encodes them (:meth:`encode`: the text tokenized
        plainly, no chat template), with ``target`` (the class the head learns) and ``source``
        columns; no token of the text is trained. None when the split is empty."""
        bundle = run.data
        ds = bundle.train if split == "train" else bundle.eval
        if ds is None or not len(ds):
            return None
        labels = self.labels(bundle)
        max_length = run.training.max_length
        enc = self.encode(ds, run.tokenizer, {lab: i for i, lab in enumerate(labels)}, max_length)
        return enc.add_column("target", [str(x) for x in ds["label"]]).add_column("source", list(ds["source"]))

    def train(self, run):
        from transformers import DataCollatorWithPadding

        from .collate import TokenCounter
        from .trainer import fit

        model, tokenizer = self.load(run)
        bundle = run.data
        labels = self.labels(bundle)
        label2id = {lab: i for i, lab in enumerate(labels)}
        model.config.id2label = dict(enumerate(labels))
        model.config.label2id = dict(label2id)
        balance = class_balance([str(x) for x in bundle.train["label"]],
                                float(self.options.get("imbalance_warn", 3)))
        run.data_stats["classes"] = balance
        if balance.get("warning") and run.console:
            run.console(f"warning: {balance['warning']}")
        max_length = run.training.max_length
        train = self.encode(bundle.train, tokenizer, label2id, max_length)
        eval_ = None
        if bundle.eval is not None and len(bundle.eval) > 0:
            ev = bundle.eval
            unseen = sorted({str(x) for x in ev["label"]} - set(labels))
            if unseen:
                if run.console:
                    run.console(f"warning: eval labels not in the training data are skipped: {unseen}")
                ev = ev.filter(lambda r: str(r["label"]) in label2id)
                balance["eval_unseen_labels"] = unseen
            eval_ = self.encode(ev, tokenizer, label2id, max_length) if len(ev) else None
        if self.options.get("freeze_backbone"):
            run.frozen = freeze_backbone(model)
        model = self.prepare_model(run, model)
        lengths = [len(x) for x in train["input_ids"]]
        counter = TokenCounter()
        trainer = self.build_trainer(run, model, tokenizer, train, eval_, DataCollatorWithPadding(tokenizer),
                                     lengths=lengths if run.training.group_by_length else None,
                                     counter=counter, compute_metrics=accuracy)
        result = fit(run, trainer, tokenizer=tokenizer, counter=counter)
        result.metrics["labels"] = labels
        return result


def accuracy(eval_pred) -> dict:
    """Accuracy of argmax predictions (``compute_metrics`` for the Trainer)."""
    import numpy as np

    logits, labels = eval_pred.predictions, eval_pred.label_ids
    if isinstance(logits, tuple):
        logits = logits[0]
    preds = np.argmax(logits, axis=-1)
    return {"accuracy": float((preds == labels).mean()) if len(labels) else 0.0}


def create(options: dict | None = None) -> ClassificationStrategy:
    return ClassificationStrategy(options)
