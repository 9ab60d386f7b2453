"""The recipe's own keys (everything but the components' options), as JSON Schema.

Component tables ([model], [[data]], [template], [strategy], [[eval]], [[reward]]) get their component's option schema
merged in by :mod:`sftkit.schema`. ``default`` values here are what ``sftkit resolve`` fills in.
"""

from __future__ import annotations

from .backends import BACKENDS
from .backends import DEFAULT as DEFAULT_BACKEND

INT32_MAX = 2**31 - 1  # counts and sizes: what torch and transformers index with
POS_INT = {"type": "integer", "minimum": 1, "maximum": INT32_MAX}
NONNEG_INT = {"type": "integer", "minimum": 0, "maximum": INT32_MAX}
SEED = {"type": "integer", "minimum": 0, "maximum": 2**32 - 1}  # numpy's seed range
POS_NUM = {"type": "number", "exclusiveMinimum": 0}
FRACTION = {"type": "number", "minimum": 0, "maximum": 1}
STR_LIST = {"type": "array", "items": {"type": "string"}}


def _obj(props: dict, required: tuple = (), doc: str = "") -> dict:
    schema = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    if doc:
        schema["description"] = doc
    return schema


RECIPE_SECTION = _obj({
    "name": {"type": "string", "minLength": 1, "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
             "description": "Recipe name (letters, digits, _ . -); used in the run directory."},
    "description": {"type": "string"},
    "seed": {**SEED, "default": 42, "description": "Seed for data splits, shuffling and training."},
    "requires": {**STR_LIST, "description": "Plugin distributions this recipe needs, as requirement strings (e.g. \"sftkit-medical>=0.2\")."},
    "extends": {"type": "string", "description": "A parent recipe: a path relative to this file, package://..., or a shipped recipe's name. Deep-merged under this one."},
    "after": {"type": "array", "items": {"type": "string", "pattern": r"^((run|arena) +)?[^ ]+$"},
              "description": "Earlier steps this recipe builds on, as commands on a recipe (\"run quickstart\", \"arena quickstart\"; a bare name is a run): until they are done, validate notes the paths they make and run refuses."},
}, required=("name",), doc="What this recipe is.")

MODEL_SECTION = _obj({
    "name": {"type": "string", "minLength": 1, "description": "Hub id, local directory, or a .gguf file (path or package://...); what else, the loader says."},
    "loader": {"type": "string", "minLength": 1, "default": "sftkit:transformers",
               "description": "How name is loaded: transformers (hub ids, directories, .gguf files; the default) or a plugin's model loader."},
    "revision": {"type": "string", "description": "Hub revision (branch, tag or commit)."},
    "tokenizer": {"type": "string", "description": "Tokenizer to use instead of the model's (hub id or directory)."},
    "trust_remote_code": {"type": "boolean", "default": False, "description": "Allow code from the model repository to run. Only when you trust it."},
    "dtype": {"enum": ["auto", "float32", "bfloat16", "float16"], "default": "auto",
              "description": "Weights dtype for training; auto = bfloat16 on a GPU that supports it, float32 on CPU."},
}, required=("name",), doc="The model to fine-tune.")

DATA_COMMON = {
    "source": {"type": "string", "minLength": 1, "description": "A registered data source (`sftkit plugins --all` lists them)."},
    "name": {"type": "string", "description": "Display name of this entry in statistics (default: source + path)."},
    "format": {"type": "string", "minLength": 1, "default": "auto",
               "description": "Record format; auto detects it from the fields (`sftkit plugins --all` lists the formats)."},
    "split": {"enum": ["train", "eval", "auto"], "default": "auto",
              "description": "train or eval only, or auto: split by [dataset].eval_fraction."},
    "weight": {**POS_NUM, "maximum": 1e6, "default": 1.0, "description": "Mixing weight relative to the other train entries."},
    "max_rows": {**POS_INT, "description": "Use at most this many rows of this entry, sampled with the recipe's seed (stratified by cluster / label) after reading the whole entry."},
    "columns": {"type": "object", "additionalProperties": {"type": "string"},
                "description": "Rename columns: canonical field -> column in the data (e.g. {prompt = \"question\"})."},
    "cluster_column": {"type": "string", "description": "Column holding a task cluster (for leave-cluster-out evaluation)."},
    "cluster": {"type": "string", "minLength": 1, "description": "Task cluster of every row of this entry (instead of cluster_column)."},
    "on_error": {"enum": ["error", "skip"], "default": "error", "description": "What to do with a bad row: stop with its location, or skip it and count it."},
    "transforms": {"type": "array", "items": {"anyOf": [
        {"type": "string", "minLength": 1},
        {"type": "object", "required": ["name"], "properties": {"name": {"type": "string", "minLength": 1}}}]},
        "description": "Record transforms applied in order to each converted record: a name, or a table "
                       "{name = \"...\", option = ...} (`sftkit plugins --all` lists them)."},
}

DATASET_SECTION = _obj({
    "eval_fraction": {"type": "number", "minimum": 0, "maximum": 0.9, "default": 0.0,
                      "description": "Share of rows (split = auto) held out for evaluation, seeded."},
    "holdout_clusters": {**STR_LIST, "description": "Task clusters held out whole for evaluation."},
    "dedupe": {"type": "boolean", "default": True, "description": "Remove exact duplicate rows."},
    "shuffle": {"type": "boolean", "default": True},
    "truncation": {"enum": ["drop", "truncate"], "default": "truncate",
                   "description": "Rows longer than training.max_length: truncate them, or drop them."},
    "min_trained_tokens": {**NONNEG_INT, "default": 1, "description": "Drop rows with fewer trained tokens than this."},
}, doc="How rows from all [[data]] entries are combined, split and filtered.")

TEMPLATE_COMMON = {
    "formatter": {"type": "string", "default": "sftkit:chat", "description": "chat (the model's own template; the default), chatml, llama3, llama2, mistral, alpaca, plain, or a plugin's."},
    "system": {"type": "string", "description": "System prompt added to every conversation that has none."},
}

STRATEGY_COMMON = {
    "name": {"type": "string", "minLength": 1, "description": "instruction, tone, classification, domain, reasoning, or a plugin's."},
}

TRAINING_SECTION = _obj({
    "max_steps": {**POS_INT, "description": "Optimizer steps (overrides num_train_epochs)."},
    "num_train_epochs": {**POS_NUM, "maximum": 1e6, "default": 1},
    "per_device_train_batch_size": {**POS_INT, "default": 8},
    "per_device_eval_batch_size": {**POS_INT, "description": "Evaluation batch size (default: chosen for the device)."},
    "gradient_accumulation_steps": {**POS_INT, "default": 1},
    "learning_rate": {**POS_NUM, "minimum": 1e-12, "maximum": 10, "default": 5e-5,
                      "description": "Peak learning rate (below 1e-12 no update survives float32 rounding)."},
    "warmup_ratio": {**FRACTION, "default": 0.0},
    "warmup_steps": {**NONNEG_INT},
    "lr_scheduler_type": {"enum": ["linear", "cosine", "constant", "constant_with_warmup", "cosine_with_restarts", "polynomial", "inverse_sqrt"], "default": "linear"},
    "weight_decay": {"type": "number", "minimum": 0, "maximum": 100, "default": 0.0},
    "max_grad_norm": {**POS_NUM, "maximum": 1e6, "default": 1.0},
    "max_length": {**POS_INT, "maximum": 1048576, "default": 512, "description": "Tokens per row; longer rows are truncated or dropped ([dataset].truncation)."},
    "packing": {"type": "boolean", "description": "Pack rows into full sequences (default: true for domain, false otherwise)."},
    "group_by_length": {"type": "boolean", "default": True, "description": "Batch rows of similar length together to waste less on padding."},
    "gradient_checkpointing": {"type": "boolean", "default": False},
    "compile": {"type": "boolean", "default": False,
                "description": "Compile the model with torch.compile (inductor) before training: pays on long runs "
                               "of repeated batch shapes; the first steps are slower while it compiles."},
    "chunked_loss": {"type": "boolean", "default": True,
                     "description": "Compute a causal LM's loss from its hidden states in chunks, never the full-vocabulary "
                                    "logits (exact; used where the model allows it, metrics.json says which)."},
    "logging_steps": {**POS_INT, "default": 5},
    "eval_steps": {**POS_INT, "description": "Evaluate the eval split every N steps (default: at the end only)."},
    "eval_strategy": {"enum": ["end", "steps", "no"], "description": "The trainer's own loss on the eval split: \"end\" once after training (default), \"steps\" every eval_steps and at the end (the default when eval_steps is set), \"no\" never ([[eval]] tables still run)."},
    "eval_max_rows": {**POS_INT, "description": "Rows of the eval split the trainer's own evaluation uses (default: all)."},
    "device": {"enum": ["auto", "cuda", "mps", "cpu"], "default": "auto", "description": "Where the run computes (training and evaluation): auto = CUDA, then Apple MPS, else the CPU."},
    "threads": {**POS_INT, "description": "CPU threads torch uses (default: torch's choice; a warning when the machine's load exceeds its cores)."},
    "report_to": {**STR_LIST, "default": [], "description": "transformers integrations that receive the training logs: tensorboard (RUN_DIR/logs/tensorboard), mlflow, wandb (offline unless WANDB_MODE says otherwise), trackio, ..."},
    "save_steps": {**POS_INT, "description": "Save a checkpoint every N steps (for --resume). Default: max(10, steps/5)."},
    "save_total_limit": {**POS_INT, "default": 2},
    "best_metric": {"type": "string", "minLength": 1,
                    "description": "Keep the model of the step where this trainer metric was best (e.g. \"eval_loss\"), "
                                   "not the last step's: checkpoints are saved at every evaluation (eval_steps) and the "
                                   "best one is loaded at the end and saved as the model."},
    "greater_is_better": {"type": "boolean", "description": "Whether a larger best_metric is better (default: false for a "
                                                             "metric ending in \"loss\", true otherwise)."},
    "optim": {"type": "string", "default": "adamw_torch"},
    "seed": {**SEED, "description": "Training seed (default: recipe.seed)."},
    "precision": {"enum": ["auto", "fp32", "bf16", "fp16"], "default": "auto",
                  "description": "Arithmetic precision of training and evaluation: auto = bf16 mixed precision on a GPU "
                                 "or CPU that computes bfloat16 natively (avx512_bf16, AMX), fp32 elsewhere; fp16 needs a CUDA GPU."},
    "bf16": {"type": "boolean", "description": "TrainingArguments' name for precision = \"bf16\" (false: fp32)."},
    "fp16": {"type": "boolean", "description": "TrainingArguments' name for precision = \"fp16\" (CUDA only)."},
}, doc="Hyperparameters, named as in transformers' TrainingArguments.")

ADAPTER_SECTION = _obj({
    "kind": {"enum": ["lora", "qlora"], "default": "lora",
             "description": "lora: adapters on the model's own weights; qlora: adapters on the base held in 4-bit NF4 "
                            "(bitsandbytes, pip install 'sftkit[qlora]'), computing in [training] precision."},
    "r": {**POS_INT, "default": 8},
    "alpha": {**POS_NUM, "maximum": 1e6, "default": 16},
    "dropout": {**FRACTION, "default": 0.05},
    "target_modules": {"anyOf": [STR_LIST, {"const": "all-linear"}], "default": "all-linear"},
    "merge": {"type": "boolean", "default": False,
              "description": "Merge the adapter into the weights when saving (qlora: into the base de-quantized to the compute dtype: a full-size model)."},
    "double_quant": {"type": "boolean", "default": True,
                     "description": "qlora: quantize the 4-bit blocks' scales too (about 0.4 bits a weight less)."},
}, doc="Train a LoRA adapter instead of all weights (peft); kind = \"qlora\" holds the base in 4-bit.")

FREEZE_SECTION = _obj({
    "layers": {"type": "string", "pattern": r"^\s*-?\d+\s*(-\s*-?\d+\s*)?(,\s*-?\d+\s*(-\s*-?\d+\s*)?)*$",
               "description": "Transformer layers to freeze, by index ranges: \"0-9\", \"0-3,6\"."},
    "train_last_layers": {**POS_INT, "description": "Freeze all layers but the last N (embeddings frozen too)."},
    "patterns": {**STR_LIST, "description": "Freeze parameters whose name matches any of these glob patterns."},
    "embeddings": {"type": "boolean", "description": "Freeze the input embeddings."},
}, doc="Freeze parts of the model; the rest trains.")

EVAL_COMMON = {
    "name": {"type": "string", "minLength": 1, "description": "A registered evaluator."},
    "label": {"type": "string", "description": "Display name in the report (default: name)."},
    "min": {"type": "number", "description": "Gate: fail the run when the tuned value is below this."},
    "max": {"type": "number", "description": "Gate: fail the run when the tuned value is above this."},
    "max_regression": {"type": "number", "minimum": 0, "description": "Gate: fail when the tuned value is worse than the base by more than this."},
    "max_contamination": {**FRACTION, "description": "Gate: fail when more than this share of the evaluator's items appear in the training rows (exact or a 13-word overlap)."},
    "gate_on": {"enum": ["value", "lower_bound"], "default": "value",
                "description": "What min/max apply to: the value, or its 95% interval (lower_bound: min on the lower bound, max on the upper bound)."},
}

REWARD_COMMON = {
    "name": {"type": "string", "minLength": 1, "description": "A registered reward (`sftkit plugins --all` lists them)."},
    "weight": {"type": "number", "minimum": -1e6, "maximum": 1e6, "default": 1.0,
               "description": "What this reward counts for: the total reward of a completion is the sum of weight x score."},
    "label": {"type": "string", "minLength": 1, "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
              "description": "Name of this reward in metrics and the report (default: name); two tables need two labels."},
}

PLAN_SECTION = _obj({
    "max_hours": {**POS_NUM, "maximum": 1e6, "description": "Fail `sftkit plan` (and `sftkit run`, before training) when training plus evaluation is estimated to take longer."},
    "max_memory_gb": {**POS_NUM, "maximum": 1e6, "description": "Fail `sftkit plan` (and `sftkit run`, before training) when the estimated peak memory is higher."},
}, doc="Limits checked against `sftkit plan`'s estimate before a run trains.")

OUTPUT_SECTION = _obj({
    "dir": {"type": "string", "default": "runs/{recipe.name}", "description": "Run directory; {recipe.name} is substituted. Relative to the current directory."},
    "save_model": {"type": "boolean", "default": True},
    "report": {"type": "boolean", "default": True},
    "keep_checkpoints": {"type": "boolean", "default": False, "description": "Keep RUN_DIR/checkpoints (with optimizer state) after a finished run; they are removed by default."},
}, doc="Where the run goes.")

DISTRIBUTED_SECTION = _obj({
    "strategy": {"enum": list(BACKENDS), "default": DEFAULT_BACKEND,
                 "description": "How several processes train together: "
                                + ", ".join(f"{b.name} ({b.doc})" for b in BACKENDS.values()) + "."},
    "timeout_minutes": {**POS_INT, "default": 30, "description": "How long a process waits for the others at a collective before the run fails."},
    "find_unused_parameters": {"type": "boolean", "default": False,
                               "description": "ddp: look for parameters without a gradient in each step (slower; needed only by models that skip layers)."},
    "fsdp": _obj({
        "version": {"enum": [1, 2], "default": 2, "description": "FSDP2 (fully_shard) or the legacy FSDP1."},
        "sharding": {"enum": ["full_shard", "shard_grad_op", "hybrid_shard", "no_shard"], "default": "full_shard",
                     "description": "full_shard: weights, gradients, optimizer state; shard_grad_op: gradients and optimizer state (weights stay gathered between forward and backward). hybrid_shard and no_shard need version = 1."},
        "cpu_offload": {"type": "boolean", "default": False, "description": "Keep sharded weights and gradients in CPU memory between uses."},
        "wrap_layers": {**STR_LIST, "description": "Layer classes to wrap one by one, e.g. [\"LlamaDecoderLayer\"] (default: the model's own _no_split_modules)."},
        "activation_checkpointing": {"type": "boolean", "default": False, "description": "Recompute activations in the backward pass (less memory)."},
    }, doc="FSDP options (strategy = \"fsdp\")."),
    "deepspeed": _obj({
        "stage": {"enum": [1, 2, 3], "default": 2, "description": "ZeRO stage: 1 optimizer state, 2 + gradients, 3 + weights sharded."},
        "offload_optimizer": {"type": "boolean", "default": False, "description": "Optimizer state in CPU memory (ZeRO-Offload)."},
        "offload_params": {"type": "boolean", "default": False, "description": "Weights in CPU memory (stage 3 only)."},
        "config": {"type": "string", "x-sftkit-path": True,
                   "description": "A DeepSpeed JSON config to use as is instead of the options above (relative to the recipe)."},
    }, doc="DeepSpeed options (strategy = \"deepspeed\"; needs the deepspeed package)."),
}, doc="Training with several processes (sftkit run --nproc N, torchrun or accelerate launch). Ignored by a one-process run.")

VERDICT_SECTION = _obj({
    "alpha": {"type": "number", "exclusiveMinimum": 0, "maximum": 0.5, "default": 0.05,
              "description": "Significance level: a change is called better/worse only when the paired test's p-value is below this."},
    "collapse_share": {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": 0.9,
                       "description": "A model giving one answer for more than this share of items is flagged collapsed."},
}, doc="How evaluation results are judged (base vs tuned).")

BASELINE_ITEM = _obj({
    "kind": {"enum": ["system_prompt", "few_shot"],
             "description": "system_prompt: the base model with `system` as its system prompt; few_shot: the base model "
                            "shown `k` examples from the training rows before each item."},
    "label": {"type": "string", "minLength": 1, "description": "Display name in the report (default: the kind, few_shot_K for few-shot)."},
    "system": {"type": "string", "minLength": 1,
               "description": "The system prompt (after the item's or [template]'s own, when there is one). Required for system_prompt; optional with few_shot."},
    "k": {"type": "integer", "minimum": 1, "maximum": 64, "default": 5,
          "description": "few_shot: examples shown before each item, drawn from the training rows with the seed."},
    "seed": {**SEED, "description": "few_shot: seed that draws the examples (default: recipe.seed)."},
}, required=("kind",), doc="A prompt-only baseline: the base model prompted, not trained, through the same [[eval]] "
                           "tables; the verdict says whether the tuned model beats the best one.")

TOP_LEVEL = {
    "recipe": RECIPE_SECTION,
    "model": MODEL_SECTION,
    "data": {"type": "array", "minItems": 1, "items": {"type": "object"}},
    "dataset": DATASET_SECTION,
    "template": {"type": "object"},
    "strategy": {"type": "object"},
    "training": TRAINING_SECTION,
    "adapter": ADAPTER_SECTION,
    "freeze": FREEZE_SECTION,
    "eval": {"type": "array", "items": {"type": "object"}},
    "reward": {"type": "array", "items": {"type": "object"},
               "description": "Rewards of an RL strategy (reasoning): each a scorer or a plugin's reward, with a weight."},
    "output": OUTPUT_SECTION,
    "distributed": DISTRIBUTED_SECTION,
    "verdict": VERDICT_SECTION,
    "baseline": {"type": "array", "items": BASELINE_ITEM, "description": BASELINE_ITEM["description"]},
    "plan": PLAN_SECTION,
}

REQUIRED_TOP = ("recipe", "model", "data", "strategy")

# keys every component table of that kind must have, whichever component it names
COMMON_REQUIRED = {"model": ("name",)}

# component tables: top-level key -> (registry kind, key naming the component, common keys, default name).
# A default is a built-in's qualified address ("sftkit:NAME"): a table that names no component gets
# sftkit's own even when a plugin registers the same bare name (so that clash affects no such recipe).
COMPONENT_TABLES = {
    "model": ("model_loaders", "loader", MODEL_SECTION["properties"], "sftkit:transformers"),
    "data": ("sources", "source", DATA_COMMON, None),
    "template": ("formatters", "formatter", TEMPLATE_COMMON, "sftkit:chat"),
    "strategy": ("strategies", "name", STRATEGY_COMMON, None),
    "eval": ("evaluators", "name", EVAL_COMMON, None),
    "reward": ("rewards", "name", REWARD_COMMON, None),
}

# component tables that are arrays of tables ([[data]], [[eval]], [[reward]])
ARRAY_TABLES = ("data", "eval", "reward")
