"""The canonical record kinds, the error a record format raises for a bad row, the label the loss
ignores and the files read as text.

The bottom of sftkit: imports nothing. :mod:`sftkit.api` re-exports these as part of the contract;
modules below the contract (``core_schema``, ``registry``) import them from here.
"""

KINDS = ("messages", "text", "preference", "labeled", "classification")



class RowError(Exception):
    """One row cannot be converted (raised by a record format's converter): ``reason`` is short (a
    statistics key when the row is skipped), ``detail`` the message."""

    def __init__(self, reason: str, detail: str | None = None):
        self.reason = reason
        self.detail = detail or reason
        super().__init__(self.detail)


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
