"""The shared training loop: transformers' Trainer with sftkit's batching, logging and saving.

- :func:`training_arguments` maps the recipe's ``[training]`` table onto ``TrainingArguments``
  (or a TRL config class), with sftkit's defaults: checkpoints in ``RUN_DIR/checkpoints``, no
  gradient checkpointing, reporting only to ``[training] report_to``, seeded everything.
- :func:`callbacks`: the live log, trackers and the callbacks plugins add (``sftkit_training_callbacks``).
- :class:`SftkitTrainer` adds length-grouped batching that is deterministic per epoch (so
  ``--resume`` replays the same data order), counts trained / padding tokens and computes a causal
  LM's loss in chunks where that is exact (:mod:`sftkit.strategies.loss`).
- :func:`fit` trains (resuming from the last complete checkpoint when asked), evaluates the eval
  split (``[training] eval_strategy``, ``eval_max_rows``), saves the model (LoRA merged when
  ``[adapter] merge = true``) and returns a
  :class:`sftkit.api.TrainResult` with throughput numbers.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

from sftkit.config import Training

from .collate import TokenCounter

# keys of [training] passed straight to TrainingArguments
PASSTHROUGH = (
    "max_steps", "num_train_epochs", "per_device_train_batch_size", "per_device_eval_batch_size",
    "gradient_accumulation_steps", "learning_rate", "lr_scheduler_type", "weight_decay", "max_grad_norm",
    "gradient_checkpointing", "logging_steps", "save_total_limit", "optim",
)
STEP_SLEEP_ENV = "SFTKIT_STEP_SLEEP"  # seconds to sleep after each optimizer step (tests of --resume)


def planned_steps(training: Training, rows: int) -> int:
    """Optimizer steps a run will take for ``rows`` training rows (``training``: the ``[training]`` slice)."""
    if training.max_steps:
        return int(training.max_steps)
    return max(1, math.ceil(rows / training.per_step_rows) * math.ceil(float(training.num_train_epochs)))


def trainer_eval(training: Training) -> str:
    """When the trainer evaluates its loss on the eval split: "end", "steps" or "no"."""
    if training.eval_strategy:
        return str(training.eval_strategy)
    return "steps" if training.eval_steps else "end"


def training_arguments(run, *, rows: int, has_eval: bool, config_cls: Any = None, **extra) -> Any:
    """Build ``TrainingArguments`` (or ``config_cls``, e.g. ``trl.DPOConfig``) from ``run.training``."""
    from transformers import TrainingArguments

    from sftkit.modeling.precision import for_run

    t = run.training
    kwargs: dict = {k: getattr(t, k) for k in PASSTHROUGH if getattr(t, k) is not None}
    kwargs.setdefault("gradient_checkpointing", False)
    cls = config_cls or TrainingArguments
    if "activation_checkpointing" in getattr(cls, "__dataclass_fields__", {}):  # transformers >= 5 name
        kwargs["activation_checkpointing"] = kwargs.pop("gradient_checkpointing")
    if t.compile:
        check_compiler()
        kwargs["torch_compile"] = True  # inductor; accelerate wraps the model before the first step
    if kwargs.get("max_steps") is None:
        kwargs["max_steps"] = -1
    warmup = t.warmup_steps
    if warmup is None and t.warmup_ratio:
        warmup = float(t.warmup_ratio)  # transformers 5: warmup_steps < 1 is a ratio
    if warmup is not None:
        kwargs["warmup_steps"] = warmup
    steps = planned_steps(t, rows)
    from sftkit.run.checkpoints import save_every

    save_steps = save_every(t, steps)
    seed = int(t.seed) if t.seed is not None else run.seed
    precision = for_run(run)
    eval_steps = t.eval_steps
    if trainer_eval(t) != "steps":
        eval_steps = None
    kwargs.update(
        output_dir=str(run.run_dir / "checkpoints"),
        save_strategy="steps",
        save_steps=save_steps,
        eval_strategy="steps" if (has_eval and eval_steps) else "no",
        logging_first_step=True,
        report_to=[r for r in report_targets(t) if r != "tensorboard"],  # tensorboard: callbacks()
        seed=seed,
        data_seed=seed,
        **precision.training_flags(),
        use_cpu=precision.device == "cpu",
        remove_unused_columns=False,
        dataloader_num_workers=0,
        disable_tqdm=bool(os.environ.get("SFTKIT_NO_PROGRESS")),
    )
    if has_eval and eval_steps:
        kwargs["eval_steps"] = int(eval_steps)
    from sftkit.run.checkpoints import trainer_kwargs

    kwargs.update(trainer_kwargs(t, evaluates=bool(has_eval and eval_steps)))
    from sftkit.run.distributed import training_kwargs, world_of

    kwargs.update(training_kwargs(run.config.distributed, world_of(run), base_dir=run.base_dir))
    kwargs.update(extra)
    return cls(**kwargs)


def check_compiler() -> None:
    """``[training] compile = true`` needs a C++ compiler (inductor builds its kernels with it): one line
    before anything trains when there is none."""
    import shutil

    from sftkit.errors import SftkitError

    if not any(shutil.which(c) for c in (os.environ.get("CXX") or "", "g++", "c++", "clang++") if c):
        raise SftkitError("compile = true needs a C++ compiler for torch.compile, and none is on PATH "
                          "(g++, c++, clang++ or $CXX)", where="[training] compile",
                          hint="install one (apt-get install g++) or remove training.compile")


class GroupedSampler:
    """Length-grouped sampling, seeded by (seed, epoch): rows of similar length share a batch and
    batches come in random order. Deterministic per epoch, so a resumed run sees the same data.

    ``batch_size`` is the global batch of one optimizer step (per device × accumulation × processes).
    With several processes, accelerate hands consecutive per-device slices of this order to the
    ranks in turn, so each rank gets different, equally sized, length-grouped batches, and the rows
    of each optimizer step are exactly those one process with the same global batch would train on.
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int, mega_batch_mult: int = 50):
        self.lengths = list(lengths)
        self.batch_size = max(1, batch_size)
        self.seed = seed
        self.mega = mega_batch_mult * self.batch_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        import torch

        g = torch.Generator()
        g.manual_seed(self.seed * 1000003 + self.epoch)
        perm = torch.randperm(len(self.lengths), generator=g).tolist()
        batches = []
        for start in range(0, len(perm), self.mega):
            mega = sorted(perm[start:start + self.mega], key=lambda i: -self.lengths[i])
            batches += [mega[i:i + self.batch_size] for i in range(0, len(mega), self.batch_size)]
        order = torch.randperm(len(batches), generator=g).tolist()
        return iter([i for b in order for i in batches[b]])


def make_trainer_class(base: Any = None) -> Any:
    """A subclass of ``base`` (default transformers.Trainer) with grouped batching and token counts."""
    from transformers import Trainer

    base = base or Trainer

    class SftkitTrainer(base):
        sftkit_lengths: list | None = None
        sftkit_counter: TokenCounter | None = None
        sftkit_loss = None  # a strategies.loss.ChunkedLoss: the causal-LM loss without full logits

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            logs_to_stderr(self)

        def _get_train_sampler(self, train_dataset=None):
            lengths = self.sftkit_lengths
            if lengths is not None:
                bs = (self.args.per_device_train_batch_size * self.args.gradient_accumulation_steps
                      * self.args.world_size)
                return GroupedSampler(lengths, bs, self.args.data_seed or self.args.seed)
            return super()._get_train_sampler(train_dataset)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            chunked = self.sftkit_loss
            if (chunked is not None and not return_outputs and model.training and "labels" in inputs
                    and self.label_smoother is None and self.compute_loss_func is None
                    and chunked.decide(model, inputs)):
                from .loss import LossModel

                model = LossModel(model, chunked)  # the trainer's handling around the loss stays its own
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

        def training_step(self, model, inputs, num_items_in_batch=None):
            if self.sftkit_counter is not None and "input_ids" in inputs:
                self.sftkit_counter.add_batch(inputs)
            return super().training_step(model, inputs, num_items_in_batch)

    SftkitTrainer.__name__ = f"Sftkit{base.__name__}"
    return SftkitTrainer


def report_targets(training: Training) -> list[str]:
    """``[training] report_to``: the transformers integrations that receive the run's logs."""
    return [str(r) for r in (training.report_to or [])]


def _trackers(run) -> list:
    """Tracker set-up beyond ``report_to``: TensorBoard event files in ``RUN_DIR/logs/tensorboard``
    (not among the checkpoints), wandb offline in the run directory unless configured otherwise."""
    targets = report_targets(run.training)
    out = []
    if "tensorboard" in targets:
        from torch.utils.tensorboard import SummaryWriter
        from transformers.integrations import TensorBoardCallback

        out.append(TensorBoardCallback(tb_writer=SummaryWriter(log_dir=str(run.run_dir / "logs" / "tensorboard"))))
    if "wandb" in targets:
        os.environ.setdefault("WANDB_MODE", "offline")
        os.environ.setdefault("WANDB_DIR", str(run.run_dir / "logs"))
        (run.run_dir / "logs").mkdir(parents=True, exist_ok=True)
    return out


def _log_line(state, logs: dict) -> str:
    parts = [f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in (logs or {}).items()
             if k != "total_flos"]
    return f"step {state.global_step}: " + ", ".join(parts)


def logs_to_stderr(trainer) -> None:
    """The trainer's log lines go to stderr (stdout holds sftkit's summary alone), one readable line
    per log; none with ``SFTKIT_NO_PROGRESS`` (``--quiet``): train_log.jsonl has them all."""
    import sys

    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    class StderrProgress(ProgressCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if state.is_world_process_zero and self.training_bar is not None:
                self.training_bar.write(_log_line(state, logs), file=sys.stderr)

    class StderrPrinter(PrinterCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if state.is_local_process_zero and not os.environ.get("SFTKIT_NO_PROGRESS"):
                print(_log_line(state, logs), file=sys.stderr)

    for cb in list(trainer.callback_handler.callbacks):
        if type(cb) is ProgressCallback:
            trainer.remove_callback(cb)
            trainer.add_callback(StderrProgress())
        elif type(cb) is PrinterCallback:
            trainer.remove_callback(cb)
            trainer.add_callback(StderrPrinter())


def callbacks(run) -> list:
    """Callbacks every sftkit trainer gets: live train_log.jsonl, trackers, plugins' callbacks
    (``sftkit_training_callbacks``), optional per-step sleep."""
    from transformers import TrainerCallback

    log_path = run.run_dir / "train_log.jsonl"

    class JsonlLog(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if logs and state.is_world_process_zero:
                entry = {"step": state.global_step, "epoch": state.epoch, **logs}
                with open(log_path, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(entry, default=float) + "\n")

    clock: list = run.step_seconds

    class StepClock(TrainerCallback):
        """Wall seconds of each optimizer step (``sftkit plan`` calibrates with them)."""

        def on_step_begin(self, args, state, control, **kw):
            self.began = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            clock.append(time.perf_counter() - self.began)

    class StepReached(TrainerCallback):  # for "stopped at step N" on Ctrl-C
        def on_step_end(self, args, state, control, **kw):
            run.step = state.global_step

    class StepSleep(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            time.sleep(float(os.environ.get(STEP_SLEEP_ENV, "0") or 0))

    out = [JsonlLog(), StepReached(), StepClock(), *_trackers(run)]
    from sftkit.plugins import hook_results

    for plugin, contributed in hook_results(getattr(run, "host", None), "sftkit_training_callbacks", run=run):
        out.extend(guarded_callback(cb, plugin) for cb in contributed or [])
    if os.environ.get(STEP_SLEEP_ENV):
        out.append(StepSleep())
    return out


def guarded_callback(callback, plugin: str):
    """``callback`` (a plugin's TrainerCallback) with every event method made to stop the run with a
    one-line :class:`PluginError` naming the plugin, the callback and the event when it raises."""
    from transformers import TrainerCallback

    from sftkit.errors import PluginError, SftkitError

    if not isinstance(callback, TrainerCallback):
        raise PluginError(f"plugin {plugin!r} returned {callback!r} from sftkit_training_callbacks, not a "
                          "transformers.TrainerCallback")
    what = f"training callback {type(callback).__name__} of plugin {plugin!r}"

    def guard(event, method):
        def call(*args, **kwargs):
            try:
                return method(*args, **kwargs)
            except SftkitError:
                raise
            except Exception as exc:
                raise PluginError(f"{what} raised in {event}: {type(exc).__name__}: {exc}",
                                  hint="fix or disable that plugin (SFTKIT_DISABLE_PLUGINS)") from exc

        return call

    for event in (n for n in dir(TrainerCallback) if n.startswith("on_")):
        setattr(callback, event, guard(event, getattr(callback, event)))
    return callback


def checkpoint_problem(path: Path) -> str | None:
    """Why the checkpoint directory ``path`` cannot be resumed from (truncated or missing files), or None."""
    import zipfile

    path = Path(path)
    try:
        state = json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
        if not isinstance(state, dict) or not isinstance(state.get("global_step"), int):
            return "trainer_state.json has no global_step"
    except (OSError, ValueError) as exc:
        return f"trainer_state.json is unreadable or truncated ({type(exc).__name__})"
    weights = sorted(path.glob("*.safetensors"))
    if not weights and not list(path.glob("*.bin")):
        return "it holds no model weights"
    for f in weights:
        why = _safetensors_problem(f)
        if why:
            return f"{f.name} {why}"
    for f in sorted(path.glob("*.pt")) + sorted(path.glob("*.pth")):
        try:
            with zipfile.ZipFile(f):  # torch.save's format: a truncated file has no central directory
                pass
        except (OSError, zipfile.BadZipFile):
            return f"{f.name} is truncated or corrupt"
    return None


def _safetensors_problem(path: Path) -> str | None:
    """Whether a .safetensors file is complete: its header parses and its tensors fit in the file."""
    import struct

    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                return "is truncated"
            (n,) = struct.unpack("<Q", head)
            if n > min(size - 8, 100 << 20):
                return "is truncated"
            header = json.loads(fh.read(n))
    except (OSError, ValueError):
        return "is truncated or corrupt"
    end = max((int(v["data_offsets"][1]) for k, v in header.items()
               if k != "__metadata__" and isinstance(v, dict) and "data_offsets" in v), default=0)
    return "is truncated" if 8 + n + end > size else None


def last_checkpoint(run_dir: Path, warn=None) -> str | None:
    """The newest complete checkpoint, or None; ``warn(message)`` hears of each newer one skipped
    because it is truncated or corrupt (a kill while it was written)."""
    ckdir = Path(run_dir) / "checkpoints"
    if not ckdir.is_dir():
        return None
    found = []
    for p in ckdir.iterdir():
        if p.is_dir() and p.name.startswith("checkpoint-") and (p / "trainer_state.json").is_file():
            try:
                found.append((int(p.name.split("-")[1]), p))
            except ValueError:
                continue
    for _, p in sorted(found, reverse=True):
        why = checkpoint_problem(p)
        if why is None:
            return str(p)
        if warn is not None:
            warn(f"warning: skipping {p.name}: {why}")
    return None


def finished_training(checkpoint: str) -> bool:
    """True when ``checkpoint`` was saved at the last step of its training (nothing left to train)."""
    state = json.loads((Path(checkpoint) / "trainer_state.json").read_text(encoding="utf-8"))
    return int(state.get("max_steps") or 0) > 0 and int(state["global_step"]) >= int(state["max_steps"])


def nonfinite_tensors(model) -> list[str]:
    """Names of the model's floating-point tensors holding NaN or inf (a diverged training)."""
    import torch

    return [name for name, t in model.state_dict().items()
            if torch.is_tensor(t) and t.is_floating_point() and not bool(torch.isfinite(t).all())]


def merges_on_save(run) -> bool:
    """Whether a LoRA adapter is merged into the weights it saves: ``[adapter] merge = true``, and
    always in a ``--smoke`` run, whose base is a tiny stand-in that exists nowhere on disk (an adapter
    would name the recipe's real model as its base, which it does not fit)."""
    return bool(run.config.adapter and run.config.adapter.merge) or bool(getattr(run, "smoke", False))


def save_model(run, model, tokenizer) -> tuple[dict, Any]:
    """Save the model (or LoRA adapter; merged into the weights when :func:`merges_on_save`) and
    the tokenizer (with its chat template) into ``run.model_dir``; returns ``(info, saved_model)``."""
    from sftkit.modeling.adapters import merged, merged_dtype
    from sftkit.models import is_adapter, merge_and_save

    merge = merges_on_save(run)
    kind = ("merged" if merge else "adapter") if is_adapter(model) else "full"
    info = {"saved": kind, "model_dir": str(run.model_dir)}
    if is_adapter(model) and merge:
        dequantized = merged_dtype(model)
        if dequantized:
            info["dequantized_to"] = dequantized  # QLoRA: the 4-bit base de-quantized, then merged
        model = merged(model, say=run.console)
    merge_and_save(model, tokenizer, run.model_dir, merge=False, model_section=run.config.model.as_dict(),
                   base_dir=run.base_dir)
    return info, model


def write_log(run_dir: Path, log_history: list) -> None:
    """Rewrite train_log.jsonl from the trainer's full history (complete and duplicate-free after --resume)."""
    path = Path(run_dir) / "train_log.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        for entry in log_history:
            fh.write(json.dumps(entry, default=float) + "\n")


def fit(run, trainer, *, tokenizer, counter: TokenCounter | None = None, save: bool = True, before_save=None):
    """Train (resuming from the last checkpoint with ``run.resume``), evaluate, save; return TrainResult."""
    from sftkit.api import TrainResult

    say = run.console or (lambda msg: None)
    resume_from = last_checkpoint(run.run_dir, warn=say) if run.resume else None
    if run.resume and resume_from is None:
        say("no checkpoint found: starting from the beginning")
    limit = run.training.eval_max_rows
    if limit and trainer.eval_dataset is not None and len(trainer.eval_dataset) > int(limit):
        trainer.eval_dataset = trainer.eval_dataset.select(range(int(limit)))
    from sftkit.plan.memory import GB, peak_bytes, reset_peak

    reset_peak()
    start = time.time()
    if resume_from and finished_training(resume_from):
        # training had ended (the run stopped later): load its result; Trainer.train would take one
        # more step past max_steps
        from transformers import TrainerState

        say(f"training had finished at {resume_from}: continuing after it without another step")
        trainer._load_from_checkpoint(resume_from)
        trainer.state = TrainerState.load_from_json(str(Path(resume_from) / "trainer_state.json"))
        if trainer.args.load_best_model_at_end and trainer.state.best_model_checkpoint:
            trainer._load_best_model()  # what Trainer.train does when it ends
        out_metrics: dict = {}
    else:
        if resume_from:
            say(f"resuming from {resume_from}")
        out_metrics = trainer.train(resume_from_checkpoint=resume_from).metrics or {}
    elapsed = time.time() - start
    peak = peak_bytes()
    metrics: dict = {k: v for k, v in out_metrics.items() if isinstance(v, (int, float))}
    if trainer.eval_dataset is not None and trainer_eval(run.training) != "no":
        ev = trainer.evaluate()
        metrics.update({k: v for k, v in ev.items() if isinstance(v, (int, float))})
    history = list(trainer.state.log_history)
    main = trainer.args.process_index == 0
    if main:
        write_log(run.run_dir, history)
    losses = [e["loss"] for e in history if "loss" in e]
    metrics["steps"] = trainer.state.global_step
    metrics["final_loss"] = losses[-1] if losses else metrics.get("train_loss")
    metrics["resumed_from"] = resume_from
    from sftkit.run.checkpoints import best

    chosen = best(trainer.state)
    if chosen is not None:  # the saved model is this step's, not the last one's
        metrics["best_checkpoint"] = {"metric": trainer.args.metric_for_best_model, **chosen}
        say(f"best {trainer.args.metric_for_best_model} {chosen['value']:.4g} at step {chosen['step']}: "
            "keeping that step's model")
    metrics["compile"] = bool(getattr(trainer.args, "torch_compile", False))
    if getattr(trainer, "sftkit_loss", None) is not None:
        metrics["chunked_loss"] = trainer.sftkit_loss.as_dict()
        trainer.sftkit_loss.close()
    runtime = metrics.get("train_runtime") or elapsed
    if counter is not None:
        run.token_counter = counter
    # peak_memory_gb: what one process needs, the largest over the processes; each rank's beside it
    every = _per_rank(run, round(peak / GB, 3) if peak else None)
    known = [v for v in every if v is not None]
    metrics["peak_memory_gb"] = max(known) if known else None
    if len(every) > 1:
        metrics["peak_memory_gb_per_rank"] = every
    if trainer.args.world_size > 1:  # what the engine really did (accelerate may ignore a strategy it cannot run)
        metrics["sharded_by"] = ("fsdp" if getattr(trainer, "is_fsdp_enabled", False) else
                                 "deepspeed" if getattr(trainer, "is_deepspeed_enabled", False) else None)
    if counter is not None and trainer.args.world_size > 1:
        counter = _all_ranks(counter, run)
    if counter is not None and counter.batches:
        metrics.update(counter.as_dict())
        metrics["trained_tokens_per_second"] = round(counter.trained / runtime, 2) if runtime else None
        metrics["tokens_per_second"] = round(counter.real / runtime, 2) if runtime else None
    model_dir = run.model_dir
    final = trainer.model if before_save is None else before_save(trainer.model)
    if run.parameters is not None:
        metrics["parameters"] = run.parameters
    if save and run.config.output.save_model and weights_sharded(trainer):
        info, final = _save_gathered(run, trainer)
        metrics.update(info)
    elif save and run.config.output.save_model:
        if main:
            info, final = save_model(run, final, tokenizer)
        else:  # the same result without writing: adapter merged in memory where the main process merges
            info, final = None, _unsaved(run, final)
        _sync(trainer)
        if info:
            metrics.update(info)
    return TrainResult(model_dir=model_dir, metrics=metrics, log_history=history, model=final, tokenizer=tokenizer)


def _per_rank(run, value) -> list:
    """``value`` of every process of the run, in rank order (``[value]`` for one process)."""
    from sftkit.run.distributed import gather_lists, world_of

    return gather_lists(world_of(run), [value])


def _all_ranks(counter: TokenCounter, run) -> TokenCounter:
    """The token counts of every process of the run, summed."""
    from sftkit.run.distributed import gather_lists, world_of

    parts = gather_lists(world_of(run), [(counter.trained, counter.real, counter.padded, counter.batches)])
    return TokenCounter(*(sum(p[i] for p in parts) for i in range(4)))


def weights_sharded(trainer) -> bool:
    return bool(getattr(trainer, "is_fsdp_enabled", False) or getattr(trainer, "is_deepspeed_enabled", False))


def _save_gathered(run, trainer) -> tuple[dict, Any]:
    """FSDP / DeepSpeed: every rank takes part in gathering the full weights, the main process writes
    them as a plain transformers directory (as one process would), and every rank then loads that
    directory for evaluation."""
    from sftkit.models import is_adapter, load_trained

    kind = "adapter" if is_adapter(trainer.model) else "full"
    accelerator = trainer.accelerator
    gather, tied = accelerator.get_state_dict, _tied_names(accelerator.unwrap_model(trainer.model))
    accelerator.get_state_dict = lambda model, *a, **kw: _retie(gather(model, *a, **kw), tied)
    try:
        trainer.save_model(str(run.model_dir))  # collective; writes on the main process only
    finally:
        del accelerator.get_state_dict  # the class's own again
    if trainer.args.process_index == 0:
        (run.model_dir / "training_args.bin").unlink(missing_ok=True)  # a pickle one process does not write
        if kind == "adapter":
            from sftkit.modeling.adapters import record_base
            from sftkit.modeling.qlora import record

            record_base(run.model_dir, run.config.model.as_dict(), run.base_dir,
                        quantization=record(accelerator.unwrap_model(trainer.model)))
    _sync(trainer)
    if kind == "adapter" and getattr(run, "smoke", False):
        # the saved adapter names the recipe's model; this run trained on its tiny stand-in (seeded, so
        # loading it again gives the same weights)
        from peft import PeftModel

        base, _tokenizer = run.load_model(run)
        return {"saved": kind, "model_dir": str(run.model_dir)}, PeftModel.from_pretrained(base, run.model_dir).eval()
    model, _tokenizer = load_trained(run.model_dir)
    return {"saved": kind, "model_dir": str(run.model_dir)}, model


def _tied_names(model) -> list[list[str]]:
    """Groups of parameter names that are one tensor (tied weights, e.g. ``lm_head.weight`` and
    ``model.embed_tokens.weight``)."""
    groups: dict[int, list[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(param), []).append(name)
    return [names for names in groups.values() if len(names) > 1]


def _retie(state_dict: dict, tied: list[list[str]]) -> dict:
    """A gathered full state dict with tied weights sharing one tensor again: gathered, they come back
    as separate copies, which transformers would save twice (it drops duplicates by storage)."""
    for names in tied:
        present = [n for n in names if n in state_dict]
        for name in present[1:]:
            state_dict[name] = state_dict[present[0]]
    return state_dict


def _unsaved(run, model):
    from sftkit.models import is_adapter

    if is_adapter(model) and merges_on_save(run):
        from sftkit.modeling.adapters import merged

        return merged(model)
    return model


def _sync(trainer) -> None:
    if trainer.args.world_size > 1:
        trainer.accelerator.wait_for_everyone()  # nobody reads the saved model before it is complete
