"""Reasoning: reinforcement learning with verifiable rewards (GRPO family) on TRL's trainers.

Each training row is a conversation whose last assistant turn is the reference: the prompt is the
conversation before it, and the ``[[reward]]`` tables (:func:`sftkit.rewards.build_rewards`) score
every sampled completion against the row (the reference through
:func:`sftkit.evaluation.base.item_expected`, plus the row's other columns: ``tests``,
``entry_point``..., kept by the data stage because the registration says ``row_fields=True``).

- ``method = "grpo"``: ``trl.GRPOTrainer`` with its ``loss_type`` (grpo, dapo, dr_grpo, bnpo, ...);
  ``"rloo"``: ``trl.RLOOTrainer``. ``beta > 0`` keeps a frozen reference (LoRA: the adapter switched
  off; full fine-tuning: an in-memory copy of the starting weights, so GGUF and ``--smoke`` models
  need no path).
- Sampling is exact to the softmax at ``temperature`` and reproducible per completion: completion
  ``i`` of the global batch at step ``s`` draws its noise from its own generator seeded by
  (seed, s, i) (inverse CDF), so ``--nproc 2`` samples what one process samples and a resumed run
  what the killed one would have.
- Per step, the run's ``train_log.jsonl`` and ``metrics.json`` (``train.reasoning``) hold each
  reward's mean, the reward spread within groups, the share of groups with no spread (no learning
  signal), completion length and the share cut at ``max_completion_length``, and KL when ``beta > 0``.
"""

from __future__ import annotations

import math
from typing import Any

from sftkit.errors import DataError, SftkitError

from .base import CausalStrategy

SHARE_PROMPTS = True  # a group's prompt computed once when sampling and scoring (shared_prompt); tests and
# benchmarks switch it off to compare with computing every row whole, as TRL does
ROW_INDEX = "sftkit_row"  # the dataset column naming the row a prompt came from (rewards get the row itself)

# TRL's log keys -> metrics.json train.reasoning per-step keys
LOG_KEYS = {"reward": "reward", "reward_group_std": "reward_group_std", "frac_reward_zero_std": "zero_std_share",
            "completions/mean_length": "length_mean", "completions/clipped_ratio": "clipped_share",
            "kl": "kl", "entropy": "entropy", "loss": "loss"}


def split_row(row: dict) -> tuple[list, dict]:
    """(prompt, reward row) of a converted ``messages`` record: the conversation before its last
    assistant turn, and the row with its kept columns unpacked, ``expected`` set to the reference
    when the data gives none (the first of the evaluators' expected fields, else that last turn)."""
    from sftkit.evaluation.base import item_expected
    from sftkit.records import row_fields

    full = row_fields(row)
    msgs = list(full.get("messages") or [])
    last = max((i for i, m in enumerate(msgs) if m.get("role") == "assistant"), default=len(msgs))
    prompt = msgs[:last]
    if full.get("expected") is None:
        full["expected"] = item_expected(full, {})
    return prompt, full


def group_std(rewards, num_generations: int) -> float:
    """Mean over groups of the standard deviation of the total reward within the group (NaN: unscored)."""
    values = [float(v) for v in rewards]
    out = []
    for start in range(0, len(values), num_generations):
        g = [v for v in values[start:start + num_generations] if not math.isnan(v)]
        if len(g) > 1:
            m = sum(g) / len(g)
            out.append((sum((v - m) ** 2 for v in g) / (len(g) - 1)) ** 0.5)
    return sum(out) / len(out) if out else float("nan")


class RewardFunc:
    """A :class:`sftkit.rewards.BoundReward` in TRL's reward-function shape: TRL passes the prompts,
    the completions (message lists for conversations), the dataset columns and the trainer state;
    the reward gets the prompts, the completion texts, the rows they came from and the step. What
    it does wrong is its own one-line error (the BoundReward checks it)."""

    def __init__(self, bound, rows: list[dict]):
        self.bound = bound
        self.rows = rows
        self.stops: set = set()  # end-of-turn ids: a completion not ending in one was cut at the limit
        self.__name__ = bound.label  # TRL's metric name: rewards/<label>/mean

    def __call__(self, prompts, completions, completion_ids=None, trainer_state=None, **columns):
        texts = [c[-1]["content"] if isinstance(c, list) and c else c for c in completions]
        ids = completion_ids if completion_ids is not None else [None] * len(texts)
        rows = [{**self.rows[int(i)], "truncated": cut(c, self.stops)} for i, c in zip(columns[ROW_INDEX], ids)]
        step = int(getattr(trainer_state, "global_step", 0) or 0)
        return self.bound(list(prompts), texts, rows, step)


def cut(ids, stops: set) -> bool:
    """Whether a completion (token ids) was cut at the length limit: it does not end at an end-of-turn id."""
    return ids is not None and not (len(ids) and int(ids[-1]) in stops)


class ReasoningStrategy(CausalStrategy):
    name = "reasoning"

    def opt(self, key: str) -> Any:
        """An option; where not given, its default as the registration's schema declares it, filled
        by :func:`sftkit.config.fill` (the one function that fills defaults)."""
        filled = self.__dict__.get("_filled")
        if filled is None:
            from sftkit.builtin.strategies import REASONING
            from sftkit.config import fill

            filled = self.__dict__["_filled"] = fill(REASONING, {k: v for k, v in self.options.items()
                                                               if v is not None})
        return filled.get(key)

    # -- data --------------------------------------------------------------------
    def check_data(self, bundle) -> None:
        rows = bundle.train
        if rows is not None and len(rows):
            prompt, _row = split_row(rows[0])
            if not prompt:
                raise DataError("a reasoning row needs a prompt before its answer (the conversation starts with "
                                "the assistant turn)", where="[[data]]",
                                hint="give prompt/completion pairs or conversations that start with a user turn")

    def prompts_and_rows(self, ds, formatter=None) -> tuple[list, list]:
        """(prompts, reward rows) of the training rows; ``formatter`` adds what the run's template adds
        to every conversation (its ``[template] system`` prompt), as evaluation does."""
        pairs = [split_row(r) for r in ds]
        prompts = [formatter.prepare_messages(p) if formatter is not None else p for p, _ in pairs]
        return prompts, [r for _, r in pairs]

    def rewards(self, run) -> list:
        """The recipe's ``[[reward]]`` tables, built (one line for a missing or broken one)."""
        from sftkit.rewards import build_rewards

        built = build_rewards(run.config.rewards, base_dir=run.base_dir, plugins=run.host)
        if not built:
            raise SftkitError("the reasoning strategy needs at least one [[reward]] table", where="[[reward]]",
                              hint='add [[reward]] name = "numeric_answer" (sftkit plugins lists the rewards)')
        return built

    # -- training ----------------------------------------------------------------
    def world_size(self, run) -> int:
        from sftkit.run.distributed import world_of

        return int(world_of(run).size)

    def check_batch(self, run) -> None:
        """``num_generations`` must divide the global batch (completions per optimizer step)."""
        t, n = run.training, int(self.opt("num_generations"))
        world = self.world_size(run)
        total = int(t.per_device_train_batch_size) * int(t.gradient_accumulation_steps) * world
        if total % n:
            raise SftkitError(f"num_generations = {n} does not divide the global batch of {total} completions "
                              f"(per_device_train_batch_size {t.per_device_train_batch_size} x "
                              f"gradient_accumulation_steps {t.gradient_accumulation_steps} x {world} process(es))",
                              where="[strategy] num_generations",
                              hint="make per_device_train_batch_size x gradient_accumulation_steps x processes a "
                                   "multiple of num_generations")

    def train(self, run):
        from sftkit.modeling.stops import stop_token_ids
        from sftkit.models import is_adapter

        from .trainer import callbacks, fit, training_arguments

        self.check_batch(run)
        if self.opt("use_vllm"):
            require_vllm()
        bound = self.rewards(run)
        prompts, rows = self.prompts_and_rows(run.data.train, run.formatter)
        from sftkit.rewards import check_columns

        check_columns(bound, set().union(*(r.keys() for r in rows)), where="the training rows")
        model, tokenizer = self.load(run)
        model = self.prepare_model(run, model)
        model.generation_config.eos_token_id = stop_token_ids(model, tokenizer)  # stop at the end of the turn
        from datasets import Dataset

        train = Dataset.from_dict({"prompt": prompts, ROW_INDEX: list(range(len(rows)))})
        method = self.opt("method")
        beta = float(self.opt("beta"))
        copy_ref = beta > 0 and not is_adapter(model)
        Config, Base = trl_classes(method)
        extra = self.trl_options(method, beta=0.0 if copy_ref else beta)
        extra["reward_weights"] = [b.weight for b in bound]
        extra["logging_steps"] = 1  # per-step reward curves
        cls = trainer_class(Base)
        funcs = [RewardFunc(b, rows) for b in bound]
        try:
            args = training_arguments(run, rows=len(train) * int(self.opt("num_generations")), has_eval=False,
                                      config_cls=Config, **extra)
            trainer = cls(model=model, reward_funcs=funcs, args=args, train_dataset=train,
                          processing_class=tokenizer, callbacks=callbacks(run))
        except ValueError as exc:  # TRL's own checks of a combination sftkit did not foresee: one line
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SftkitError(f"TRL's {Base.__name__} refused these settings: {first}", where="[strategy]",
                              hint="change the setting it names (sftkit schema shows the reasoning options)") from exc
        for f in funcs:
            f.stops = set(trainer.eos_token_ids)
        if copy_ref:
            attach_reference(trainer, model, beta)
        from .collate import TokenCounter

        trainer.sftkit_counter = counter = TokenCounter()
        result = fit(run, trainer, tokenizer=tokenizer, counter=counter)
        result.metrics["reasoning"] = {
            "method": method, **({"loss_type": args.loss_type} if method == "grpo" else {}),
            "num_generations": args.num_generations, "max_completion_length": args.max_completion_length,
            "temperature": args.temperature, "beta": beta,
            "rewards": [{"label": b.label, "name": b.name, "plugin": b.plugin, "weight": b.weight,
                         "judges": judges(b)} for b in bound],
            "per_step": per_step(result.log_history, [b.label for b in bound]),
        }
        return result

    def trl_options(self, method: str, *, beta: float) -> dict:
        """The strategy's options as TRL config fields (``method`` picks GRPOConfig or RLOOConfig)."""
        out = {"num_generations": int(self.opt("num_generations")),
               "max_completion_length": int(self.opt("max_completion_length")),
               "temperature": float(self.opt("temperature")), "top_p": float(self.opt("top_p")),
               "beta": beta, "epsilon": float(self.opt("epsilon")),
               "mask_truncated_completions": bool(self.opt("mask_truncated_completions")), "disable_dropout": True,
               "num_iterations": int(self.opt("num_iterations")), "use_vllm": bool(self.opt("use_vllm")),
               "shuffle_dataset": True, "log_completions": False}
        if self.options.get("epsilon_high") is not None:
            out["epsilon_high"] = float(self.options["epsilon_high"])
        if self.opt("use_vllm"):
            out["vllm_mode"] = "colocate"
        if method == "grpo":
            out["loss_type"] = str(self.opt("loss_type"))
            out["scale_rewards"] = str(self.opt("scale_rewards"))
        else:
            out["normalize_advantages"] = str(self.opt("scale_rewards")) != "none"
        return out

    # -- preview -----------------------------------------------------------------
    def preview_encode(self, run, split: str = "train") -> list[dict] | None:
        """The prompts exactly as generation sees them (chat template with the generation prompt, as
        TRL tokenizes them; nothing is trained on them: the model's own samples are) and, per reward,
        what it compares each completion against."""
        ds = run.data.train if split == "train" else run.data.eval
        if ds is None or not len(ds):
            return None
        try:
            bound = self.rewards(run)
        except SftkitError:
            bound = []
        out = []
        for record in ds:
            prompt, row = split_row(record)
            ids = generation_prompt_ids(run.tokenizer, run.formatter.prepare_messages(prompt))
            out.append({"input_ids": ids, "labels": None, "source": record.get("source"),
                        "cluster": record.get("cluster"),
                        "rewards": {b.label: reward_target(b, row) for b in bound}})
        return out


def judges(bound) -> str:
    """"answer" for a reward that reads the row (compares with a reference, runs its tests), "form"
    for one that reads only the completion (a format, JSON or length reward): the report's hacking
    check watches form rising while answers do not."""
    return "answer" if bound.reads else "form"


def reward_target(bound, row: dict) -> str:
    """What a reward compares a completion against for ``row``: its own ``target(row)`` when it has
    one, else the columns it reads (the first present of each), else its options (a form reward)."""
    describe = getattr(bound.reward, "target", None)
    if callable(describe):
        return str(describe(row))
    if not bound.reads:
        opts = ", ".join(f"{k} = {v!r}" for k, v in (getattr(bound.reward, "options", None) or {}).items()
                         if v is not None and v is not False)
        return "the completion alone" + (f" ({opts})" if opts else "")
    parts = []
    for names in bound.reads:
        key = next((k for k in ((names,) if isinstance(names, str) else names) if row.get(k) is not None), None)
        if key is not None:
            value = row[key]
            if key == "messages" and isinstance(value, list) and value:
                value = value[-1].get("content")
            parts.append(f"{key}: {value}")
    return "; ".join(parts) or "(no column it reads is in this row)"


def generation_prompt_ids(tokenizer, prompt: list) -> list[int]:
    """The token ids TRL generates from for a conversational prompt (its ``_tokenize_prompts``)."""
    out = tokenizer.apply_chat_template(conversation=[prompt], add_generation_prompt=True, tokenize=True,
                                        return_dict=True)
    return list(out["input_ids"][0])


def per_step(log_history: list, labels: list[str]) -> list[dict]:
    """The per-step RL numbers from the trainer's log: each reward's mean, the total reward, its
    spread within groups, the share of groups without spread, completion length, the share clipped,
    KL (when logged)."""
    out = []
    for e in log_history or []:
        if not isinstance(e, dict) or "reward" not in e:
            continue
        entry: dict = {"step": e.get("step")}
        for key, name in LOG_KEYS.items():
            if isinstance(e.get(key), (int, float)):
                entry[name] = e[key]
        entry["rewards"] = {lab: e.get(f"rewards/{lab}/mean") for lab in labels}
        out.append(entry)
    return out


def require_vllm() -> None:
    """``use_vllm = true`` needs vLLM installed (and a GPU): one line where it is not."""
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        raise SftkitError("use_vllm = true needs vLLM, which is not installed", where="[strategy] use_vllm",
                          hint="pip install vllm (GPU machines only), or remove use_vllm: generation then uses "
                               "transformers with a KV cache")


def trl_classes(method: str) -> tuple:
    if method == "rloo":
        from trl import RLOOConfig, RLOOTrainer

        return RLOOConfig, RLOOTrainer
    from trl import GRPOConfig, GRPOTrainer

    return GRPOConfig, GRPOTrainer


def attach_reference(trainer, model, beta: float) -> None:
    """Full fine-tuning with ``beta > 0``: the reference is a frozen in-memory copy of the starting
    weights (TRL would reload the model from its path, which GGUF-converted and ``--smoke`` models
    do not have), prepared as TRL prepares its own."""
    from trl.trainer.utils import add_fused_lm_head

    from .tone import _frozen_copy

    ref = _frozen_copy(model)
    cast = {"cast_lm_head_to_fp32": True} if getattr(trainer.args, "cast_lm_head_to_fp32", False) else {}
    add_fused_lm_head(ref, temperature=trainer.temperature, **cast)
    trainer.ref_model = trainer.accelerator.prepare_model(ref, evaluation_mode=True)
    trainer.beta = trainer.args.beta = beta


def trainer_class(base) -> Any:
    """sftkit's trainer over TRL's ``base`` (GRPOTrainer / RLOOTrainer) with per-completion seeded
    sampling and the within-group reward spread logged."""
    import inspect

    import torch

    from .trainer import make_trainer_class

    parent = make_trainer_class(base)
    # GRPO's _generate_single_turn returns (completion ids, logprobs), RLOO's the ids alone
    pairs = "num_generations" in inspect.signature(base._generate_single_turn).parameters

    class SftkitRLTrainer(parent):
        sftkit_share_prompts = SHARE_PROMPTS

        def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
            out = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
            mode = "train" if self.model.training else "eval"
            weights = self.reward_weights.to(out.device).unsqueeze(0)
            total = (out * weights).nansum(dim=1)
            total[torch.isnan(out).all(dim=1)] = torch.nan
            n = self.num_generations if mode == "train" else getattr(self, "num_generations_eval", self.num_generations)
            self._metrics[mode]["reward_group_std"].append(group_std(total.tolist(), n))
            return out

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            counter = self.sftkit_counter
            if counter is not None and model.training and isinstance(inputs, dict) and "completion_ids" in inputs:
                # tokens of the micro-batch (prompt + sampled completion): the run's and sftkit plan's count
                counter.add_batch({"input_ids": torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], 1),
                                   "attention_mask": torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], 1),
                                   "completion_mask": inputs["completion_mask"]})
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

        def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep,
                                               batch_size=None, compute_entropy=False, compute_aux_loss=False,
                                               **extra):
            # each prompt once per group (shared_prompt); TRL's own path for what it does not cover
            if self.sftkit_share_prompts and not compute_aux_loss and all(v is None for v in extra.values()):
                from .shared_prompt import completion_logps

                size = batch_size or input_ids.size(0)
                parts = []
                for start in range(0, input_ids.size(0), size):
                    with self.accelerator.autocast():
                        got = completion_logps(model, input_ids[start:start + size],
                                               attention_mask[start:start + size], logits_to_keep,
                                               compute_entropy=compute_entropy)
                    if got is None:
                        break
                    parts.append(got)
                else:
                    logps = torch.cat([p[0] for p in parts])
                    entropies = torch.cat([p[1] for p in parts]) if compute_entropy else None
                    return logps, entropies, None
            return super()._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, batch_size=batch_size,
                compute_entropy=compute_entropy, compute_aux_loss=compute_aux_loss, **extra)

        def _generate_single_turn(self, prompt_ids, images, multimodal_fields, *rest, **kw):
            # GRPO passes num_generations (and has_tool_images), RLOO does not
            if (self.use_vllm or images is not None or multimodal_fields
                    or getattr(self, "use_transformers_continuous_batching", False)):
                return super()._generate_single_turn(prompt_ids, images, multimodal_fields, *rest, **kw)
            ids, logprobs = seeded_generate(self, prompt_ids)
            return (ids, logprobs) if pairs else ids

    SftkitRLTrainer.__name__ = f"Sftkit{base.__name__}"
    return SftkitRLTrainer


def seeded_generate(trainer, prompt_ids: list[list[int]]) -> tuple[list[list[int]], None]:
    """Sample one completion per prompt with transformers' ``generate`` (KV cache, left padding,
    stopping at the end-of-turn ids; a prompt repeated for its group prefilled once), each row's
    noise from its own generator seeded by (seed, step, the row's index in the global batch): inverse-CDF sampling from the temperature-scaled,
    top-p filtered distribution (:class:`SeededSampler`)."""
    import copy

    import torch
    from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper
    from trl.models import unwrap_model_for_generation
    from trl.trainer.utils import pad

    from .shared_prompt import applies, prefilled_cache, prompt_groups

    device = trainer.accelerator.device
    tok = trainer._tokenizer
    tensors = [torch.tensor(ids) for ids in prompt_ids]
    ids = pad(tensors, padding_value=tok.pad_token_id, padding_side="left")
    mask = pad([torch.ones_like(t) for t in tensors], padding_value=0, padding_side="left")
    offset = trainer.accelerator.process_index * len(prompt_ids)
    seeds = [hash_seed(trainer.args.seed, trainer.state.global_step, offset + i) for i in range(len(prompt_ids))]
    processors = []
    if trainer.temperature != 1.0:
        processors.append(TemperatureLogitsWarper(trainer.temperature))
    if trainer.top_p is not None and trainer.top_p < 1.0:
        processors.append(TopPLogitsWarper(trainer.top_p))
    processors.append(SeededSampler(seeds))
    config = copy.deepcopy(trainer.generation_config)
    config.do_sample = False
    for key in ("temperature", "top_p", "top_k", "min_p"):
        setattr(config, key, None)
    with (unwrap_model_for_generation(trainer.model_wrapped, trainer.accelerator,
                                      gather_deepspeed3_params=trainer.args.ds3_gather_for_generation,
                                      generation_kwargs=trainer.generation_kwargs,
                                      gradient_checkpointing_kwargs=trainer.args.gradient_checkpointing_kwargs)
          as model, torch.no_grad()):
        ids, mask = ids.to(device), mask.to(device)
        shared = {}
        share = getattr(trainer, "sftkit_share_prompts", False) and applies(model)
        groups = prompt_groups(ids, mask) if share else None
        if groups is not None and ids.size(1) > 1:  # each distinct prompt prefilled once, its cache shared
            positions = (mask.long().cumsum(-1) - 1).masked_fill_(mask == 0, 1)  # as generate numbers them
            shared["cache"] = prefilled_cache(model, ids[:, :-1], mask[:, :-1], *groups, position_ids=positions[:, :-1])
        out = model.generate(input_ids=ids, attention_mask=mask, generation_config=config,
                             logits_processor=LogitsProcessorList(processors), **shared)
    completion = out[:, ids.size(1):].cpu()
    eos = torch.isin(completion, torch.tensor(trainer.eos_token_ids))
    result = []
    for row, stop in zip(completion.tolist(), eos.tolist()):
        end = stop.index(True) + 1 if True in stop else len(row)
        result.append(row[:end])
    return result, None


def hash_seed(*parts: int) -> int:
    import hashlib

    digest = hashlib.blake2b(repr(tuple(int(p) for p in parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


class SeededSampler:
    """A logits processor that samples each row's next token by inverse CDF with one uniform number
    drawn from that row's own generator, and leaves only that token possible: greedy decoding of the
    result samples exactly from softmax of the (already scaled and filtered) logits, one random
    number per row and token (noise over the whole vocabulary would cost as much as the model)."""

    def __init__(self, seeds: list[int]):
        import torch

        self.generators = [torch.Generator().manual_seed(s) for s in seeds]

    def __call__(self, input_ids, scores):
        import torch

        probs = torch.softmax(scores.float(), dim=-1)
        cdf = probs.cumsum(dim=-1)
        u = torch.cat([torch.rand(1, generator=g) for g in self.generators]).to(scores.device)
        target = (u * cdf[:, -1]).unsqueeze(1)
        picked = torch.searchsorted(cdf, target, right=True).clamp_(max=scores.size(-1) - 1)
        # never a token of probability 0 (a cdf that stopped rising): step back to the last one that rose
        zero = probs.gather(1, picked) <= 0
        if bool(zero.any()):
            last = (probs > 0).float().cumsum(dim=-1).argmax(dim=-1, keepdim=True)
            picked = torch.where(zero, last, picked)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(1, picked, 0.0)


def create(options: dict | None = None) -> ReasoningStrategy:
    return ReasoningStrategy(options)
