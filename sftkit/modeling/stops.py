"""The token ids that end a model's turn (used when saving a model and when serving it)."""

from __future__ import annotations


def stop_token_ids(model, tokenizer) -> list[int]:
    """End-of-turn ids: the tokenizer's EOS, the generation config's eos ids and known end-of-turn tokens."""
    from ..evaluation.target import END_OF_TURN

    ids = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(gen_eos, int):
        ids.add(gen_eos)
    elif isinstance(gen_eos, (list, tuple)):
        ids.update(int(i) for i in gen_eos)
    vocab = tokenizer.get_vocab()
    for t in END_OF_TURN:
        if t in vocab and t != tokenizer.bos_token:
            ids.add(int(vocab[t]))
    return sorted(ids)
