"""Token ids and loss labels for conversations, from the character spans a template marks as trained.

Two ways to find the trained character spans of a rendered conversation:

* :func:`marked_spans`: the template has ``{% generation %}`` markers; one render per conversation
  records where each marked block starts and ends (transformers' own tracker).
* :func:`prefix_spans`: the template has no markers (e.g. a model's own template); each assistant turn
  ``i`` trains ``render(messages[:i+1])`` minus ``render(messages[:i], add_generation_prompt=True)``:
  everything the template writes for that turn after the generation prompt (content, end-of-turn
  token and the separator before the next message). The template must be prefix-preserving there.

Either way the rendered texts are tokenized in one batched call of the fast tokenizer, and a token is
trained when it is one of the tokens from the one holding a span's first character to the one holding
its last character: the rule of ``apply_chat_template(..., return_assistant_tokens_mask=True)``, so a
token that straddles the start of an answer (tokens merging across the boundary) is trained.
"""

from __future__ import annotations

from typing import Sequence

from ..api import IGNORE_INDEX


class RenderError(ValueError):
    """The template could not render a conversation (the message says why)."""


def clean_messages(messages: Sequence[dict]) -> list[dict]:
    """Copy messages dropping ``None`` values, as ``apply_chat_template`` does."""
    return [{k: v for k, v in m.items() if v is not None} for m in messages]


def template_kwargs(tokenizer) -> dict:
    """The variables a chat template sees besides the messages (bos_token, eos_token, ...)."""
    return dict(tokenizer.special_tokens_map)


def _compiled(template: str):
    """transformers' compiled template (same sandboxed environment and helpers), or None."""
    try:
        from transformers.utils.chat_template_utils import _compile_jinja_template
    except ImportError:  # pragma: no cover - older/newer transformers: use the public function
        return None
    return _compile_jinja_template(template)


def _render(template: str, messages: list[dict], kwargs: dict, add_generation_prompt: bool = False,
            with_spans: bool = False):
    """Render like ``apply_chat_template`` (same compiled template, tools/documents None), directly
    on the compiled template: the public wrapper re-copies every message on every call."""
    try:
        compiled = _compiled(template)
        if compiled is None or not hasattr(compiled.environment, "activate_tracker"):
            return _render_public(template, messages, kwargs, add_generation_prompt, with_spans)
        variables = dict(kwargs, messages=messages, tools=None, documents=None,
                         add_generation_prompt=add_generation_prompt)
        if not with_spans:
            return compiled.render(**variables), None
        blocks: list[str] = []
        spans: list = []
        with compiled.environment.activate_tracker(blocks, spans):
            for block in compiled.generate(**variables):
                blocks.append(block)
            text = "".join(blocks)
        return text, spans
    except RenderError:
        raise
    except Exception as exc:  # jinja TemplateError (raise_exception), UndefinedError, TypeError
        raise RenderError(f"{type(exc).__name__}: {exc}") from exc


def _render_public(template, messages, kwargs, add_generation_prompt, with_spans):
    from transformers.utils.chat_template_utils import render_jinja_template

    texts, spans = render_jinja_template(
        conversations=[messages], chat_template=template, add_generation_prompt=add_generation_prompt,
        return_assistant_tokens_mask=with_spans, **kwargs,
    )
    return texts[0], (spans[0] if with_spans else None)


def render(template: str, messages: list[dict], kwargs: dict, add_generation_prompt: bool = False) -> str:
    """Render one conversation with ``template``."""
    return _render(template, messages, kwargs, add_generation_prompt)[0]


def marked_spans(template: str, messages: list[dict], kwargs: dict) -> tuple[str, list[tuple[int, int]]]:
    """Render once; return the text and the ``(start, end)`` character span of each generation block."""
    text, spans = _render(template, messages, kwargs, with_spans=True)
    return text, [(s, e) for s, e in spans if e > s]


def prefix_spans(template: str, messages: list[dict], kwargs: dict) -> tuple[str, list[tuple[int, int]]]:
    """Spans of assistant turns for an unmarked template, by diffing renders of conversation prefixes."""
    full = render(template, messages, kwargs)
    spans = []
    for i, message in enumerate(messages):
        if message.get("role") != "assistant":
            continue
        prompt = render(template, messages[:i], kwargs, add_generation_prompt=True)
        upto = full if i == len(messages) - 1 else render(template, messages[: i + 1], kwargs)
        if not (upto.startswith(prompt) and full.startswith(upto)):
            raise RenderError(
                f"the chat template is not prefix-preserving at message {i + 1} (assistant): the prompt it "
                "renders with add_generation_prompt=True does not start the rendered conversation, so the "
                "trained tokens cannot be located; use a template with {% generation %} markers or a "
                "built-in formatter (chatml, llama3, ...)"
            )
        if len(upto) > len(prompt):
            spans.append((len(prompt), len(upto)))
    return full, spans


def _token_ranges(encoding, index: int, spans) -> list[tuple[int, int]]:
    """For each span: the tokens from the one holding its first char to the one holding its last."""
    ranges = []
    for start, end in spans:
        first = encoding.char_to_token(index, start)
        last = encoding.char_to_token(index, end - 1)
        # chars no token covers (rare: normalizers that drop text): move inwards to a covered one
        s, e = start, end - 1
        while first is None and s < e:
            s += 1
            first = encoding.char_to_token(index, s)
        while last is None and e > s:
            e -= 1
            last = encoding.char_to_token(index, e)
        if first is not None and last is not None:
            ranges.append((first, last + 1))
    return ranges


def encode_spans(tokenizer, texts: list[str], spans: list[list[tuple[int, int]]],
                 max_length: int | None = None) -> list[dict]:
    """Tokenize rendered texts in one batch (no special tokens added: templates write them) and
    return ``{"input_ids", "labels"}`` per text; truncation keeps the first ``max_length`` tokens."""
    if not getattr(tokenizer, "is_fast", False):
        raise RenderError("sftkit needs a fast (Rust) tokenizer to locate trained tokens; "
                          f"{type(tokenizer).__name__} is a slow one (load it with use_fast=True)")
    if not texts:
        return []
    encoding = tokenizer(list(texts), add_special_tokens=False, return_attention_mask=False)
    out = []
    for i, ids in enumerate(encoding["input_ids"]):
        ids = list(ids)
        labels = [IGNORE_INDEX] * len(ids)
        for first, stop in _token_ranges(encoding, i, spans[i]):
            labels[first:stop] = ids[first:stop]
        if max_length is not None and len(ids) > max_length:
            ids, labels = ids[:max_length], labels[:max_length]
        out.append({"input_ids": ids, "labels": labels})
    return out
