"""Show one tokenized row with its trained tokens marked (ANSI colour, or ``[[...]]`` when piped)."""

from __future__ import annotations

from ..api import IGNORE_INDEX

ANSI_ON, ANSI_OFF = "\x1b[1;32m", "\x1b[0m"
MARK_ON, MARK_OFF = "[[", "]]"


def runs(input_ids, labels) -> list[tuple[bool, list[int]]]:
    """Consecutive stretches of trained / untrained tokens: ``[(trained, ids), ...]``."""
    out: list[tuple[bool, list[int]]] = []
    for tok, lab in zip(input_ids, labels):
        trained = lab != IGNORE_INDEX
        if out and out[-1][0] == trained:
            out[-1][1].append(tok)
        else:
            out.append((trained, [tok]))
    return out


def render_tokens(tokenizer, input_ids, labels, *, color: bool) -> str:
    """The decoded row with trained stretches highlighted."""
    on, off = (ANSI_ON, ANSI_OFF) if color else (MARK_ON, MARK_OFF)
    parts = []
    for trained, ids in runs(input_ids, labels):
        text = tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        if trained:
            # keep colour codes off line breaks so terminals do not smear them
            text = "\n".join(f"{on}{line}{off}" if line else "" for line in text.split("\n")) if color else f"{on}{text}{off}"
        parts.append(text)
    return "".join(parts)
