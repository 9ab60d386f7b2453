"""An Ollama ``Modelfile`` for an exported GGUF: the chat template translated into Ollama's Go-template syntax.

The translation is derived by rendering the model's own chat template on probe conversations: each role's
text before and after its content, the generation prompt, and a default system prompt the template adds
when a conversation has none (SmolLM2's does). It is checked on a probe conversation before anything is
written; a template whose rendering is not "prefix + content + suffix" per message is refused in one line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import SftkitError

ROLES = ("system", "user", "assistant")
_PROBE = {"system": "\u2460sys\u2461", "user": "\u2460usr\u2461", "assistant": "\u2460ast\u2461"}


@dataclass
class ChatParts:
    """The pieces of a per-message chat template: ``lead`` once at the start, ``prefix[role]`` + content +
    ``suffix[role]`` per message, ``generation`` after the last one; ``default_system`` the system prompt the
    template inserts when a conversation has none (None: it inserts none)."""

    lead: str
    prefix: dict
    suffix: dict
    generation: str
    default_system: str | None

    def render(self, messages: list[dict], system: str | None = None) -> str:
        """The text these parts give ``messages`` (+ the generation prompt), ``system`` added when none."""
        system = system if system is not None else self.default_system
        if system is not None and not (messages and messages[0]["role"] == "system"):
            messages = [{"role": "system", "content": system}] + list(messages)
        body = "".join(self.prefix[m["role"]] + m["content"] + self.suffix[m["role"]] for m in messages)
        return self.lead + body + self.generation


def _render(tokenizer, messages, generation=False) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)


def _split(text: str, content: str) -> tuple[str, str]:
    if text.count(content) != 1:
        raise ValueError(content)
    before, _, after = text.partition(content)
    return before, after


def chat_parts(tokenizer) -> ChatParts:
    """Derive :class:`ChatParts` from ``tokenizer.chat_template``; raises SftkitError (one line) when it has none
    or is not a per-message template."""
    if not getattr(tokenizer, "chat_template", None):
        raise SftkitError("the model has no chat template, so an Ollama TEMPLATE cannot be written",
                          hint="export --format gguf, or train with a [template] so the run saves one")
    s, u, a = ({"role": r, "content": _PROBE[r]} for r in ROLES)
    try:
        t_s = _render(tokenizer, [s])
        t_su = _render(tokenizer, [s, u])
        t_sua = _render(tokenizer, [s, u, a])
        t_gen = _render(tokenizer, [s, u], generation=True)
        t_u = _render(tokenizer, [u])
        if not (t_su.startswith(t_s) and t_sua.startswith(t_su) and t_gen.startswith(t_su)):
            raise ValueError("not cumulative")
        pre_s, suf_s = _split(t_s, _PROBE["system"])
        pre_u, suf_u = _split(t_su[len(t_s):], _PROBE["user"])
        pre_a, suf_a = _split(t_sua[len(t_su):], _PROBE["assistant"])
        generation = t_gen[len(t_su):]
        user_block = pre_u + _PROBE["user"] + suf_u
        if not t_u.endswith(user_block):
            raise ValueError("user turn alone")
        head = t_u[: -len(user_block)]
        default_system, lead = None, head
        if head.startswith(pre_s) and head.endswith(suf_s) and len(head) >= len(pre_s) + len(suf_s) and head != "":
            default_system = head[len(pre_s): len(head) - len(suf_s)]
            lead = ""
        elif not pre_s.startswith(head):
            raise ValueError("lead")
        else:
            pre_s = pre_s[len(head):]
    except Exception as err:  # the template errored on a probe, or does not wrap each message the same way
        raise SftkitError("the chat template does not wrap every message the same way, so Ollama's TEMPLATE "
                          "cannot express it",
                          hint="export --format gguf (the file carries the chat template itself)") from err
    parts = ChatParts(lead, {"system": pre_s, "user": pre_u, "assistant": pre_a},
                      {"system": suf_s, "user": suf_u, "assistant": suf_a}, generation, default_system)
    _check(tokenizer, parts)
    return parts


def _check(tokenizer, parts: ChatParts) -> None:
    """The parts must render a two-turn conversation (with and without a system prompt) as the template does."""
    probe = [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello!"},
             {"role": "user", "content": "And now?"}]
    for messages in (probe, [{"role": "system", "content": "Be brief."}] + probe):
        if parts.render(messages) != _render(tokenizer, messages, generation=True):
            raise SftkitError("the chat template renders conversations in a way Ollama's TEMPLATE cannot express "
                              "(it is not the same text around every message)",
                              hint="export --format gguf (the file carries the chat template itself)")


def _go_literal(text: str) -> str:
    if "{{" in text or "}}" in text or '"""' in text:
        raise SftkitError("the chat template's text contains '{{', '}}' or '\"\"\"', which a Modelfile cannot hold",
                          hint="export --format gguf")
    return text


def go_template(parts: ChatParts) -> str:
    """Ollama's TEMPLATE (Go text/template over ``.Messages``) rendering what ``parts`` render."""
    branches = "".join(
        f'{{{{ {"if" if i == 0 else "else if"} eq .Role "{role}" }}}}{_go_literal(parts.prefix[role])}'
        f'{{{{ .Content }}}}{_go_literal(parts.suffix[role])}'
        for i, role in enumerate(ROLES))
    return f"{_go_literal(parts.lead)}{{{{ range .Messages }}}}{branches}{{{{ end }}}}{{{{ end }}}}" \
           f"{_go_literal(parts.generation)}"


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def modelfile(gguf_name: str, parts: ChatParts, stops: list[str], system: str | None) -> str:
    """The Modelfile's text: FROM, TEMPLATE, a PARAMETER stop per stop string, SYSTEM."""
    lines = [f"FROM ./{gguf_name}", f'TEMPLATE """{go_template(parts)}"""']
    lines += [f"PARAMETER stop {_quoted(s)}" for s in stops]
    system = system if system is not None else parts.default_system
    if system:
        lines.append(f'SYSTEM """{_go_literal(system)}"""')
    return "\n".join(lines) + "\n"


def stop_strings(tokenizer, stop_ids) -> list[str]:
    """The text of each stop token id (the strings a runtime stops generation at)."""
    out = []
    for i in stop_ids:
        text = tokenizer.convert_ids_to_tokens(int(i))
        if text and text not in out:
            out.append(text)
    return out


def write_modelfile(directory: Path, text: str) -> Path:
    """Write ``directory/Modelfile`` atomically."""
    target = Path(directory) / "Modelfile"
    tmp = target.with_name(f".Modelfile.{os.getpid()}.partial")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, target)
    return target
