"""Tiny randomly initialised models and tokenizers, built locally in seconds.

Used by ``sftkit run --smoke`` (a tiny model of the recipe model's architecture) and by tests, so
nothing needs a download. The tokenizer is a byte-level BPE trained on a small built-in corpus:
every string encodes, nothing maps to an unknown token.
"""

from __future__ import annotations

from functools import lru_cache

CHATML_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                   "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
"""A minimal ChatML template (no generation markers), like many models ship: for tiny test models."""

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>", "<s>", "</s>"]

_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "You are a helpful assistant. Answer the question politely and concisely.",
    "What is the capital of France? The capital of France is Paris.",
    "def add(a, b):\n    return a + b\n",
    "Question: 2 + 3 = ? Let's think step by step. 2 plus 3 is 5. #### 5",
    "system user assistant tool Thank you for your message. We are sorry for the trouble.",
    '{"answer": "yes", "confidence": 0.9}',
    "positive negative neutral I love this! This is terrible. It is okay.",
    "The patient presented with fever and cough; diagnosis: pneumonia.",
    "[INST] <<SYS>> <</SYS>> [/INST] ### Instruction: ### Input: ### Response:",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>",
]


@lru_cache(maxsize=4)
def _tokenizer_json(vocab_size: int) -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    return tok.to_str()


def tiny_tokenizer(vocab_size: int = 512, chat_template: str | None = None):
    """A fast byte-level BPE tokenizer with ChatML-style special tokens (pad = ``<pad>``)."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_tokenizer_json(vocab_size)),
        eos_token="<|im_end|>", bos_token="<|endoftext|>", pad_token="<pad>", unk_token=None,
    )
    if chat_template is not None:
        tok.chat_template = chat_template
    return tok


def tiny_causal_lm(tokenizer=None, *, architecture: str = "llama", hidden_size: int = 32,
                   layers: int = 2, heads: int = 2, seed: int = 0):
    """A randomly initialised causal LM small enough to train in a test (default: Llama layout)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    tokenizer = tokenizer or tiny_tokenizer()
    config = AutoConfig.for_model(
        architecture, vocab_size=len(tokenizer), hidden_size=hidden_size,
        intermediate_size=hidden_size * 2, num_hidden_layers=layers, num_attention_heads=heads,
        num_key_value_heads=heads, max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config)


def save_tiny_model(directory, *, chat_template: str | None = None, architecture: str = "llama") -> str:
    """Write a tiny model + tokenizer into ``directory`` (loadable with from_pretrained); returns it."""
    from pathlib import Path

    directory = Path(directory)
    tok = tiny_tokenizer(chat_template=chat_template)
    model = tiny_causal_lm(tok, architecture=architecture)
    model.save_pretrained(directory)
    tok.save_pretrained(directory)
    return str(directory)
