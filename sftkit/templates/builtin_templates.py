"""Built-in chat templates as Jinja strings, each written WITH ``{% generation %}`` markers.

The marked string is what sftkit renders to find the trained characters; the string installed on the
tokenizer (and saved with the model) is the same template with the markers removed
(:func:`strip_generation_markers`), so any Jinja runtime (vLLM, llama.cpp, TGI) can render it.

What each template trains (the characters inside the markers) is exactly what the template writes
for an assistant turn after the generation prompt, up to where the next message starts:

========  =========================================================  ===============================
name      layout of one exchange                                      trained
========  =========================================================  ===============================
chatml    ``<|im_start|>user\\nQ<|im_end|>\\n<|im_start|>assistant\\n``  ``A<|im_end|>\\n`` (as TRL's
                                                                      Qwen training templates)
llama3    ``<|begin_of_text|><|start_header_id|>user<|end_header_id|>``  ``A<|eot_id|>`` (A trimmed)
          ``\\n\\nQ<|eot_id|><|start_header_id|>assistant...\\n\\n``
llama2    ``<s>[INST] <<SYS>>\\nS\\n<</SYS>>\\n\\nQ [/INST]``              `` A </s>`` (A stripped)
mistral   ``<s>[INST] S\\n\\nQ [/INST]``                                ``A</s>``
alpaca    ``S\\n\\n### Instruction:\\nQ\\n\\n### Response:\\n``            ``A</s>``
plain     ``S\\n\\nQ`` + separator (default ``\\n``)                    ``A</s>``
========  =========================================================  ===============================

``</s>`` stands for the tokenizer's own EOS token (``eos_token``); ``<s>`` for its BOS token (left
out when it has none). Tool messages: chatml renders role ``tool``, llama3 renders them as
``ipython`` turns, alpaca as ``### Input:`` blocks, plain like user text; llama2 and mistral accept
only alternating user/assistant turns (after one optional system message) and say so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_GEN_TAG = re.compile(r"\{%-?\s*(?:end)?generation\s*-?%\}")


def has_generation_markers(template: str | None) -> bool:
    """True when the Jinja template marks assistant output with ``{% generation %}``."""
    return bool(template) and re.search(r"\{%-?\s*generation\s*-?%\}", template) is not None


def strip_generation_markers(template: str) -> str:
    """The template without ``{% generation %}`` / ``{% endgeneration %}`` tags (same rendering)."""
    return _GEN_TAG.sub("", template)


def _roles_alternate(name: str) -> str:
    """Jinja: raise unless roles (after the system message) alternate user/assistant."""
    return (
        "{% if message['role'] not in ['user', 'assistant'] %}"
        "{{ raise_exception('" + name + " template: only one leading system message, then user and assistant "
        "turns are supported, got role ' + message['role']) }}{% endif %}"
        "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
        "{{ raise_exception('" + name + " template: roles must alternate user/assistant/user/... "
        "(after an optional system message)') }}{% endif %}"
    )


_SPLIT_SYSTEM = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}"
    "{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}"
)

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['role'] == 'assistant' %}"
    "{% generation %}{{ message['content'] + '<|im_end|>' + '\\n' }}{% endgeneration %}"
    "{% else %}{{ message['content'] + '<|im_end|>' + '\\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

LLAMA3 = (
    "{{ '<|begin_of_text|>' }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'tool' %}{% set role = 'ipython' %}{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<|start_header_id|>' + role + '<|end_header_id|>\\n\\n' }}"
    "{% if message['role'] == 'assistant' %}"
    "{% generation %}{{ message['content'] | trim + '<|eot_id|>' }}{% endgeneration %}"
    "{% else %}{{ message['content'] | trim + '<|eot_id|>' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)

LLAMA2 = (
    _SPLIT_SYSTEM
    + "{% for message in loop_messages %}"
    + _roles_alternate("llama2")
    + "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ (bos_token or '') + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% else %}{% generation %}{{ ' ' + content.strip() + ' ' + eos_token }}{% endgeneration %}{% endif %}"
    "{% endfor %}"
)

MISTRAL = (
    _SPLIT_SYSTEM
    + "{{ bos_token or '' }}"
    "{% for message in loop_messages %}"
    + _roles_alternate("mistral")
    + "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = system_message + '\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + content + ' [/INST]' }}"
    "{% else %}{% generation %}{{ content + eos_token }}{% endgeneration %}{% endif %}"
    "{% endfor %}"
)

ALPACA_PREAMBLE = ("Below is an instruction that describes a task. "
                   "Write a response that appropriately completes the request.")

ALPACA = (
    _SPLIT_SYSTEM
    + "{% if system_message == false %}{% set system_message = '" + ALPACA_PREAMBLE + "' %}{% endif %}"
    "{{ system_message }}"
    "{% for message in loop_messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '\\n\\n### Response:\\n' }}"
    "{% generation %}{{ message['content'] + eos_token }}{% endgeneration %}"
    "{% elif message['role'] == 'tool' %}{{ '\\n\\n### Input:\\n' + message['content'] }}"
    "{% elif message['role'] == 'system' %}{{ '\\n\\n' + message['content'] }}"
    "{% else %}{{ '\\n\\n### Instruction:\\n' + message['content'] }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '\\n\\n### Response:\\n' }}{% endif %}"
)


def plain_template(separator: str = "\n") -> str:
    """Prompt/completion layout: system + blank line, then user text + ``separator``, then the answer + EOS."""
    import json

    sep = json.dumps(separator)  # a valid Jinja string literal
    return (
        "{% for message in messages %}"
        "{% if message['role'] == 'assistant' %}"
        "{% generation %}{{ message['content'] + eos_token }}{% endgeneration %}"
        "{% elif message['role'] == 'system' %}{{ message['content'] + '\\n\\n' }}"
        "{% else %}{{ message['content'] + " + sep + " }}{% endif %}"
        "{% endfor %}"
    )


PLAIN = plain_template("\n")


@dataclass(frozen=True)
class BuiltinTemplate:
    """A built-in layout: its marked Jinja string, the special tokens it needs, its end-of-turn token."""

    name: str
    marked: str
    special_tokens: tuple = ()  # strings the tokenizer must know as single special tokens
    end_of_turn: str | None = None  # becomes tokenizer.eos_token (generation stops there); None: keep EOS
    doc: str = ""

    @property
    def template(self) -> str:
        """The template saved with the model (markers removed)."""
        return strip_generation_markers(self.marked)


BUILTINS = {
    "chatml": BuiltinTemplate("chatml", CHATML, ("<|im_start|>", "<|im_end|>"), "<|im_end|>",
                              "ChatML (<|im_start|>role ... <|im_end|>), as Qwen and SmolLM use."),
    "llama3": BuiltinTemplate("llama3", LLAMA3, ("<|begin_of_text|>", "<|start_header_id|>",
                                                 "<|end_header_id|>", "<|eot_id|>"), "<|eot_id|>",
                              "Llama 3 headers (<|start_header_id|>role<|end_header_id|> ... <|eot_id|>)."),
    "llama2": BuiltinTemplate("llama2", LLAMA2, (), None,
                              "Llama 2 chat ([INST] <<SYS>> ... [/INST] answer </s>)."),
    "mistral": BuiltinTemplate("mistral", MISTRAL, (), None,
                               "Mistral instruct ([INST] ... [/INST]answer</s>); a system prompt opens the first user turn."),
    "alpaca": BuiltinTemplate("alpaca", ALPACA, (), None,
                              "Alpaca (### Instruction: / ### Response:), with the Alpaca preamble unless a system prompt is given."),
    "plain": BuiltinTemplate("plain", PLAIN, (), None,
                             "Plain prompt/completion: the prompt, a separator (default newline), the answer and EOS."),
}
