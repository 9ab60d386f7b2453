"""Record formats: the machinery that detects them, checks their fields and converts rows with them,
and sftkit's own formats, each a :class:`RecordFormat` declared beside its converter.

A format is a registered component (``sftkit_register_formats``; sftkit's own are listed in
:mod:`sftkit.builtin.formats` and registered like a plugin's), so nothing here names one: the
functions below read what the registry holds.

sftkit's own input formats and the fields they need (``columns = {field = "their_column"}`` renames):

================= =============================================== ==============
format            fields                                          canonical kind
================= =============================================== ==============
prompt_completion prompt (str or messages), completion, [system]  messages
messages          messages: [{role, content}]                     messages
sharegpt          conversations: [{from, value}]                  messages
alpaca            instruction, [input], output, [system]          messages
text              text                                            text
preference        [prompt], chosen, rejected                      preference
labeled           prompt, completion, label (bool/good/bad/1/0)   labeled
classification    text, label                                     classification
================= =============================================== ==============

Each converter takes one raw row (a dict) and returns the canonical record, or raises
:class:`RowError` with a short ``reason`` (counted when skipping) and a ``detail`` (the message).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from ..errors import DataError, PluginError, did_you_mean
from ..records import RowError

if TYPE_CHECKING:
    from ..registry import Component, Registry

ROLES = ("system", "user", "assistant", "tool")
ROLE_ALIASES = {
    "human": "user", "gpt": "assistant", "model": "assistant", "bot": None,
    "function": "tool", "observation": "tool", "function_response": "tool", "ipython": "tool",
}
ROLE_NAMES = {**{r: r for r in ROLES}, **{k: v for k, v in ROLE_ALIASES.items() if v}}

LABEL_TRUE = {"true", "good", "1", "yes", "chosen"}
LABEL_FALSE = {"false", "bad", "0", "no", "rejected"}

__all__ = ["RowError", "RecordFormat", "convert", "detect_format", "check_fields", "column_plan"]


@dataclass(frozen=True)
class RecordFormat:
    """One input record format, as sftkit's own declare themselves: ``name``, the canonical kind it
    ``emits``, the ``fields`` a row needs (each a name, or a tuple of alternative names, the first
    shown in messages), the ``optional`` fields it also reads, ``convert(row) -> record``, the
    priority with which ``format = "auto"`` may pick it (``detect``, higher first; None: only when
    named), an optional ``match(columns, first_row) -> bool`` for rows told apart by more than field
    names, and a ``doc`` line. Registered with :meth:`registration`, as a plugin registers its own."""

    name: str
    emits: str
    fields: tuple
    convert: Callable[[dict], dict]
    optional: tuple = ()
    detect: float | None = None
    match: Callable[[list, dict | None], bool] | None = None
    doc: str = ""

    def registration(self) -> dict:
        """The keywords of ``register(name, convert, **...)`` for this format."""
        return {"doc": self.doc, "emits": self.emits, "fields": list(self.fields), "optional": list(self.optional),
                "detect": self.detect, "match": self.match}


# ---------------------------------------------------------------------------------- the registered formats

def _registry(registry: Registry | None) -> Registry:
    if registry is None:
        from ..plugins import get_host

        return get_host().registry
    return registry


def find_format(name: str, registry: Registry | None = None) -> Component | None:
    """The registered format ``name`` (or ``plugin:name``) names, or None."""
    return _registry(registry).find("formats", name)


def _format(fmt: str | Component, registry: Registry | None) -> Component:
    if not isinstance(fmt, str):
        return fmt
    comp = find_format(fmt, registry)
    if comp is None:
        from ..registry import unknown_component_message

        raise DataError(unknown_component_message(_registry(registry), "formats", fmt))
    return comp


def emits(comp: Component) -> str:
    """The canonical kind a registered format's records are."""
    return comp.meta["emits"]


def required(comp: Component) -> list[tuple[str, ...]]:
    """The fields a row of this format needs, each as its alternative names (the first is shown)."""
    return [(f,) if isinstance(f, str) else tuple(f) for f in comp.meta["fields"]]


def reads(comp: Component) -> set[str]:
    """Every field the format reads (required, with their alternatives, and optional)."""
    return {n for alts in required(comp) for n in alts} | set(comp.meta.get("optional") or ())


def row_shape(comp: Component) -> str:
    """The required fields as text (``"prompt, completion"``), for messages."""
    return ", ".join(alts[0] for alts in required(comp))


def formats_emitting(kind: str, registry: Registry | None = None) -> list[Component]:
    """The registered formats whose records are of ``kind``, in registration order (built-ins first)."""
    return [c for c in _registry(registry).in_order("formats") if emits(c) == kind]


def detection_order(registry: Registry | None = None) -> list[list[Component]]:
    """The formats ``format = "auto"`` may pick, in the groups and order it tries them: sftkit's own,
    then the plugins' (so installing a plugin never changes how other data is read), each group by
    ``detect`` (higher first), then as registered."""
    reg = _registry(registry)
    comps = sorted((c for c in reg.in_order("formats") if c.meta.get("detect") is not None),
                   key=lambda c: -c.meta["detect"])
    return [[c for c in comps if reg.is_builtin(c)], [c for c in comps if not reg.is_builtin(c)]]


def _has(comp: Component, columns: list[str]) -> bool:
    return all(any(a in columns for a in alts) for alts in required(comp))


def _matches(comp: Component, columns: list[str], sample: dict | None) -> bool:
    match = comp.meta.get("match")
    if match is None:
        return False
    try:
        if isinstance(match, str):
            from ..registry import import_object

            match = import_object(match)
        return bool(match(columns, sample))
    except Exception as exc:
        raise PluginError(f"format {comp.name!r} from plugin {comp.origin!r} failed to tell its rows: "
                          f"match raised {type(exc).__name__}: {exc}",
                          hint="fix or disable that plugin (SFTKIT_DISABLE_PLUGINS), or set format = \"...\"") from None


# ---------------------------------------------------------------------------------- detection

def closest(word: str, options) -> str | None:
    """The option closest to ``word`` (a likely misspelling), or None."""
    import difflib

    found = difflib.get_close_matches(word, [str(o) for o in options], n=1, cutoff=0.6)
    return found[0] if found else None


def _missing_text(comp: Component, columns: list[str]) -> str:
    needed = required(comp)
    names = {n for alts in needed for n in alts}
    parts = []
    for alts in needed:
        if any(a in columns for a in alts):
            continue
        f = alts[0]
        near = closest(f, [c for c in columns if c not in names])
        parts.append(f'"{f}"' + (f' (did you mean "{near}"? map it with columns = {{{f} = "{near}"}})' if near else ""))
    return ", ".join(parts)


def detect_format(columns: list[str], sample: dict | None, where: str, registry: Registry | None = None) -> str:
    """Pick the input format from the field names (and, for formats with a ``match``, the first row).
    In each group of :func:`detection_order` the formats with a ``match`` are asked first, then the
    first format whose fields the row has is taken."""
    cols = list(columns)
    groups = detection_order(registry)
    for group in groups:
        for comp in group:
            if _matches(comp, cols, sample):
                return comp.name
        for comp in group:
            if _has(comp, cols):
                return comp.name
    order = [c for group in groups for c in group]
    if not order:
        raise DataError(f"cannot tell the record format from the fields found ({', '.join(cols) or 'none'}): no "
                        "format is detected automatically", where=where, hint='set format = "..."')
    # nothing fits: name the closest format and the near-miss fields
    best = min(order, key=lambda c: (sum(not any(a in cols for a in alts) for alts in required(c)) / len(required(c)),
                                     order.index(c)))
    raise DataError(
        f"cannot tell the record format from the fields found ({', '.join(cols) or 'none'}); "
        f"closest is {best.name}, which needs {_missing_text(best, cols)}", where=where,
        hint='set format = "..." and map columns with columns = {prompt = "your_column"}')


def check_fields(fmt: str | Component, columns: list[str], where: str, registry: Registry | None = None,
                 name: str | None = None) -> None:
    """Raise when an explicitly chosen format's required fields are absent (``name``: the format as
    the recipe wrote it, for the message)."""
    comp = _format(fmt, registry)
    if _has(comp, columns):
        return
    raise DataError(f"format {name or comp.name} needs field(s) {_missing_text(comp, columns)}; fields found: "
                    f"{', '.join(columns) or 'none'}", where=where,
                    hint='map columns with columns = {field = "your_column"}, or set another format')


def column_plan(columns: list[str], mapping: dict, where: str) -> dict:
    """Validate ``columns = {canonical = data_column}``; return ``{data_column: canonical}``."""
    renames = {}
    for canonical, data_col in (mapping or {}).items():
        if data_col not in columns:
            hint = did_you_mean(data_col, columns)
            raise DataError(f'columns.{canonical} = "{data_col}", but the data has no field "{data_col}" '
                            f"(fields: {', '.join(columns) or 'none'})" + (f"; {hint}" if hint else ""), where=where)
        renames[data_col] = canonical
    return renames


# ---------------------------------------------------------------------------------- conversion

def _fields_found(row: dict) -> str:
    return ", ".join(k for k, v in row.items() if v is not None) or "none"


def _get(row: dict, name: str, fmt: str):
    value = row.get(name)
    if value is None:
        present = [k for k, v in row.items() if v is not None]
        near = closest(name, present)
        raise RowError(f'missing field "{name}"',
                       f'missing field "{name}" for format {fmt} (fields found: {_fields_found(row)})'
                       + (f'; did you mean "{near}"? map it with columns = {{{name} = "{near}"}}' if near else ""))
    return value


def _text(value, name: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(p, dict) for p in value):  # content parts
        return "".join(str(p.get("text") or "") for p in value)
    if isinstance(value, (int, float, bool)):
        return str(value)
    raise RowError(f'"{name}" is not text', f'field "{name}" must be text, got {type(value).__name__}')


def _role(raw, index: int) -> str:
    name = str(raw).strip().lower() if raw is not None else ""
    role = ROLE_NAMES.get(name)
    if role is None:
        hint = did_you_mean(name, list(ROLE_NAMES)) if name else None
        raise RowError(f'unknown role "{raw}"',
                       f'unknown role "{raw}" in turn {index}; expected one of system, user, assistant, tool '
                       f"(or ShareGPT human, gpt)" + (f"; {hint}" if hint else ""))
    return role


def to_messages(value, name: str = "messages") -> list[dict]:
    """Normalise a list of turns (role/content or from/value) to ``[{"role", "content"}]``."""
    if not isinstance(value, list):
        raise RowError(f'"{name}" is not a list of turns',
                       f'field "{name}" must be a list of turns, got {type(value).__name__}')
    out = []
    for i, turn in enumerate(value):
        if not isinstance(turn, dict):
            raise RowError(f'"{name}" is not a list of turns', f'{name}[{i}] must be an object with role and content')
        raw_role = turn.get("role") if turn.get("role") is not None else turn.get("from")
        if raw_role is None:
            keys = [k for k, v in turn.items() if v is not None]
            raise RowError("turn without role", f'{name}[{i}] has no "role" (or "from"); keys found: {", ".join(keys) or "none"}')
        role = _role(raw_role, i)
        content = turn.get("content") if turn.get("content") is not None else turn.get("value")
        content = "" if content is None else _text(content, f"{name}[{i}].content")
        out.append({"role": role, "content": content})
    return out


def _check_conversation(messages: list[dict], name: str = "messages") -> None:
    if not messages:
        raise RowError("no turns", f'"{name}" is empty')
    assistant = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    if not assistant:
        roles = ", ".join(m["role"] for m in messages)
        raise RowError("no assistant turn", f"no assistant turn to train on (roles: {roles})")
    for i in assistant:
        if not messages[i]["content"].strip():
            raise RowError("empty assistant turn", f"assistant turn {i} is empty")


def _prompt_messages(value, name: str = "prompt") -> list[dict]:
    if isinstance(value, str):
        if not value.strip():
            raise RowError(f'empty "{name}"', f'field "{name}" is empty')
        return [{"role": "user", "content": value}]
    return to_messages(value, name)


def _assistant_text(value, name: str) -> str:
    """A completion given as text or as a list of assistant messages (their contents joined)."""
    if isinstance(value, list):
        turns = to_messages(value, name)
        text = "".join(m["content"] for m in turns if m["role"] == "assistant")
    else:
        text = _text(value, name)
    if not text.strip():
        raise RowError(f'empty "{name}"', f'field "{name}" is empty')
    return text


def _with_system(messages: list[dict], row: dict) -> list[dict]:
    system = row.get("system")
    if isinstance(system, str) and system.strip() and not (messages and messages[0]["role"] == "system"):
        return [{"role": "system", "content": system}, *messages]
    return messages


def _messages_flavour(sample) -> str | None:
    """'messages' when list items use role/content, 'sharegpt' when from/value, else None."""
    if isinstance(sample, list) and sample and isinstance(sample[0], dict):
        first = {k for k, v in sample[0].items() if v is not None}
        if "from" in first or "value" in first:
            return "sharegpt"
        if "role" in first or "content" in first:
            return "messages"
    return None


def _turns_format(columns: list[str], sample: dict | None) -> str | None:
    """'messages' or 'sharegpt' when a list-of-turns column decides it (the shape of its turns, else
    its name), or None."""
    for key in ("messages", "conversations", "conversation", "dialog"):
        if key in columns:
            flavour = _messages_flavour((sample or {}).get(key))
            if flavour is not None or key in ("messages", "conversations"):
                return flavour or ("messages" if key == "messages" else "sharegpt")
    return None


def conv_messages(row: dict, fmt: str = "messages") -> dict:
    for key in ("messages", "conversations"):
        if row.get(key) is not None:
            messages = to_messages(row[key], key)
            break
    else:
        _get(row, "messages" if fmt == "messages" else "conversations", fmt)
    _check_conversation(messages)
    return {"messages": messages}


def conv_sharegpt(row: dict) -> dict:
    return conv_messages(row, "sharegpt")


MESSAGES = RecordFormat(
    "messages", "messages", (("messages", "conversations"),), conv_messages, detect=30,
    match=lambda columns, sample: _turns_format(columns, sample) == "messages",
    doc="A list of turns: messages = [{role, content}] (role system, user, assistant or tool).")

SHAREGPT = RecordFormat(
    "sharegpt", "messages", (("conversations", "messages"),), conv_sharegpt, detect=20,
    match=lambda columns, sample: _turns_format(columns, sample) == "sharegpt",
    doc="ShareGPT turns: conversations = [{from, value}] (from human, gpt, system, ...).")


def conv_prompt_completion(row: dict, fmt: str = "prompt_completion") -> dict:
    prompt = _prompt_messages(_get(row, "prompt", fmt))
    completion = _get(row, "completion", fmt)
    if isinstance(completion, list):
        answer = to_messages(completion, "completion")
    else:
        answer = [{"role": "assistant", "content": _text(completion, "completion")}]
    messages = _with_system(prompt + answer, row)
    _check_conversation(messages)
    return {"messages": messages}


PROMPT_COMPLETION = RecordFormat(
    "prompt_completion", "messages", ("prompt", "completion"), conv_prompt_completion, ("system",), detect=60,
    doc="prompt (text or turns) and completion (the answer trained on), optional system.")


def conv_alpaca(row: dict, fmt: str = "alpaca") -> dict:
    instruction = _text(_get(row, "instruction", fmt), "instruction")
    if not instruction.strip():
        raise RowError('empty "instruction"', 'field "instruction" is empty')
    extra = row.get("input")
    user = instruction + (f"\n\n{_text(extra, 'input')}" if extra not in (None, "") else "")
    output = _text(_get(row, "output", fmt), "output")
    messages = _with_system([{"role": "user", "content": user}, {"role": "assistant", "content": output}], row)
    _check_conversation(messages)
    return {"messages": messages}


ALPACA = RecordFormat(
    "alpaca", "messages", ("instruction", "output"), conv_alpaca, ("input", "system"), detect=50,
    doc="Alpaca rows: instruction, optional input (appended to it), output, optional system.")


def conv_text(row: dict, fmt: str = "text") -> dict:
    text = _text(_get(row, "text", fmt), "text")
    if not text.strip():
        raise RowError("empty text", 'field "text" is empty')
    return {"text": text}


TEXT = RecordFormat("text", "text", ("text",), conv_text, detect=10,
                    doc="Plain documents: text (continued pretraining).")


def _common_prefix(a: list[dict], b: list[dict]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def conv_preference(row: dict, fmt: str = "preference") -> dict:
    chosen, rejected = _get(row, "chosen", fmt), _get(row, "rejected", fmt)
    prompt = row.get("prompt")
    if prompt is None:  # implicit prompt: the shared beginning of two conversations
        if not (isinstance(chosen, list) and isinstance(rejected, list)):
            _get(row, "prompt", fmt)
        c, r = to_messages(chosen, "chosen"), to_messages(rejected, "rejected")
        n = _common_prefix(c, r)
        prompt_msgs, chosen, rejected = c[:n], c[n:], r[n:]
        if not prompt_msgs:
            raise RowError('missing field "prompt"', "no prompt: chosen and rejected share no first turns "
                           '(add a "prompt" field)')
    else:
        prompt_msgs = _prompt_messages(prompt)
    if prompt_msgs[-1]["role"] != "user":
        raise RowError("prompt does not end with a user turn",
                       f'the prompt must end with a user turn (it ends with {prompt_msgs[-1]["role"]})')
    return {"prompt": _with_system(prompt_msgs, row), "chosen": _assistant_text(chosen, "chosen"),
            "rejected": _assistant_text(rejected, "rejected")}


PREFERENCE = RecordFormat(
    "preference", "preference", ("chosen", "rejected"), conv_preference, ("prompt",), detect=80,
    doc="Preference pairs: prompt, chosen, rejected (without prompt: the turns chosen and rejected share).")


def parse_label(value) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in LABEL_TRUE:
        return True
    if text in LABEL_FALSE:
        return False
    raise RowError("invalid label", f'label "{value}" is not one of true/false, good/bad, 1/0')


def conv_labeled(row: dict, fmt: str = "labeled") -> dict:
    prompt = _with_system(_prompt_messages(_get(row, "prompt", fmt)), row)
    completion = _assistant_text(_get(row, "completion", fmt), "completion")
    return {"prompt": prompt, "completion": completion, "label": parse_label(_get(row, "label", fmt))}


LABELED = RecordFormat(
    "labeled", "labeled", ("prompt", "completion", "label"), conv_labeled, ("system",), detect=70,
    doc="Answers labeled good or bad: prompt, completion, label (true/false, good/bad, 1/0).")


def conv_classification(row: dict, fmt: str = "classification") -> dict:
    text = _text(_get(row, "text", fmt), "text")
    if not text.strip():
        raise RowError("empty text", 'field "text" is empty')
    label = _get(row, "label", fmt)
    if isinstance(label, float) and label.is_integer():
        label = int(label)
    label = str(label).strip() if not isinstance(label, bool) else str(label).lower()
    if not label:
        raise RowError("empty label", 'field "label" is empty')
    return {"text": text, "label": label}


CLASSIFICATION = RecordFormat(
    "classification", "classification", ("text", "label"), conv_classification, detect=40,
    doc="Texts with a class: text, label.")


def messages_to_text(messages: list[dict]) -> str:
    """Domain training on chat data: the turns' contents as one document."""
    return "\n\n".join(m["content"] for m in messages if m["content"])


def _turns_key(msgs) -> str:
    return "\x1e".join(f"{m['role']}\x1f{m['content']}" for m in msgs)


def prompt_key(record: dict, kind: str) -> str:
    """The part of a record that leakage is checked on (what the model is asked), as one string."""
    if kind == "messages":
        msgs = record["messages"]
        last = max((i for i, m in enumerate(msgs) if m["role"] == "assistant"), default=len(msgs))
        return _turns_key(msgs[:last])
    if kind in ("preference", "labeled"):
        return _turns_key(record["prompt"])
    return record["text"]


def record_key(record: dict, kind: str) -> str:
    """The whole record as one string (exact-duplicate detection)."""
    if kind == "messages":
        return _turns_key(record["messages"])
    if kind == "preference":
        return "\x1d".join((_turns_key(record["prompt"]), record["chosen"], record["rejected"]))
    if kind == "labeled":
        return "\x1d".join((_turns_key(record["prompt"]), record["completion"], str(record["label"])))
    if kind == "classification":
        return f"{record['text']}\x1d{record['label']}"
    return record["text"]


def prompt_text(record: dict, kind: str) -> str:
    """What the model is asked, as readable text (the last user turn for chat records)."""
    if kind in ("messages", "preference", "labeled"):
        msgs = record["messages"] if kind == "messages" else record["prompt"]
        users = [m["content"] for m in msgs if m["role"] == "user"]
        return users[-1] if users else ""
    return record["text"]


def convert(row: dict, fmt: str | Component, target_kind: str, registry: Registry | None = None) -> dict:
    """One raw row to one canonical record of ``target_kind`` with the format ``fmt`` (a name, or the
    registered component). A bad row raises :class:`RowError`; a converter that fails otherwise, or
    returns a record of the wrong shape, raises a :class:`PluginError` naming the format's plugin."""
    comp = _format(fmt, registry)
    try:
        record = comp.load()(row)
    except (RowError, DataError, PluginError):
        raise
    except Exception as exc:
        raise PluginError(f"format {comp.name!r} from plugin {comp.origin!r} failed on this row: "
                          f"{type(exc).__name__}: {exc}",
                          hint="fix or disable that plugin (SFTKIT_DISABLE_PLUGINS), or set another format") from None
    problem = record_problem(record, emits(comp))
    if problem:
        raise PluginError(f"format {comp.name!r} from plugin {comp.origin!r} returned {problem}",
                          hint="a format's converter returns one record of the kind it declares (emits=...)")
    if emits(comp) == "messages" and target_kind == "text":
        record = {"text": messages_to_text(record["messages"])}
    return record


def _turns_problem(value: Any, name: str) -> str | None:
    if not isinstance(value, list):
        return f"{name} that is not a list of turns"
    for i, turn in enumerate(value):
        if not (isinstance(turn, dict) and turn.get("role") in ROLES and isinstance(turn.get("content"), str)):
            return f"{name}[{i}] that is not {{role: {'|'.join(ROLES)}, content: text}}"
    return None


# kind -> column -> its type ("turns": a list of {role, content})
RECORD_SHAPES: dict[str, dict[str, Any]] = {
    "messages": {"messages": "turns"}, "text": {"text": str},
    "preference": {"prompt": "turns", "chosen": str, "rejected": str},
    "labeled": {"prompt": "turns", "completion": str, "label": bool},
    "classification": {"text": str, "label": str},
}


def record_problem(record: Any, kind: str) -> str | None:
    """What makes ``record`` not a canonical record of ``kind`` (see :mod:`sftkit.api`), or None."""
    if not isinstance(record, dict):
        return f"{type(record).__name__}, not a {kind} record (a dict)"
    shape: dict[str, Any] = RECORD_SHAPES[kind]
    for key, want in shape.items():
        if key not in record:
            return f"a record without {key!r} (a {kind} record has {', '.join(shape)})"
        if want == "turns":
            problem = _turns_problem(record[key], key)
            if problem:
                return f"a record with {problem}"
        elif not isinstance(record[key], want):
            return f"a record whose {key!r} is {type(record[key]).__name__}, not {want.__name__}"
    return None
