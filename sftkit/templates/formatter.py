"""Formatters driven by Jinja chat templates: the model's own (``chat``) and the built-in layouts.

Usage (the contract in :class:`sftkit.api.Formatter`)::

    fmt = make_formatter(config.template)      # sftkit.templates.make_formatter
    fmt.setup(tokenizer, model)                # installs tokenizer.chat_template (+ tokens, resize)
    row = fmt.encode_messages(messages, max_length=512)   # {"input_ids": [...], "labels": [...]}
    rows = fmt.encode_messages_batch(list_of_messages, max_length=512, errors="return")
    prompt = fmt.render_prompt(messages)       # text ending with the opened assistant turn
"""

from __future__ import annotations

from typing import Any, Sequence

from ..api import IGNORE_INDEX
from ..errors import DataError, SftkitError
from . import masks
from .builtin_templates import BUILTINS, BuiltinTemplate, has_generation_markers, plain_template

ROLES = ("system", "user", "assistant", "tool")


class TemplateFormatter:
    """A :class:`sftkit.api.Formatter` rendering conversations with a Jinja chat template.

    ``builtin``: the built-in layout to install; None means the tokenizer's own template (``chat``),
    with ``fallback`` (a built-in name) installed when the tokenizer has none.
    """

    def __init__(self, name: str, *, builtin: BuiltinTemplate | None = None, system: str | None = None,
                 fallback: str = "chatml", masking: str = "auto"):
        if masking not in ("auto", "prefix"):
            raise SftkitError(f"formatter {name!r}: masking must be auto or prefix, got {masking!r}",
                              where="[template].masking")
        self.name = name
        self.system = system
        self.builtin = builtin
        self.fallback = fallback
        self.masking = masking
        self.tokenizer: Any = None
        self.training_template: str | None = builtin.marked if builtin else None
        self._template: str | None = builtin.template if builtin else None
        self._document_eos: str | None = None
        self.setup_info: dict = {}

    # -- set-up ---------------------------------------------------------------------------------
    @property
    def chat_template(self) -> str | None:
        """The Jinja template saved with the model (no generation markers for built-ins)."""
        return self._template

    @property
    def uses_markers(self) -> bool:
        """True when trained spans come from ``{% generation %}`` markers (one render per row)."""
        return self.training_template is not None

    def setup(self, tokenizer, model=None) -> dict:
        """Install the template on ``tokenizer`` (and tokens / EOS / pad it needs, resizing ``model``'s
        embeddings when tokens were added). Returns what changed (also in ``self.setup_info``)."""
        from .known import known_marked_template
        from .setup import prepare_tokenizer

        if not getattr(tokenizer, "is_fast", False):
            raise SftkitError(f"formatter {self.name!r} needs a fast (Rust) tokenizer to locate trained tokens; "
                              f"got {type(tokenizer).__name__}", hint="load the tokenizer with use_fast=True")
        builtin = self.builtin
        own = tokenizer.chat_template
        if isinstance(own, dict):
            own = own.get("default")
        if builtin is None and not own:
            builtin = BUILTINS[self.fallback]  # a base model without a template gets one
            info = {"fallback": self.fallback}
        else:
            info = {}
        if builtin is not None:
            info.update(prepare_tokenizer(tokenizer, model, template=builtin.template,
                                          special_tokens=builtin.special_tokens, end_of_turn=builtin.end_of_turn))
            self._template, self.training_template = builtin.template, builtin.marked
            info["masking"] = f"generation markers (sftkit:{builtin.name})"
        else:
            info.update(prepare_tokenizer(tokenizer, model, template=None))  # keep it as it is
            self._template = own
            known = None if has_generation_markers(own) else known_marked_template(own)
            if self.masking == "prefix":
                self.training_template, info["masking"] = None, "prefix renders"
            elif has_generation_markers(own):
                self.training_template, info["masking"] = own, "generation markers (model template)"
            elif known is not None:
                self.training_template, info["masking"] = known[1], f"generation markers ({known[0]})"
            else:
                self.training_template, info["masking"] = None, "prefix renders"
        if self._document_eos is None or tokenizer is not self.tokenizer:  # a second setup keeps the first's
            self._document_eos = info.get("document_eos") or tokenizer.eos_token
        info["template"] = builtin.name if builtin is not None else "model"
        self.tokenizer = tokenizer
        info.update(self._probe_end_of_turn())
        self.setup_info = info
        return info

    def _probe_end_of_turn(self) -> dict:
        """Encode a two-turn probe and report the last trained token: it should be an end-of-turn /
        EOS special token, or the model never learns to stop."""
        probe = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
        try:
            row = self.encode_messages(probe)
        except SftkitError as exc:
            return {"end_of_turn_trained": None, "warning": f"probe conversation failed: {exc}"}
        tok = self.tokenizer
        special = set(getattr(tok, "all_special_ids", []) or []) | {tok.eos_token_id}
        trained = [t for t in row["labels"] if t != IGNORE_INDEX]
        ends = [t for t in trained if t in special]
        if ends:
            return {"end_of_turn_trained": tok.convert_ids_to_tokens(ends[-1])}
        return {"end_of_turn_trained": None,
                "warning": f"template {self.name!r} trains no end-of-turn/EOS token after an answer: the model "
                           "will not learn to stop; use a template that ends assistant turns with EOS"}

    def _tok(self):
        if self.tokenizer is None:
            raise SftkitError(f"formatter {self.name!r}: call setup(tokenizer) before encoding or rendering")
        return self.tokenizer

    # -- conversations --------------------------------------------------------------------------
    def prepare_messages(self, messages: Sequence[dict], *, need_assistant: bool = False) -> list[dict]:
        """Check roles, add the ``system`` prompt when the conversation does not start with one."""
        if not isinstance(messages, (list, tuple)) or not messages:
            raise DataError("conversation is empty: expected a list of {role, content} messages")
        for i, m in enumerate(messages):
            if not isinstance(m, dict):
                raise DataError(f"message {i + 1} is a {type(m).__name__}, expected a {{role, content}} mapping")
        msgs = masks.clean_messages(messages)
        for i, m in enumerate(msgs):
            role = m.get("role")
            if role not in ROLES:
                raise DataError(f"message {i + 1} has role {role!r}; expected one of {', '.join(ROLES)}")
        if self.system and msgs[0]["role"] != "system":
            msgs.insert(0, {"role": "system", "content": self.system})
        if need_assistant and not any(m["role"] == "assistant" for m in msgs):
            roles = ", ".join(m["role"] for m in msgs)
            raise DataError(f"conversation has no assistant turn, so nothing would be trained (roles: {roles})",
                            hint="add the expected answer as an assistant message, or drop the row")
        return msgs

    def _spans(self, msgs: list[dict], kwargs: dict):
        try:
            if self.training_template is not None:
                text, spans = masks.marked_spans(self.training_template, msgs, kwargs)
            else:
                text, spans = masks.prefix_spans(self._template, msgs, kwargs)
        except masks.RenderError as exc:
            roles = ", ".join(m["role"] for m in msgs)
            raise DataError(f"template {self.name!r} cannot render this conversation (roles: {roles}): {exc}") from exc
        if not spans:
            raise DataError(f"template {self.name!r} renders no assistant text for this conversation")
        return text, spans

    def encode_messages_batch(self, conversations: Sequence[Sequence[dict]], max_length: int | None = None,
                              *, errors: str = "raise") -> list[dict]:
        """Encode many conversations at once (one render each, one batched tokenizer call).

        Returns one ``{"input_ids", "labels"}`` per conversation (labels: the token id where trained,
        ``-100`` elsewhere; truncation keeps the first ``max_length`` tokens). ``errors="raise"`` raises
        :class:`DataError` naming the row index; ``errors="return"`` gives a bad row
        ``{"input_ids": [], "labels": [], "error": message}`` instead.
        """
        tokenizer = self._tok()
        kwargs = masks.template_kwargs(tokenizer)
        texts, spans, failed = [], [], {}
        for idx, conv in enumerate(conversations):
            try:
                text, sp = self._spans(self.prepare_messages(conv, need_assistant=True), kwargs)
            except DataError as exc:
                if errors == "raise":
                    if len(conversations) > 1:
                        raise DataError(exc.message, where=f"row {idx}", hint=exc.hint) from exc
                    raise
                failed[idx] = str(exc)
                continue
            texts.append(text)
            spans.append(sp)
        encoded = iter(masks.encode_spans(tokenizer, texts, spans, max_length))
        return [{"input_ids": [], "labels": [], "error": failed[i]} if i in failed else next(encoded)
                for i in range(len(conversations))]

    def encode_messages(self, messages: Sequence[dict], max_length: int | None = None) -> dict:
        """``{"input_ids", "labels"}`` for one conversation; raises :class:`DataError` when it cannot
        be encoded (no assistant turn, roles the template rejects)."""
        return self.encode_messages_batch([messages], max_length)[0]

    def render(self, messages: Sequence[dict], add_generation_prompt: bool = False) -> str:
        """The conversation rendered with the saved template (system prompt added)."""
        tokenizer = self._tok()
        msgs = self.prepare_messages(messages)
        try:
            return masks.render(self._template, msgs, masks.template_kwargs(tokenizer), add_generation_prompt)
        except masks.RenderError as exc:
            raise DataError(f"template {self.name!r} cannot render this conversation: {exc}") from exc

    def render_prompt(self, messages: Sequence[dict]) -> str:
        """Prompt text for generation: the history rendered and the assistant turn opened. It already
        holds the template's special tokens: tokenize it with ``add_special_tokens=False``."""
        return self.render(messages, add_generation_prompt=True)

    def encode_prompt(self, messages: Sequence[dict]) -> list[int]:
        """Token ids of :meth:`render_prompt` (no special tokens added twice)."""
        return self._tok()(self.render_prompt(messages), add_special_tokens=False)["input_ids"]

    # -- raw text -------------------------------------------------------------------------------
    @property
    def document_eos_id(self) -> int | None:
        """The EOS appended to raw text: the tokenizer's EOS before set-up changed it to an end-of-turn token."""
        tokenizer = self._tok()
        token = self._document_eos or tokenizer.eos_token
        return tokenizer.convert_tokens_to_ids(token) if token is not None else None

    def encode_text_batch(self, texts: Sequence[str], max_length: int | None = None) -> list[dict]:
        """Raw documents for continued pretraining: tokenizer's own special tokens (e.g. BOS), EOS
        appended, every token trained (labels == input_ids); truncation keeps the start."""
        tokenizer = self._tok()
        eos = self.document_eos_id
        out = []
        for ids in tokenizer(list(texts), add_special_tokens=True)["input_ids"]:
            ids = list(ids)
            if eos is not None and (not ids or ids[-1] != eos):
                ids.append(eos)
            if max_length is not None:
                ids = ids[:max_length]
            out.append({"input_ids": ids, "labels": list(ids)})
        return out

    def encode_text(self, text: str, max_length: int | None = None) -> dict:
        """One raw document: see :meth:`encode_text_batch`."""
        if not isinstance(text, str):
            raise DataError(f"text must be a string, got {type(text).__name__}")
        return self.encode_text_batch([text], max_length)[0]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} system={'yes' if self.system else 'no'}>"


def labels_mask(labels: Sequence[int]) -> list[bool]:
    """Which positions are trained."""
    return [label != IGNORE_INDEX for label in labels]


# -- factories (registered in sftkit.builtin.formatters) ------------------------------------------

def chat_formatter(options: dict) -> TemplateFormatter:
    """The model's own chat template (a built-in one when the model has none)."""
    return TemplateFormatter("chat", system=options.get("system"), fallback=options.get("fallback", "chatml"),
                             masking=options.get("masking", "auto"))


def _builtin_factory(name: str):
    def factory(options: dict) -> TemplateFormatter:
        return TemplateFormatter(name, builtin=BUILTINS[name], system=options.get("system"))

    factory.__name__ = f"{name}_formatter"
    factory.__doc__ = BUILTINS[name].doc
    return factory


chatml_formatter = _builtin_factory("chatml")
llama3_formatter = _builtin_factory("llama3")
llama2_formatter = _builtin_factory("llama2")
mistral_formatter = _builtin_factory("mistral")
alpaca_formatter = _builtin_factory("alpaca")


def plain_formatter(options: dict) -> TemplateFormatter:
    """Plain prompt/completion layout with a configurable separator between prompt and answer."""
    sep = options.get("separator", "\n")
    base = BUILTINS["plain"]
    builtin = base if sep == "\n" else BuiltinTemplate("plain", plain_template(sep), doc=base.doc)
    return TemplateFormatter("plain", builtin=builtin, system=options.get("system"))
