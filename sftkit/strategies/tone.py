"""Tone: learn from good (and bad) example answers.

- preference pairs (``prompt``/``chosen``/``rejected``) → DPO (``trl.DPOTrainer``)
- answers labelled good/bad (``prompt``/``completion``/``label``) → KTO (``trl.KTOTrainer``);
  with good answers only → SFT on them
- conversations (good answers only) → SFT

Before training the pairs are checked: identical chosen/rejected pairs are dropped (and counted),
and a length bias between chosen and rejected answers is reported (a model tuned on pairs where
the chosen answer is always longer mostly learns to be long).
"""

from __future__ import annotations

from statistics import mean

from sftkit.api import IGNORE_INDEX
from sftkit.errors import DataError

from .base import CausalStrategy

METHOD_FOR_KIND = {"preference": "dpo", "labeled": "kto", "messages": "sft"}
LENGTH_SAMPLE = 2000


def length_bias(good: list[str], bad: list[str], tokenizer=None, threshold: float = 0.2, paired: bool = False) -> dict:
    """Mean length (chars, tokens when a tokenizer is given) of good vs bad answers, and a warning
    when good answers are systematically longer or shorter by more than ``threshold`` (relative)."""
    good, bad = good[:LENGTH_SAMPLE], bad[:LENGTH_SAMPLE]
    if not good or not bad:
        return {}
    out = {"chosen_chars": round(mean(len(x) for x in good), 1), "rejected_chars": round(mean(len(x) for x in bad), 1)}
    if tokenizer is not None:
        out["chosen_tokens"] = round(mean(len(tokenizer(x, add_special_tokens=False)["input_ids"]) for x in good), 1)
        out["rejected_tokens"] = round(mean(len(tokenizer(x, add_special_tokens=False)["input_ids"]) for x in bad), 1)
    if paired and len(good) == len(bad):
        out["chosen_longer_share"] = round(mean(1.0 if len(g) > len(b) else 0.0 for g, b in zip(good, bad)), 3)
    ratio = (out["chosen_chars"] - out["rejected_chars"]) / max(out["rejected_chars"], 1.0)
    out["relative_difference"] = round(ratio, 3)
    share = out.get("chosen_longer_share")
    systematic = share is not None and len(good) >= 10 and (share >= 0.9 or share <= 0.1)
    if abs(ratio) > threshold or (systematic and abs(ratio) > threshold / 4):
        word = "longer" if ratio > 0 else "shorter"
        detail = f" ({share:.0%} of pairs)" if share is not None and word == "longer" else \
            f" ({1 - share:.0%} of pairs)" if share is not None else ""
        out["warning"] = (f"chosen answers are {abs(ratio):.0%} {word} than rejected ones on average{detail}: the "
                          f"model may learn to be {word} rather than better; balance the lengths of your pairs")
    return out


def check_pairs(train, *, drop_identical: bool = True):
    """Drop pairs with identical chosen/rejected answers; return (dataset, number dropped)."""
    same = [i for i, (c, r) in enumerate(zip(train["chosen"], train["rejected"])) if c.strip() == r.strip()]
    if not same or not drop_identical:
        return train, len(same)
    keep = sorted(set(range(len(train))) - set(same))
    return train.select(keep), len(same)


class ToneStrategy(CausalStrategy):
    name = "tone"

    def method_for(self, bundle) -> str:
        method = self.options.get("method", "auto")
        kind = bundle.kind
        if method == "auto":
            method = METHOD_FOR_KIND.get(kind)
            if method == "kto":
                labels = set(bundle.train["label"])
                if labels == {True}:
                    method = "sft"
                elif labels == {False}:
                    raise DataError("tone got only bad answers (label = false): there is nothing to imitate",
                                    where="[[data]]", hint="add good answers (label = true) or preference pairs")
        from .checks import METHOD_KINDS as need

        if method not in need or kind not in need[method]:
            raise DataError(f"tone method {method!r} does not fit {kind} data", where="[strategy] method",
                            hint='use method = "auto": DPO on pairs, KTO on good/bad labels, SFT on good answers')
        return method

    def train(self, run):
        bundle = run.data
        method = self.method_for(bundle)
        model, tokenizer = self.load(run)
        report: dict = {"method": method}
        threshold = float(self.options.get("length_bias_warn", 0.2))
        if bundle.kind == "preference":
            train, dropped = check_pairs(bundle.train, drop_identical=self.options.get("drop_identical", True))
            report["identical_pairs"] = dropped
            if dropped and run.console:
                run.console(f"warning: {dropped} preference pair(s) have identical chosen and rejected answers"
                            + (" (dropped)" if self.options.get("drop_identical", True) else ""))
            if len(train) == 0:
                raise DataError("every preference pair has identical chosen and rejected answers", where="[[data]]",
                                hint="the rejected answer must differ from the chosen one")
            eval_ = bundle.eval
            if eval_ is not None:
                eval_, _ = check_pairs(eval_, drop_identical=self.options.get("drop_identical", True))
            bundle = type(bundle)(**{**bundle.__dict__, "train": train, "eval": eval_})
            report["length_bias"] = length_bias(list(train["chosen"]), list(train["rejected"]), tokenizer, threshold,
                                                paired=True)
        elif bundle.kind == "labeled":
            labels = list(bundle.train["label"])
            report["good"] = sum(1 for x in labels if x)
            report["bad"] = len(labels) - report["good"]
            good = [c for c, lab in zip(bundle.train["completion"], labels) if lab]
            bad = [c for c, lab in zip(bundle.train["completion"], labels) if not lab]
            report["length_bias"] = length_bias(good, bad, tokenizer, threshold)
        warning = (report.get("length_bias") or {}).get("warning")
        if warning and run.console:
            run.console(f"warning: {warning}")
        run.data_stats["tone"] = report
        if method == "sft":
            return self._sft(run, bundle)
        return self._preference(run, bundle, method, model, tokenizer)

    # -- SFT on good answers -------------------------------------------------------
    def _sft(self, run, bundle):
        from .instruction import InstructionStrategy

        messages = to_messages(bundle)
        sft = InstructionStrategy({})
        result = sft.train(run, bundle=messages)
        result.metrics["method"] = "sft"
        return result

    # -- DPO / KTO -----------------------------------------------------------------
    def _preference(self, run, bundle, method, model, tokenizer):
        from sftkit.models import is_adapter

        from .trainer import callbacks, fit, make_trainer_class, training_arguments

        model = self.prepare_model(run, model)
        ref_model = None if is_adapter(model) else _frozen_copy(model)
        beta = float(self.options.get("beta", 0.1))
        max_length = run.training.max_length
        if method == "dpo":
            from trl import DPOConfig as Config
            from trl import DPOTrainer as Base

            cols = ["prompt", "chosen", "rejected"]
            convert = _dpo_row
        else:
            from trl import KTOConfig as Config
            from trl import KTOTrainer as Base

            cols = ["prompt", "completion", "label"]
            convert = _kto_row
        train = bundle.train.map(convert, remove_columns=bundle.train.column_names).select_columns(cols)
        eval_ = bundle.eval
        if eval_ is not None and len(eval_) > 0:
            eval_ = eval_.map(convert, remove_columns=eval_.column_names).select_columns(cols)
        else:
            eval_ = None
        extra = {"beta": beta, "max_length": max_length, "remove_unused_columns": True}
        if method == "kto":
            if run.training.per_device_train_batch_size < 2:
                raise DataError("KTO needs per_device_train_batch_size of at least 2", where="[training]",
                                hint="raise training.per_device_train_batch_size")
            extra["train_sampling_strategy"] = "sequential"
            extra["desirable_weight"] = float(self.options.get("desirable_weight", 1.0))
            extra["undesirable_weight"] = float(self.options.get("undesirable_weight", 1.0))
        args = training_arguments(run, rows=len(train), has_eval=eval_ is not None, config_cls=Config, **extra)
        from .collate import TokenCounter

        cls = make_trainer_class(Base)
        trainer = cls(model=model, ref_model=ref_model, args=args, train_dataset=train, eval_dataset=eval_,
                      processing_class=tokenizer, callbacks=callbacks(run))
        trainer.sftkit_counter = counter = TokenCounter()
        result = fit(run, trainer, tokenizer=tokenizer, counter=counter, before_save=_drop_ref_adapter)
        result.metrics["method"] = method
        result.metrics["beta"] = beta
        if method == "kto":
            result.metrics["kto_weights"] = {"desirable": args.desirable_weight, "undesirable": args.undesirable_weight}
        return result

    def check_data(self, bundle) -> None:
        self.method_for(bundle)

    def preview_encode(self, run, split: str = "train") -> list[dict] | None:
        """What DPO / KTO training feeds the model for ``split``: the prompt (untrained) and the answer
        (trained) as TRL tokenizes them with the chat template, cut at ``max_length`` as its collator
        does (a row whose prompt alone fills it is dropped, as TRL drops it); a DPO row also carries
        its rejected answer. None for SFT (the template tokenization
        the run uses for instruction data, which preview shows by default)."""
        bundle = run.data
        method = self.method_for(bundle)
        ds = bundle.train if split == "train" else bundle.eval
        if method == "sft" or ds is None or not len(ds):
            return None
        max_length = run.training.max_length
        rows = []
        if method == "dpo":
            ds, _ = check_pairs(ds, drop_identical=self.options.get("drop_identical", True))
            for row in ds:
                r = _dpo_row(row)
                prompt, (chosen, rejected) = trl_encode(run.tokenizer, r["prompt"], [r["chosen"], r["rejected"]])
                if len(prompt) >= max_length:  # TRL drops a pair whose prompt alone fills max_length
                    continue
                ids, labels = _sequence(prompt, chosen, max_length)
                rej_ids, rej_labels = _sequence(prompt, rejected, max_length)
                rows.append({"input_ids": ids, "labels": labels, "rejected_input_ids": rej_ids,
                             "rejected_labels": rej_labels, "source": row.get("source")})
        else:
            for row in ds:
                r = _kto_row(row)
                prompt, (completion,) = trl_encode(run.tokenizer, r["prompt"], [r["completion"]])
                if len(prompt) >= max_length:
                    continue
                ids, labels = _sequence(prompt, completion, max_length)
                rows.append({"input_ids": ids, "labels": labels, "source": row.get("source"),
                             "target": "a good answer (pushed up)" if r["label"] else "a bad answer (pushed down)"})
        return rows


def trl_encode(tokenizer, prompt: list, completions: list) -> tuple[list[int], list[list[int]]]:
    """(prompt ids, completion ids per completion) as TRL's DPO / KTO trainers tokenize a
    conversational example: the chat template of the prompt with the generation prompt and of prompt
    + each completion, the completion starting where they stop agreeing (``common_prefix_length``).
    The tests compare it with the trainers' own datasets and collators."""
    from trl.data_utils import _tokenize, common_prefix_length

    prompt_ids = _tokenize(tokenizer, prompt, add_generation_prompt=True, tools=None)["input_ids"]
    full = [_tokenize(tokenizer, prompt + c, tools=None)["input_ids"] for c in completions]
    n = min(common_prefix_length(prompt_ids, f) for f in full)
    return prompt_ids[:n], [f[n:] for f in full]


def _sequence(prompt: list[int], completion: list[int], max_length: int) -> tuple[list[int], list[int]]:
    """Prompt + completion cut at ``max_length`` (TRL's keep_start), the prompt's labels -100."""
    ids = (list(prompt) + list(completion))[:max_length]
    labels = ([IGNORE_INDEX] * len(prompt) + list(completion))[:max_length]
    return ids, labels


def _assistant(text: str) -> list:
    return [{"role": "assistant", "content": text}]


def _dpo_row(row: dict) -> dict:
    return {"prompt": row["prompt"], "chosen": _assistant(row["chosen"]), "rejected": _assistant(row["rejected"])}


def _kto_row(row: dict) -> dict:
    return {"prompt": row["prompt"], "completion": _assistant(row["completion"]), "label": bool(row["label"])}


def to_messages(bundle):
    """Good answers as conversations: prompt + chosen (pairs) or prompt + completion (label true)."""
    train, eval_ = bundle.train, bundle.eval

    def conv(ds):
        if ds is None:
            return None
        if bundle.kind == "preference":
            ds = ds.map(lambda r: {"messages": list(r["prompt"]) + _assistant(r["chosen"])},
                        remove_columns=ds.column_names)
        elif bundle.kind == "labeled":
            ds = ds.filter(lambda r: bool(r["label"]))
            ds = ds.map(lambda r: {"messages": list(r["prompt"]) + _assistant(r["completion"])},
                        remove_columns=ds.column_names)
        return ds

    return type(bundle)(**{**bundle.__dict__, "kind": "messages", "train": conv(train), "eval": conv(eval_)})


def _frozen_copy(model):
    """The reference policy for full fine-tuning: a frozen copy of the starting weights (in memory,
    so models converted from GGUF or built for --smoke need no path)."""
    import copy

    ref = copy.deepcopy(model)
    ref.eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref


def _drop_ref_adapter(model):
    """DPO adds a frozen "ref" copy of the LoRA adapter; it is not part of the result."""
    cfg = getattr(model, "peft_config", None)
    if isinstance(cfg, dict) and "ref" in cfg and len(cfg) > 1:
        model.delete_adapter("ref")
    return model


def create(options: dict | None = None) -> ToneStrategy:
    return ToneStrategy(options)
