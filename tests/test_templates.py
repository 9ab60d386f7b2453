"""Built-in templates and the `chat` formatter: token ids and labels equal transformers'
`apply_chat_template(..., return_assistant_tokens_mask=True)` on the generation-marked template."""

import pytest

from sftkit.api import IGNORE_INDEX
from sftkit.config import Template
from sftkit.errors import DataError, PluginError
from sftkit.templates import make_formatter
from sftkit.templates.builtin_templates import BUILTINS, strip_generation_markers
from sftkit.templates.formatter import TemplateFormatter

SYSTEM = {"role": "system", "content": "You are a helpful assistant."}
MULTI = [
    SYSTEM,
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "The capital of France is Paris."},
    {"role": "user", "content": "  And 2 + 3 = ?  "},
    {"role": "assistant", "content": " Let's think step by step. 2 plus 3 is 5. #### 5 "},
]
UNICODE = [
    {"role": "user", "content": "Café ☕ naïve — «quote»?"},
    {"role": "assistant", "content": "Très bien 👍 ümlaut\n\ndef add(a, b):\n    return a + b\n"},
    {"role": "user", "content": "thanks"},
]
EMPTY_ANSWER = [{"role": "user", "content": "Say nothing."}, {"role": "assistant", "content": ""}]
TOOL = [
    SYSTEM,
    {"role": "user", "content": "Is it positive?"},
    {"role": "assistant", "content": '{"answer": "yes", "confidence": 0.9}'},
    {"role": "tool", "content": '{"answer": "yes"}'},
    {"role": "assistant", "content": "I love this!"},
]
CONVERSATIONS = {"multi": MULTI, "unicode": UNICODE, "empty_answer": EMPTY_ANSWER, "tool": TOOL}
NO_TOOLS = {"llama2", "mistral"}  # templates that only take alternating user/assistant turns


def fresh_tokenizer():
    from sftkit.tiny import tiny_tokenizer

    return tiny_tokenizer()


def reference(tokenizer, marked_template, messages):
    """What transformers computes with the generation-marked template."""
    out = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                        return_assistant_tokens_mask=True, chat_template=marked_template)
    ids = list(out["input_ids"])
    labels = [t if m else IGNORE_INDEX for t, m in zip(ids, out["assistant_masks"])]
    return ids, labels


def builtin(name, **options):
    fmt = make_formatter(Template.of({"formatter": name, **options}))
    tok = fresh_tokenizer()
    fmt.setup(tok)
    return fmt, tok


def cases():
    for name in BUILTINS:
        for conv in CONVERSATIONS:
            if conv == "tool" and name in NO_TOOLS:
                continue
            yield name, conv


@pytest.mark.parametrize("name,conv", list(cases()))
def test_builtin_matches_reference(name, conv):
    fmt, tok = builtin(name)
    messages = CONVERSATIONS[conv]
    got = fmt.encode_messages(messages)
    ids, labels = reference(tok, fmt.training_template, messages)
    assert got["input_ids"] == ids
    assert got["labels"] == labels
    assert any(label != IGNORE_INDEX for label in labels)
    # the saved template renders the same text as the marked one
    assert tok.apply_chat_template(messages, tokenize=False) == \
        tok.apply_chat_template(messages, tokenize=False, chat_template=fmt.training_template)


@pytest.mark.parametrize("name,conv", list(cases()))
def test_unmarked_template_prefix_path_matches_reference(name, conv):
    """A model's own template without markers (here: each built-in, markers stripped) gives the
    same ids and labels as the marked reference, through prefix renders."""
    _, tok = builtin(name)  # installs tokens + the unmarked template on tok
    assert tok.chat_template == strip_generation_markers(BUILTINS[name].marked)
    fmt = TemplateFormatter("chat")
    fmt.setup(tok)
    fmt.training_template = None  # force the prefix-render path (it would recognise the built-in)
    messages = CONVERSATIONS[conv]
    got = fmt.encode_messages(messages)
    assert (got["input_ids"], got["labels"]) == reference(tok, BUILTINS[name].marked, messages)


@pytest.mark.parametrize("name", ["llama2", "mistral"])
def test_templates_without_tool_role_say_so(name):
    fmt, _ = builtin(name)
    with pytest.raises(DataError, match="only one leading system message"):
        fmt.encode_messages(TOOL)
    with pytest.raises(DataError, match="alternate"):
        fmt.encode_messages([{"role": "user", "content": "a"}, {"role": "user", "content": "b"},
                             {"role": "assistant", "content": "c"}])


def trained_text(tok, row):
    return tok.decode([t for t in row["labels"] if t != IGNORE_INDEX])


def test_what_is_trained_per_template():
    """The documented trained text of each template: answer + end-of-turn token (+ separator)."""
    conv = [SYSTEM, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there."}]
    expected = {
        "chatml": "Hello there.<|im_end|>\n",
        "llama3": "Hello there.<|eot_id|>",
        "llama2": " Hello there. <|im_end|>",  # tiny tokenizer's EOS is <|im_end|>
        "mistral": "Hello there.<|im_end|>",
        "alpaca": "Hello there.<|im_end|>",
        "plain": "Hello there.<|im_end|>",
    }
    for name, text in expected.items():
        fmt, tok = builtin(name)
        assert trained_text(tok, fmt.encode_messages(conv)) == text, name


def test_eos_and_end_of_turn_tokens_are_trained():
    fmt, tok = builtin("llama3")
    row = fmt.encode_messages(MULTI)
    eot = tok.convert_tokens_to_ids("<|eot_id|>")
    positions = [i for i, t in enumerate(row["input_ids"]) if t == eot]
    trained = [row["labels"][i] == eot for i in positions]
    assert trained == [False, False, True, False, True]  # system, user, assistant, user, assistant
    assert tok.eos_token == "<|eot_id|>"  # generation stops at the end of a turn


def test_rendered_text_of_builtins():
    conv = [SYSTEM, {"role": "user", "content": "Hi"}]
    prompts = {name: builtin(name)[0].render_prompt(conv) for name in BUILTINS}
    assert prompts["chatml"] == ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                                 "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    assert prompts["llama3"] == ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
                                 "You are a helpful assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
                                 "Hi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
    assert prompts["llama2"] == "<|endoftext|>[INST] <<SYS>>\nYou are a helpful assistant.\n<</SYS>>\n\nHi [/INST]"
    assert prompts["mistral"] == "<|endoftext|>[INST] You are a helpful assistant.\n\nHi [/INST]"
    assert prompts["alpaca"] == "You are a helpful assistant.\n\n### Instruction:\nHi\n\n### Response:\n"
    assert prompts["plain"] == "You are a helpful assistant.\n\nHi\n"
    alpaca, _ = builtin("alpaca")
    assert alpaca.render_prompt(conv[1:]).startswith("Below is an instruction that describes a task.")


def test_plain_separator_option():
    fmt, tok = builtin("plain", separator=" => ")
    row = fmt.encode_messages([{"role": "user", "content": "2 + 3"}, {"role": "assistant", "content": "5"}])
    assert tok.decode(row["input_ids"]) == "2 + 3 => 5<|im_end|>"
    # " 5" is one token straddling the prompt/answer boundary: trained, as transformers does
    assert trained_text(tok, row) == " 5<|im_end|>"
    assert (row["input_ids"], row["labels"]) == reference(
        tok, fmt.training_template, [{"role": "user", "content": "2 + 3"}, {"role": "assistant", "content": "5"}])


def test_system_prompt_injection():
    fmt, tok = builtin("chatml", system="Be brief.")
    convo = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    assert fmt.render_prompt(convo[:1]).startswith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user")
    row = fmt.encode_messages(convo)
    assert (row["input_ids"], row["labels"]) == reference(tok, fmt.training_template,
                                                          [{"role": "system", "content": "Be brief."}, *convo])
    # a conversation with its own system prompt keeps it
    own = fmt.render_prompt([{"role": "system", "content": "Mine."}, *convo[:1]])
    assert "Mine." in own and "Be brief." not in own
    # the caller's messages are not modified
    assert convo[0] == {"role": "user", "content": "Hi"} and len(convo) == 2


def test_no_assistant_turn_is_a_clear_error():
    fmt, _ = builtin("chatml")
    with pytest.raises(DataError, match="no assistant turn.*roles: system, user"):
        fmt.encode_messages([SYSTEM, {"role": "user", "content": "Hi"}])
    with pytest.raises(DataError, match="role 'bot'"):
        fmt.encode_messages([{"role": "bot", "content": "x"}])
    with pytest.raises(DataError, match="empty"):
        fmt.encode_messages([])
    with pytest.raises(DataError, match="message 2 is a str"):
        fmt.encode_messages([{"role": "user", "content": "x"}, "oops"])


def test_batch_encoding_matches_single_and_reports_bad_rows():
    fmt, _ = builtin("llama3")
    convs = [MULTI, [{"role": "user", "content": "only a question"}], UNICODE, TOOL]
    rows = fmt.encode_messages_batch(convs, errors="return")
    assert "no assistant turn" in rows[1]["error"] and rows[1]["input_ids"] == []
    for i in (0, 2, 3):
        assert rows[i] == fmt.encode_messages(convs[i])
    with pytest.raises(DataError, match="^row 1: conversation has no assistant turn"):
        fmt.encode_messages_batch(convs)


def test_truncation_keeps_the_start():
    fmt, _ = builtin("chatml")
    full = fmt.encode_messages(MULTI)
    cut = fmt.encode_messages(MULTI, max_length=40)
    assert len(full["input_ids"]) > 40
    assert cut["input_ids"] == full["input_ids"][:40] and cut["labels"] == full["labels"][:40]
    short = fmt.encode_messages(MULTI, max_length=10_000)
    assert short == full


def test_encode_text_trains_everything_and_appends_eos():
    fmt, tok = builtin("llama3")  # changes EOS to <|eot_id|>; documents still end with the old EOS
    row = fmt.encode_text("The quick brown fox jumps over the lazy dog.")
    assert row["labels"] == row["input_ids"]
    assert row["input_ids"][-1] == tok.convert_tokens_to_ids("<|im_end|>")
    assert tok.decode(row["input_ids"][:-1]) == "The quick brown fox jumps over the lazy dog."
    cut = fmt.encode_text("The quick brown fox jumps over the lazy dog.", max_length=3)
    assert cut["input_ids"] == row["input_ids"][:3] == cut["labels"]
    assert fmt.encode_text_batch(["a b", "c"]) == [fmt.encode_text("a b"), fmt.encode_text("c")]


def test_encode_prompt_matches_training_prefix():
    fmt, _ = builtin("chatml")
    convo = MULTI[:3]
    prompt_ids = fmt.encode_prompt(convo[:2])
    row = fmt.encode_messages(convo)
    assert row["input_ids"][: len(prompt_ids)] == prompt_ids
    assert all(label == IGNORE_INDEX for label in row["labels"][: len(prompt_ids)])
    assert row["labels"][len(prompt_ids)] != IGNORE_INDEX


def test_chat_formatter_uses_the_models_own_template():
    tok = fresh_tokenizer()
    # some template sftkit does not know: a blank line after each turn
    own = BUILTINS["chatml"].template.replace("'<|im_end|>' + '\\n'", "'<|im_end|>' + '\\n\\n'")
    tok.chat_template = own
    fmt = make_formatter(Template.of({"formatter": "chat"}))
    info = fmt.setup(tok)
    assert fmt.chat_template == own == tok.chat_template
    assert info["template"] == "model" and info["masking"] == "prefix renders"
    marked = BUILTINS["chatml"].marked.replace("'<|im_end|>' + '\\n'", "'<|im_end|>' + '\\n\\n'")
    assert marked.count("\\n\\n") == 2
    row = fmt.encode_messages(MULTI)
    assert (row["input_ids"], row["labels"]) == reference(tok, marked, MULTI)


def test_chat_formatter_with_marked_model_template_uses_one_render():
    tok = fresh_tokenizer()
    tok.chat_template = BUILTINS["chatml"].marked
    fmt = make_formatter(Template.of({}))  # default: chat
    assert fmt.name == "chat"
    assert fmt.setup(tok)["masking"] == "generation markers (model template)"
    assert fmt.chat_template == BUILTINS["chatml"].marked  # the model's own, as it came
    assert (lambda r: (r["input_ids"], r["labels"]))(fmt.encode_messages(TOOL)) == \
        reference(tok, BUILTINS["chatml"].marked, TOOL)


def test_not_prefix_preserving_template_is_a_clear_error():
    tok = fresh_tokenizer()
    # the generation prompt differs from how assistant turns are written in history
    tok.chat_template = BUILTINS["chatml"].template.replace("'<|im_start|>assistant\\n'", "'<|im_start|>assistant\\n<think>'")
    fmt = TemplateFormatter("chat")
    fmt.setup(tok)
    with pytest.raises(DataError, match="not prefix-preserving.*generation"):
        fmt.encode_messages(MULTI)


def test_make_formatter_through_registry_errors():
    with pytest.raises(PluginError, match='did you mean "chatml"'):
        make_formatter(Template.of({"formatter": "chatmll"}))


def test_encoding_before_setup_is_a_clear_error():
    fmt = make_formatter(Template.of({"formatter": "chatml"}))
    from sftkit.errors import SftkitError

    with pytest.raises(SftkitError, match="setup"):
        fmt.encode_messages(MULTI)


def test_registration_and_formatter_creation_import_nothing_heavy():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from sftkit.config import Template\nfrom sftkit.templates import make_formatter\n"
        "f = make_formatter(Template.of({'formatter': 'llama3', 'system': 'x'}))\n"
        "heavy = [m for m in ('torch', 'transformers', 'trl', 'datasets', 'numpy', 'jinja2') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "print(f.chat_template[:25])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("{{ '<|begin_of_text|>")


def test_known_trl_training_template_is_used_for_a_non_prefix_preserving_model_template():
    """Phi-3's template writes EOS after the last turn only (not prefix-preserving): the chat
    formatter uses TRL's marked training variant, as TRL's SFTTrainer does; masking=prefix refuses."""
    from sftkit.templates.known import _trl_pairs

    pairs = {name: (orig, marked) for orig, (name, marked) in _trl_pairs().items()}
    if "phi3_training" not in pairs:
        pytest.skip("TRL without phi3 training template")
    original, marked = pairs["phi3_training"]
    tok = fresh_tokenizer()
    from sftkit.templates.setup import add_special_tokens

    add_special_tokens(tok, ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"])
    tok.chat_template = original
    fmt = make_formatter(Template.of({"formatter": "chat"}))
    info = fmt.setup(tok)
    assert info["masking"] == "generation markers (trl:phi3_training)"
    assert fmt.chat_template == original == tok.chat_template  # the model's own stays saved
    row = fmt.encode_messages(MULTI)
    assert (row["input_ids"], row["labels"]) == reference(tok, marked, MULTI)
    strict = make_formatter(Template.of({"formatter": "chat", "masking": "prefix"}))
    assert strict.setup(tok)["masking"] == "prefix renders"
    with pytest.raises(DataError, match="not prefix-preserving"):
        strict.encode_messages(MULTI)


def test_setup_reports_the_trained_end_of_turn_token():
    assert builtin("chatml")[0].setup_info["end_of_turn_trained"] == "<|im_end|>"
    assert builtin("llama3")[0].setup_info["end_of_turn_trained"] == "<|eot_id|>"
    tok = fresh_tokenizer()
    tok.chat_template = BUILTINS["plain"].template.replace(" + eos_token", "")  # never trains a stop
    info = make_formatter(Template.of({})).setup(tok)
    assert info["end_of_turn_trained"] is None and "will not learn to stop" in info["warning"]
