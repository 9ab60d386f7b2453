"""The canonical record kinds, which input format converts to which, the label the loss ignores and
the files read as text.

The bottom of sftkit: imports nothing. :mod:`sftkit.api` re-exports these as part of the contract;
modules below the contract (``core_schema``, ``registry``) import them from here.
"""

KINDS = ("messages", "text", "preference", "labeled", "classification")

# input format -> canonical kind
FORMAT_KINDS = {
    "prompt_completion": "messages",
    "messages": "messages",
    "sharegpt": "messages",
    "alpaca": "messages",
    "text": "text",
    "preference": "preference",
    "labeled": "labeled",
    "classification": "classification",
}

TEXT_EXTENSIONS = (".txt", ".md")  # files read as plain-text documents (directories of text, replay)

IGNORE_INDEX = -100  # a label the loss skips (the prompt, padding): transformers' and torch's ignore index

# a converted row's other columns (those its format does not read), kept as JSON text for strategies
# registered with ``row_fields=True`` (rewards read ``tests``, ``entry_point``...)
FIELDS = "fields"


def row_fields(record: dict) -> dict:
    """A converted record with its kept columns (:data:`FIELDS`) unpacked beside it (the record's own
    keys win): the row as a reward or an evaluator reads it."""
    import json

    extra = record.get(FIELDS)
    out = json.loads(extra) if isinstance(extra, str) and extra else {}
    out.update({k: v for k, v in record.items() if k != FIELDS})
    return out
