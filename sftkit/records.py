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
