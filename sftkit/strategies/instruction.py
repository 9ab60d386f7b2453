"""Instruction tuning: supervised fine-tuning on conversations, loss on the answers.

Rows come pre-tokenized from the formatter (``input_ids`` + ``labels``, prompt tokens masked).
By default batches group rows of similar length (little padding, no gradient checkpointing);
``packing = true`` concatenates the rows of a batch padding-free, with positions restarting per
row so rows never attend to one another. Chain-of-thought data goes the same way.
"""

from __future__ import annotations

from .base import CausalStrategy

COLUMNS = ("input_ids", "labels")


class InstructionStrategy(CausalStrategy):
    name = "instruction"

    def packing(self, run) -> bool:
        opt = self.options.get("packing")
        if opt is None:
            opt = run.training.packing
        return bool(opt)

    def datasets(self, run, tb):
        """Training/eval datasets with only the model's columns (labels = input_ids when
        ``train_on_prompt``)."""
        train, eval_ = tb.train, tb.eval
        if self.options.get("train_on_prompt"):
            train = train.map(lambda r: {"labels": list(r["input_ids"])})
            if eval_ is not None:
                eval_ = eval_.map(lambda r: {"labels": list(r["input_ids"])})
        lengths = train["length"] if "length" in train.column_names else [len(x) for x in train["input_ids"]]
        train = train.select_columns(list(COLUMNS))
        if eval_ is not None and len(eval_) == 0:
            eval_ = None
        if eval_ is not None:
            eval_ = eval_.select_columns(list(COLUMNS))
        return train, eval_, lengths

    def preview_encode(self, run, split: str = "train") -> list[dict] | None:
        """The rows of ``split`` as training feeds them: :meth:`tokenize` then :meth:`datasets`
        (``train_on_prompt`` included), with each row's ``source`` and ``cluster``."""
        tb = self.tokenize(run)
        train, eval_, _lengths = self.datasets(run, tb)
        ds, full = (train, tb.train) if split == "train" else (eval_, tb.eval)
        if ds is None:
            return None
        return [{"input_ids": list(row["input_ids"]), "labels": list(row["labels"]),
                 "source": full[i].get("source"), "cluster": full[i].get("cluster")} for i, row in enumerate(ds)]

    def train(self, run, bundle=None):
        from .collate import FlattenCollator, PadCollator, TokenCounter
        from .trainer import fit

        model, tokenizer = self.load(run)
        tb = self.tokenize(run, bundle)
        train, eval_, lengths = self.datasets(run, tb)
        model = self.prepare_model(run, model)
        packing = self.packing(run)
        collator = FlattenCollator() if packing else PadCollator(tokenizer.pad_token_id)
        group = run.training.group_by_length and not packing
        counter = TokenCounter()
        trainer = self.build_trainer(run, model, tokenizer, train, eval_, collator,
                                     lengths=lengths if group else None, counter=counter)
        result = fit(run, trainer, tokenizer=tokenizer, counter=counter)
        result.metrics["packing"] = packing
        result.metrics["group_by_length"] = bool(group)
        return result


def create(options: dict | None = None) -> InstructionStrategy:
    return InstructionStrategy(options)
