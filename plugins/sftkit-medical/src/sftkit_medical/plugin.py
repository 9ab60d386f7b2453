"""The hooks sftkit calls: what this plugin contributes, with lazy factories and option schemas.

This module imports nothing heavy: ``sftkit plugins`` and ``sftkit validate`` load it.
"""

from __future__ import annotations

import sftkit

from .mmlu import MEDICAL_TOPICS

_TOPICS = {"type": "array", "items": {"enum": list(MEDICAL_TOPICS)}, "uniqueItems": True, "minItems": 1,
           "default": list(MEDICAL_TOPICS), "description": "MMLU subjects to use (default: all medical ones)."}
_MMLU_PATH = {"type": "string", "default": "package://sftkit_medical/mmlu_data/medical.jsonl.gz", "x-sftkit-path": True,
              "description": "MMLU as JSONL, .gz allowed (question, answer_a..answer_d, correct_answer, topic); default: the medical subjects, bundled."}


# [docs:sources]
@sftkit.hookimpl
def sftkit_register_sources(register):
    register(
        "medical_text",
        "sftkit_medical.sources:medical_text",  # imported only when a recipe uses it
        schema={
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "path": {"type": "string", "x-sftkit-path": True,
                         "description": "A .md/.txt file or a directory of them (default: the bundled corpus)."},
                "sections": {"type": "array", "items": {"type": "string"},
                             "description": "Keep only these sections (case-insensitive heading match)."},
                "exclude_sections": {"type": "array", "items": {"type": "string"}, "default": ["References"],
                                     "description": "Drop these sections."},
                "by": {"enum": ["section", "document"], "default": "section",
                       "description": "One row per section, or one row per document (kept sections joined)."},
                "min_chars": {"type": "integer", "minimum": 0, "default": 40,
                              "description": "Drop rows shorter than this many characters."},
            },
        },
        doc="Medical text documents (markdown headings = sections) as raw text rows, with section filtering.",
        emits="text",  # the kind of records it gives: sftkit validate checks the strategy trains on it
    )
    # [/docs:sources]
    register(
        "mmlu_medical",
        "sftkit_medical.sources:mmlu_medical",
        schema={
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "topics": _TOPICS,
                "path": _MMLU_PATH,
                "questions": {"enum": ["train", "all"], "default": "train",
                          "description": "train: leave out the questions the medical_mmlu evaluator scores "
                                         "(no leakage); all: every question."},
                "style": {"enum": ["text", "prompt_completion"], "default": "text",
                          "description": "Q/A as one text (domain training) or as prompt + completion."},
            },
        },
        doc="The medical subjects of MMLU as question/answer text (the evaluator's questions held out).",
    )


# [docs:evaluators]
@sftkit.hookimpl
def sftkit_register_evaluators(register):
    register(
        "medical_mmlu",
        "sftkit_medical.evaluators:MedicalMMLU",
        schema={
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "topics": _TOPICS,
                "path": _MMLU_PATH,
                "questions": {"enum": ["eval", "all"], "default": "eval",
                          "description": "eval: the held-out questions mmlu_medical never trains on; all: every one."},
                "limit": {"type": "integer", "minimum": 1, "default": 200,
                          "description": "Score at most this many questions (balanced over topics)."},
                "smoke_limit": {"type": "integer", "minimum": 1, "default": 8,
                                "description": "Questions scored in a --smoke run."},
            },
        },
        doc="Accuracy on the medical subjects of MMLU, multiple choice by log-likelihood.",
    )
# [/docs:evaluators]


# [docs:recipes]
@sftkit.hookimpl
def sftkit_register_recipes(register):
    register(
        "medical-domain",
        "package://sftkit_medical/recipes/medical-domain.toml",
        doc="Continued pretraining on bundled medical notes and MMLU medical Q/A; scored on held-out MMLU medicine.",
    )
# [/docs:recipes]
