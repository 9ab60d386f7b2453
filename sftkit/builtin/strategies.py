"""Built-in strategies (a plugin like any other): instruction, tone, classification, domain, reasoning.

Factories are lazy ``module:attr`` strings; nothing heavy is imported here.
"""

from sftkit import hookimpl

INSTRUCTION = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "packing": {"type": "boolean",
                    "description": "Concatenate the rows of a batch padding-free, positions restarting per row (no "
                                   "attention across rows). Default: training.packing, else off (length-grouped batches)."},
        "train_on_prompt": {"type": "boolean", "default": False,
                            "description": "Train on the prompt tokens too (default: loss on the answers only)."},
    },
}

TONE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "method": {"enum": ["auto", "dpo", "kto", "sft"], "default": "auto",
                   "description": "auto: DPO on preference pairs, KTO on answers labelled good/bad, SFT on good answers only."},
        "beta": {"type": "number", "exclusiveMinimum": 0, "default": 0.1,
                 "description": "DPO/KTO temperature: higher keeps the model closer to the reference."},
        "drop_identical": {"type": "boolean", "default": True,
                           "description": "Drop preference pairs whose chosen and rejected answers are identical (they teach nothing)."},
        "length_bias_warn": {"type": "number", "minimum": 0, "default": 0.2,
                             "description": "Warn when chosen answers are on average this much longer or shorter (relative) than rejected ones."},
        "desirable_weight": {"type": "number", "exclusiveMinimum": 0, "default": 1.0,
                             "description": "KTO: weight of the loss on good answers (raise it when good answers are the fewer)."},
        "undesirable_weight": {"type": "number", "exclusiveMinimum": 0, "default": 1.0,
                               "description": "KTO: weight of the loss on bad answers (raise it when bad answers are the fewer)."},
    },
}

CLASSIFICATION = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "freeze_backbone": {"type": "boolean", "default": False,
                            "description": "Train only the classification head (the pretrained backbone stays fixed)."},
        "imbalance_warn": {"type": "number", "minimum": 1, "default": 3,
                           "description": "Warn when the largest class has this many times the rows of the smallest."},
    },
}

DOMAIN = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "packing": {"type": "boolean",
                    "description": "Concatenate documents (EOS between them) and cut into max_length rows, positions "
                                   "restarting per document. Default: training.packing, else on."},
        "replay": {
            "type": "object",
            "additionalProperties": False,
            "description": "Mix in general text to limit forgetting.",
            "properties": {
                "path": {"type": "string", "x-sftkit-path": True,
                         "description": "General text: a .txt/.md file or directory, or .jsonl/.csv with a text column."},
                "fraction": {"type": "number", "minimum": 0, "maximum": 0.9, "default": 0.2,
                             "description": "Share of the training tokens that come from the replay text."},
                "text_column": {"type": "string", "default": "text"},
            },
            "required": ["path"],
        },
    },
}

REASONING = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "method": {"enum": ["grpo", "rloo"], "default": "grpo",
                   "description": "grpo: TRL's GRPOTrainer (advantages against the group mean); rloo: TRL's "
                                  "RLOOTrainer (leave-one-out baseline)."},
        "loss_type": {"enum": ["grpo", "dapo", "dr_grpo", "bnpo", "cispo", "sapo"], "default": "dapo",
                      "description": "GRPO's loss aggregation (TRL's loss_type): dapo normalises by the tokens of "
                                     "the global batch (no length bias, exact under --nproc), grpo per sequence, "
                                     "dr_grpo by a constant, bnpo by the local batch's tokens."},
        "num_generations": {"type": "integer", "minimum": 2, "default": 4,
                            "description": "Completions sampled per prompt (the group); it must divide "
                                           "per_device_train_batch_size x gradient_accumulation_steps x processes."},
        "max_completion_length": {"type": "integer", "minimum": 1, "maximum": 32768, "default": 128,
                                  "description": "Tokens a completion may have; longer ones are cut (and counted)."},
        "temperature": {"type": "number", "exclusiveMinimum": 0, "default": 1.0,
                        "description": "Sampling temperature of the completions."},
        "top_p": {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": 1.0,
                  "description": "Nucleus sampling: keep the smallest set of tokens holding this probability."},
        "beta": {"type": "number", "minimum": 0, "default": 0.0,
                 "description": "KL penalty to the starting model; 0 keeps no reference model (faster, less memory)."},
        "epsilon": {"type": "number", "exclusiveMinimum": 0, "default": 0.2,
                    "description": "Clipping of the probability ratio (lower bound 1 - epsilon)."},
        "epsilon_high": {"type": "number", "exclusiveMinimum": 0,
                         "description": "Upper clipping bound 1 + epsilon_high (DAPO's clip-higher, e.g. 0.28); "
                                        "default: epsilon."},
        "scale_rewards": {"enum": ["group", "batch", "none"], "default": "group",
                          "description": "Divide advantages by the reward's standard deviation within the group, "
                                         "the batch, or not at all (Dr. GRPO)."},
        "mask_truncated_completions": {"type": "boolean", "default": False,
                                       "description": "Leave completions cut at max_completion_length out of the loss."},
        "num_iterations": {"type": "integer", "minimum": 1, "default": 1,
                           "description": "Updates per batch of completions (more than 1 makes the clipping act)."},
        "use_vllm": {"type": "boolean", "default": False,
                     "description": "Generate with vLLM colocated on the GPU (needs vllm installed); default: "
                                    "transformers' generate with a KV cache."},
    },
}


@hookimpl
def sftkit_register_strategies(register):
    register("instruction", "sftkit.strategies.instruction:create", schema=INSTRUCTION,
             doc="Supervised fine-tuning on instructions and answers (loss on the answers).",
             accepts=["messages"], data_hint="it needs conversations or prompt/completion pairs")
    register("tone", "sftkit.strategies.tone:create", schema=TONE,
             doc="Good and bad example answers: DPO on pairs, KTO on labelled answers, SFT on good ones.",
             accepts=["preference", "labeled", "messages"], check="sftkit.strategies.checks:check_tone",
             data_hint="it needs preference pairs (prompt/chosen/rejected), answers labelled good/bad "
                       "(prompt/completion/label), or good answers only")
    register("classification", "sftkit.strategies.classification:create", schema=CLASSIFICATION,
             doc="Sequence classification head on a pretrained backbone (encoder or decoder).",
             accepts=["classification"],
             data_hint='it needs text and label columns: add a label column or map one with columns = {label = "your_column"}',
             starter={"model": "sentence-transformers/all-MiniLM-L6-v2", "template": False})
    register("domain", "sftkit.strategies.domain:create", schema=DOMAIN,
             doc="Continued pretraining on raw text, packed, with optional replay of general text.",
             accepts=["text", "messages"], check="sftkit.strategies.checks:check_domain",
             data_hint="it needs raw text (a text column, or a directory of .txt/.md files)")
    register("reasoning", "sftkit.strategies.reasoning:create", schema=REASONING,
             doc="Reinforcement learning with verifiable rewards (GRPO / RLOO): sampled answers scored by [[reward]] tables.",
             accepts=["messages"], check="sftkit.strategies.checks:check_reasoning", rewards=True, row_fields=True,
             starter={"rows": [{"prompt": "Tom has 3 boxes of 4 apples. How many apples does he have?",
                                "completion": "3 * 4 = 12. #### 12"},
                               {"prompt": "A class has 5 rows of 6 desks. How many desks are there?",
                                "completion": "5 * 6 = 30. #### 30"}],
                      "rewards": [{"name": "numeric_answer", "weight": 1.0, "match": "flexible"},
                                  {"name": "format", "weight": 0.2, "pattern": "#### -?[0-9]+"}]},
             data_hint="it needs prompts with a reference answer: prompt/completion pairs or conversations "
                       "(other columns, e.g. tests, reach the rewards)")
