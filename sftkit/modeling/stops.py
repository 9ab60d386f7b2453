"""The token ids that end a model's turn (used when saving a model and when serving it)."""

from __future__ import annotations

# tokens that end a turn in common chat templates (ChatML, Llama 3, Phi, Gemma, ...)
END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<|end|>", "</s>", "<|endoftext|>", "<end_of_turn>", "<|end_of_text|>")


def stop_token_ids(model, tokenizer) -> list[int]:
    """End-of-turn ids: the tokenizer's EOS, the generation config's eos ids and known end-of-turn tokens."""
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
