"""`sftkit export --format ollama`: the Modelfile's Go template renders what the model's chat template renders."""

import re

import pytest

from sftkit.errors import SftkitError
from sftkit.tiny import CHATML_TEMPLATE

SMOLLM2_TEMPLATE = (  # SmolLM2-Instruct's own: a default system prompt when a conversation has none
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")

TWO_TURNS = [{"role": "user", "content": "What is the capital of France?"},
             {"role": "assistant", "content": '{"answer": "Paris"}'},
             {"role": "user", "content": "And of Spain?"}]


# --------------------------------------------------------------- a renderer for the Go subset export emits
_ACTION = re.compile(r"\{\{\s*(.*?)\s*\}\}", re.S)


def _parse(tokens, i=0, stop=("end",)):
    """Nodes until an action in ``stop``; returns (nodes, index of that action)."""
    nodes = []
    while i < len(tokens):
        kind, value = tokens[i]
        if kind == "text":
            nodes.append(("text", value))
            i += 1
        elif value == ".Content":
            nodes.append(("content",))
            i += 1
        elif value == "range .Messages":
            body, i = _parse(tokens, i + 1)
            nodes.append(("range", body))
            i += 1
        elif value.startswith("if eq .Role "):
            branches = []
            role, i = value.removeprefix("if eq .Role ").strip('"'), i + 1
            while True:
                body, i = _parse(tokens, i, stop=("end", "else if"))
                branches.append((role, body))
                action = tokens[i][1]
                i += 1
                if action == "end":
                    break
                role = action.removeprefix("else if eq .Role ").strip('"')
            nodes.append(("if", branches))
        elif any(value == s or value.startswith(s + " ") for s in stop):
            return nodes, i
        else:
            raise AssertionError(f"unexpected action {value!r}")
    return nodes, i


def render_go(template: str, messages: list[dict], system: str | None) -> str:
    """Render Ollama's way: SYSTEM becomes the first message when the conversation has none."""
    if system and messages[0]["role"] != "system":
        messages = [{"role": "system", "content": system}] + messages
    tokens, pos = [], 0
    for m in _ACTION.finditer(template):
        tokens += [("text", template[pos:m.start()]), ("action", m.group(1))]
        pos = m.end()
    tokens.append(("text", template[pos:]))
    nodes, _ = _parse(tokens, stop=())

    def run(nodes, message=None):
        out = []
        for node in nodes:
            if node[0] == "text":
                out.append(node[1])
            elif node[0] == "content":
                out.append(message["content"])
            elif node[0] == "range":
                out += [run(node[1], m) for m in messages]
            else:
                out += [run(body, message) for role, body in node[1] if role == message["role"]][:1]
        return "".join(out)

    return run(nodes)


def _modelfile_parts(text: str) -> tuple[str, str | None, list[str]]:
    template = re.search(r'^TEMPLATE """(.*?)"""$', text, re.S | re.M).group(1)
    system = re.search(r'^SYSTEM """(.*?)"""$', text, re.S | re.M)
    stops = re.findall(r'^PARAMETER stop "(.*)"$', text, re.M)
    return template, system.group(1) if system else None, stops


# --------------------------------------------------------------- tests
def _tokenizer(template):
    from sftkit.tiny import tiny_tokenizer

    return tiny_tokenizer(chat_template=template)


@pytest.mark.parametrize("template", [CHATML_TEMPLATE, SMOLLM2_TEMPLATE], ids=["chatml", "smollm2"])
@pytest.mark.parametrize("with_system", [False, True])
def test_modelfile_template_renders_like_the_chat_template(template, with_system):
    from sftkit.export.ollama import chat_parts, modelfile

    tok = _tokenizer(template)
    text = modelfile("m.gguf", chat_parts(tok), ["<|im_end|>"], None)
    go, system, stops = _modelfile_parts(text)
    messages = ([{"role": "system", "content": "Answer as JSON."}] if with_system else []) + TWO_TURNS
    expected = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert render_go(go, messages, system) == expected
    assert stops == ["<|im_end|>"] and text.startswith("FROM ./m.gguf\n")


def test_the_recipe_system_prompt_becomes_system():
    from sftkit.export.ollama import chat_parts, modelfile

    tok = _tokenizer(CHATML_TEMPLATE)
    go, system, _ = _modelfile_parts(modelfile("m.gguf", chat_parts(tok), [], "Be brief."))
    assert system == "Be brief."
    expected = tok.apply_chat_template([{"role": "system", "content": "Be brief."}] + TWO_TURNS, tokenize=False,
                                       add_generation_prompt=True)
    assert render_go(go, TWO_TURNS, system) == expected


def test_every_builtin_template_is_translated_exactly_or_refused_in_one_line():
    from sftkit.export.ollama import chat_parts, go_template
    from sftkit.templates.builtin_templates import BUILTINS

    translated = []
    for name, builtin in BUILTINS.items():
        tok = _tokenizer(builtin.template)
        try:
            parts = chat_parts(tok)
        except SftkitError as err:
            assert "\n" not in str(err)
            continue
        translated.append(name)
        for messages in (TWO_TURNS, [{"role": "system", "content": "S."}] + TWO_TURNS):
            assert render_go(go_template(parts), messages, parts.default_system) == tok.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True), name
    assert {"chatml", "llama3"} <= set(translated)


def test_export_format_ollama_writes_gguf_modelfile_and_verification(tmp_path):
    from click.testing import CliRunner

    from sftkit.commands.export import export
    from sftkit.tiny import save_tiny_model

    src = save_tiny_model(tmp_path / "model", chat_template=CHATML_TEMPLATE)
    res = CliRunner().invoke(export, [src, "--format", "ollama", "-o", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == ["Modelfile", "out-f16.gguf", "out-f16.gguf.verify.json"]
    assert (tmp_path / "out" / "Modelfile").read_text().startswith("FROM ./out-f16.gguf\n")


def test_a_template_ollama_cannot_express_is_refused_before_writing(tmp_path):
    from click.testing import CliRunner

    from sftkit.commands.export import export
    from sftkit.tiny import save_tiny_model

    odd = "{% for m in messages %}{{ m['content'] }}{% if loop.index0 == 1 %}[second]{% endif %}|{% endfor %}"
    src = save_tiny_model(tmp_path / "model", chat_template=odd)
    res = CliRunner().invoke(export, [src, "--format", "ollama", "-o", str(tmp_path / "out")])
    assert res.exit_code != 0 and "Ollama" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "out").exists()
