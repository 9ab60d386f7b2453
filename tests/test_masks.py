"""Loss masks at token level (tokens merging across the prompt/answer boundary) and tokenizer/model
set-up for a base model without a chat template."""

import pytest

from sftkit.api import IGNORE_INDEX
from sftkit.config import Template
from sftkit.templates import make_formatter
from sftkit.templates.builtin_templates import BUILTINS, plain_template, strip_generation_markers
from sftkit.templates.formatter import TemplateFormatter
from sftkit.templates.masks import encode_spans


def reference(tokenizer, marked, messages):
    out = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                        return_assistant_tokens_mask=True, chat_template=marked)
    return list(out["input_ids"]), [t if m else IGNORE_INDEX for t, m in zip(out["input_ids"], out["assistant_masks"])]


@pytest.mark.parametrize("prefix_path", [False, True])
def test_token_straddling_the_answer_start_is_trained_like_transformers(prefix_path):
    from sftkit.tiny import tiny_tokenizer

    tok = tiny_tokenizer()
    tok.chat_template = strip_generation_markers(plain_template(""))  # no separator: words merge
    marked = plain_template("")
    fmt = TemplateFormatter("chat")
    fmt.setup(tok)
    if not prefix_path:
        fmt.training_template = marked
    assert fmt.uses_markers is not prefix_path
    convo = [{"role": "user", "content": "The qu"}, {"role": "assistant", "content": "ick brown fox"}]
    row = fmt.encode_messages(convo)
    assert (row["input_ids"], row["labels"]) == reference(tok, marked, convo)
    # the boundary (after "The qu") falls inside a token: that token is trained
    enc = tok("The quick brown fox" + tok.eos_token, add_special_tokens=False, return_offsets_mapping=True)
    assert enc["input_ids"] == row["input_ids"]
    straddling = [i for i, (s, e) in enumerate(enc["offset_mapping"]) if s < 6 < e]
    assert straddling, "test needs a token spanning the boundary"
    assert all(row["labels"][i] == row["input_ids"][i] for i in straddling)
    assert row["labels"][0] == IGNORE_INDEX


def test_encode_spans_rule():
    from sftkit.tiny import tiny_tokenizer

    tok = tiny_tokenizer()
    text = "Question: 2 + 3 = ? #### 5<|im_end|>"
    start = text.index("####")
    (row,) = encode_spans(tok, [text], [[(start, len(text))]])
    trained = tok.decode([t for t in row["labels"] if t != IGNORE_INDEX])
    assert trained.endswith("#### 5<|im_end|>") and "?" not in trained
    (cut,) = encode_spans(tok, [text], [[(start, len(text))]], max_length=3)
    assert cut["input_ids"] == row["input_ids"][:3]


def tokenizer_without_chat_tokens():
    """A byte-level BPE knowing only <|endoftext|>: like a base model's tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    t = Tokenizer(models.BPE())
    t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    t.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    t.train_from_iterator(["Hello there, how are you? I am fine, thank you."] * 4, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=t, eos_token="<|endoftext|>", unk_token=None)


CONVO = [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hello there"},
         {"role": "assistant", "content": "I am fine, thank you."}]


def test_base_model_without_template_gets_chatml(tmp_path):
    import torch
    from transformers import AutoTokenizer

    from sftkit.tiny import tiny_causal_lm

    tok = tokenizer_without_chat_tokens()
    assert tok.chat_template is None and tok.pad_token is None
    model = tiny_causal_lm(tok)
    rows_before = model.get_input_embeddings().weight.shape[0]
    fmt = make_formatter(Template.of({"formatter": "chat"}))
    info = fmt.setup(tok, model)
    assert info["fallback"] == "chatml" and info["added_tokens"] == ["<|im_start|>", "<|im_end|>"]
    assert tok.chat_template == BUILTINS["chatml"].template == fmt.chat_template
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|im_end|>"
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    ids = tok.encode("<|im_start|>user<|im_end|>", add_special_tokens=False)
    assert ids[0] == tok.convert_tokens_to_ids("<|im_start|>") and ids[-1] == im_end
    assert tok.decode(ids[1:-1]) == "user"
    assert model.get_input_embeddings().weight.shape[0] == len(tok) == rows_before + 2
    assert info["resized"] == (rows_before, rows_before + 2)
    assert model.config.eos_token_id == im_end
    # generation stops at the end of a turn, and still at the base model's end of document
    assert model.generation_config.eos_token_id == [im_end, tok.convert_tokens_to_ids("<|endoftext|>")]
    # the model runs on the new ids, and the end-of-turn token is trained
    row = fmt.encode_messages(CONVO)
    assert im_end in [t for t in row["labels"] if t != IGNORE_INDEX]
    out = model(input_ids=torch.tensor([row["input_ids"]]), labels=torch.tensor([row["labels"]]))
    assert torch.isfinite(out.loss)
    # raw documents still end with the base model's document EOS
    assert fmt.encode_text("Hello")["input_ids"][-1] == tok.convert_tokens_to_ids("<|endoftext|>")

    # the template is saved with the tokenizer, and the reloaded tokenizer encodes the same
    tok.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded.chat_template == fmt.chat_template
    again = make_formatter(Template.of({"formatter": "chat"}))
    info2 = again.setup(reloaded)
    assert info2["added_tokens"] == [] and info2["masking"] == "generation markers (sftkit:chatml)"
    assert again.encode_messages(CONVO) == row


@pytest.mark.parametrize("name", ["llama3", "chatml"])
def test_builtin_template_adds_missing_tokens_and_resizes(name, tmp_path):
    from sftkit.tiny import tiny_causal_lm

    tok = tokenizer_without_chat_tokens()
    model = tiny_causal_lm(tok)
    fmt = make_formatter(Template.of({"formatter": name}))
    info = fmt.setup(tok, model)
    assert info["added_tokens"] == list(BUILTINS[name].special_tokens)
    assert model.get_input_embeddings().weight.shape[0] >= len(tok)
    assert tok.eos_token == BUILTINS[name].end_of_turn
    row = fmt.encode_messages(CONVO)
    assert (row["input_ids"], row["labels"]) == reference(tok, BUILTINS[name].marked, CONVO)
    tok.save_pretrained(tmp_path)
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(tmp_path).chat_template == BUILTINS[name].template


def test_template_without_end_of_turn_token_keeps_model_eos():
    from sftkit.tiny import tiny_causal_lm

    tok = tokenizer_without_chat_tokens()
    model = tiny_causal_lm(tok)
    fmt = make_formatter(Template.of({"formatter": "alpaca"}))
    info = fmt.setup(tok, model)
    assert info["added_tokens"] == [] and info["resized"] is None and tok.eos_token == "<|endoftext|>"
    row = fmt.encode_messages(CONVO)
    assert row["labels"][-1] == tok.convert_tokens_to_ids("<|endoftext|>")


def test_models_own_template_leaves_model_eos_alone():
    from sftkit.tiny import tiny_causal_lm, tiny_tokenizer

    tok = tiny_tokenizer(chat_template=BUILTINS["chatml"].template.replace("\\n", "\\n\\n"))
    model = tiny_causal_lm(tok)
    model.generation_config.eos_token_id = [tok.eos_token_id, 0]
    rows = model.get_input_embeddings().weight.shape[0]
    info = make_formatter(Template.of({"formatter": "chat"})).setup(tok, model)
    assert info["added_tokens"] == [] and not info["eos_changed"] and info["resized"] is None
    assert model.generation_config.eos_token_id == [tok.eos_token_id, 0]
    assert model.get_input_embeddings().weight.shape[0] == rows


def test_named_chat_templates_are_kept():
    from sftkit.tiny import tiny_tokenizer

    tok = tiny_tokenizer()
    tok.chat_template = {"default": BUILTINS["chatml"].template, "tool_use": BUILTINS["llama3"].template}
    fmt = make_formatter(Template.of({"formatter": "chat"}))
    fmt.setup(tok)
    assert fmt.chat_template == BUILTINS["chatml"].template
    assert isinstance(tok.chat_template, dict) and set(tok.chat_template) == {"default", "tool_use"}
    assert fmt.uses_markers  # recognised as the built-in ChatML


def test_setup_twice_first_without_model_still_prepares_the_model():
    """Data is tokenized after setup(tokenizer); the strategy calls setup(tokenizer, model) later."""
    from sftkit.tiny import tiny_causal_lm

    tok = tokenizer_without_chat_tokens()
    model = tiny_causal_lm(tok)
    rows = model.get_input_embeddings().weight.shape[0]
    fmt = make_formatter(Template.of({"formatter": "llama3"}))
    first = fmt.setup(tok)
    assert first["added_tokens"] and first["resized"] is None
    encoded = fmt.encode_messages(CONVO)
    second = fmt.setup(tok, model)
    assert second["added_tokens"] == [] and second["resized"] == (rows, len(tok))
    eot = tok.convert_tokens_to_ids("<|eot_id|>")
    assert model.config.eos_token_id == eot and eot in model.generation_config.eos_token_id
    assert model.config.pad_token_id == tok.pad_token_id
    assert fmt.encode_messages(CONVO) == encoded
    assert fmt.encode_text("Hello")["input_ids"][-1] == tok.convert_tokens_to_ids("<|endoftext|>")  # document EOS
