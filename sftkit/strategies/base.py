"""What the causal-LM strategies share: load the model once, set up the template, tokenize,
apply LoRA or freezing, and build the trainer."""

from __future__ import annotations

from sftkit.api import Strategy
from sftkit.errors import DataError, SftkitError


class CausalStrategy(Strategy):
    """Base for strategies training a causal LM (instruction, tone, domain); ``load`` is the
    contract's default (the recipe's ``[model]`` with the chat template installed)."""

    name = "causal"

    def prepare_model(self, run, model):
        """Apply ``[adapter]`` (LoRA, QLoRA) or ``[freeze]``; record what trains in ``run.parameters``
        (and, under QLoRA, how many weights are held in 4-bit: ``quantized``)."""
        from transformers import set_seed

        from sftkit.models import apply_adapter, apply_freeze

        set_seed(run.seed)  # LoRA initialisation is reproducible
        adapter = run.config.adapter
        freeze = run.config.freeze
        if freeze is not None and freeze.given:
            run.frozen = apply_freeze(model, freeze)
        if adapter is not None:
            model = apply_adapter(model, adapter)
        from sftkit.modeling.qlora import parameter_count, quantized_parameter_count

        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        total = parameter_count(model)  # a 4-bit weight counted as the weights it packs
        if trainable == 0:
            raise SftkitError("no parameter is left to train", where="[freeze]",
                              hint="freeze fewer layers or patterns")
        run.parameters = {"trainable": trainable, "total": total}
        quantized = quantized_parameter_count(model)
        if quantized:
            run.parameters["quantized"] = quantized
        return model

    # -- data ------------------------------------------------------------------
    def tokenize(self, run, bundle=None):
        """Tokenize the run's data with the formatter (labels: trained tokens only)."""
        from sftkit.data import tokenize_bundle
        from sftkit.run.distributed import main_first, world_of

        tok = run.tokenization
        max_length = tok.max_length
        with main_first(world_of(run)):  # the others reuse its tokenized Arrow files
            tb = tokenize_bundle(bundle or run.data, run.formatter, max_length=max_length,
                                 truncation=tok.truncation, min_trained_tokens=tok.min_trained_tokens)
        if len(tb.train) == 0:
            st = tb.stats or {}
            dropped = st.get("dropped") or {}
            detail = ", ".join(f"{k}: {v}" for k, v in dropped.items()) or "all rows"
            raise DataError(
                f"no training row is left with a trained token within training.max_length = {max_length} "
                f"(dropped {detail})",
                where="[training] max_length",
                hint="raise training.max_length above the prompt length (or shorten the prompts / system prompt)",
            )
        run.data_stats["tokens"] = tb.stats
        return tb

    # -- trainer ---------------------------------------------------------------
    def build_trainer(self, run, model, tokenizer, train, eval_, collator, *, lengths=None, counter=None,
                      args=None, base=None, **kwargs):
        """A :class:`SftkitTrainer` over pre-tokenized datasets."""
        from .trainer import callbacks, make_trainer_class, training_arguments

        args = args or training_arguments(run, rows=len(train), has_eval=eval_ is not None)
        cls = make_trainer_class(base)
        trainer = cls(model=model, args=args, train_dataset=train, eval_dataset=eval_,
                      data_collator=collator, processing_class=tokenizer, callbacks=callbacks(run), **kwargs)
        trainer.sftkit_lengths = lengths
        trainer.sftkit_counter = counter
        if base is None:
            trainer.sftkit_loss = chunked_loss(run, trainer)
        return trainer


def chunked_loss(run, trainer):
    """The trainer's :class:`~sftkit.strategies.loss.ChunkedLoss` (``[training] chunked_loss``), refused
    up front where the weights are sharded (FSDP / DeepSpeed)."""
    from .loss import ChunkedLoss
    from .trainer import weights_sharded

    loss = ChunkedLoss(trainer.accelerator.autocast)
    if not run.training.chunked_loss:
        loss.refuse("off: [training] chunked_loss = false")
    elif weights_sharded(trainer):
        loss.refuse("the weights are sharded (FSDP / DeepSpeed): the output layer is not whole outside the model")
    return loss
