"""The data stage: ``[[data]]`` sources → canonical records (train/eval) → token ids and loss masks.

- :func:`load_data` reads, converts, dedupes, splits and mixes every ``[[data]]`` entry.
- :func:`tokenize_bundle` formats and tokenizes the rows with a :class:`sftkit.api.Formatter`.

Heavy libraries (datasets, pyarrow, numpy) are imported inside the functions.
"""

from .bundle import DataBundle, TokenizedBundle
from .loader import load_data
from .tokenize import tokenize_bundle

__all__ = ["DataBundle", "TokenizedBundle", "load_data", "tokenize_bundle"]
