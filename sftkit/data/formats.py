"""Record formats: detect them from the fields, rename columns, convert rows to canonical records.

Input formats and the fields they need (``columns = {field = "their_column"}`` renames):

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

from ..errors import DataError, did_you_mean
from ..records import FORMAT_KINDS

# format -> (required fields, optional fields)
FORMAT_FIELDS = {
    "preference": (("chosen", "rejected"), ("prompt",)),
    "labeled": (("prompt", "completion", "label"), ("system",)),
    "prompt_completion": (("prompt", "completion"), ("system",)),
    "alpaca": (("instruction", "output"), ("input", "system")),
    "classification": (("text", "label"), ()),
    "messages": (("messages",), ()),
    "sharegpt": (("conversations",), ()),
    "text": (("text",), ()),
}
DETECT_ORDER = ("preference", "labeled", "prompt_completion", "alpaca", "classification",
                "messages", "sharegpt", "text")

ROLES = ("system", "user", "assistant", "tool")
ROLE_ALIASES = {
    "human": "user", "gpt": "assistant", "model": "assistant", "bot": None,
    "function": "tool", "observation": "tool", "function_response": "tool", "ipython": "tool",
}
ROLE_NAMES = {**{r: r for r in ROLES}, **{k: v for k, v in ROLE_ALIASES.items() if v}}

LABEL_TRUE = {"true", "good", "1", "yes", "chosen"}
LABEL_FALSE = {"false", "bad", "0", "no", "rejected"}


class RowError(Exception):
    """One row cannot be converted: ``reason`` is short (a statistics key), ``detail`` the message."""

    def __init__(self, reason: str, detail: str | None = None):
        self.reason = reason
        self.detail = detail or reason
        super().__init__(self.detail)


# ---------------------------------------------------------------------------------- detection

def closest(word: str, options) -> str | None:
    """The option closest to ``word`` (a likely misspelling), or None."""
    import difflib

    found = difflib.get_close_matches(word, [str(o) for o in options], n=1, cutoff=0.6)
    return found[0] if found else None


def _missing_text(fmt: str, columns: list[str]) -> str:
    required, _ = FORMAT_FIELDS[fmt]
    parts = []
    for f in required:
        if f in columns:
            continue
        near = closest(f, [c for c in columns if c not in required])
        parts.append(f'"{f}"' + (f' (did you mean "{near}"? map it with columns = {{{f} = "{near}"}})' if near else ""))
    return ", ".join(parts)


def _messages_flavour(sample) -> str | None:
    """'messages' when list items use role/content, 'sharegpt' when from/value, else None."""
    if isinstance(sample, list) and sample and isinstance(sample[0], dict):
        first = {k for k, v in sample[0].items() if v is not None}
        if "from" in first or "value" in first:
            return "sharegpt"
        if "role" in first or "content" in first:
            return "messages"
    return None


def detect_format(columns: list[str], sample: dict | None, where: str) -> str:
    """Pick the input format from the field names (and the shape of a list-of-turns column)."""
    cols = list(columns)
    for key in ("messages", "conversations", "conversation", "dialog"):
        if key in cols:
            flavour = _messages_flavour((sample or {}).get(key))
            if flavour is not None or key in ("messages", "conversations"):
                return flavour or ("messages" if key == "messages" else "sharegpt")
    for fmt in DETECT_ORDER:
        required, _ = FORMAT_FIELDS[fmt]
        if all(f in cols for f in required):
            return fmt
    # nothing fits: name the closest format and the near-miss fields
    best = min(DETECT_ORDER, key=lambda f: (sum(r not in cols for r in FORMAT_FIELDS[f][0]) / len(FORMAT_FIELDS[f][0]),
                                            DETECT_ORDER.index(f)))
    raise DataError(
        f"cannot tell the record format from the fields found ({', '.join(cols) or 'none'}); "
        f"closest is {best}, which needs {_missing_text(best, cols)}", where=where,
        hint='set format = "..." and map columns with columns = {prompt = "your_column"}')


def check_fields(fmt: str, columns: list[str], where: str) -> None:
    """Raise when an explicitly chosen format's required fields are absent."""
    if fmt in ("messages", "sharegpt"):
        if any(c in columns for c in ("messages", "conversations")):
            return
    required, _ = FORMAT_FIELDS[fmt]
    if all(f in columns for f in required):
        return
    raise DataError(f"format {fmt} needs field(s) {_missing_text(fmt, columns)}; fields found: "
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


def conv_messages(row: dict, fmt: str = "messages") -> dict:
    for key in ("messages", "conversations"):
        if row.get(key) is not None:
            messages = to_messages(row[key], key)
            break
    else:
        _get(row, "messages" if fmt == "messages" else "conversations", fmt)
    _check_conversation(messages)
    return {"messages": messages}


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


def conv_text(row: dict, fmt: str = "text") -> dict:
    text = _text(_get(row, "text", fmt), "text")
    if not text.strip():
        raise RowError("empty text", 'field "text" is empty')
    return {"text": text}


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


CONVERTERS = {
    "prompt_completion": conv_prompt_completion,
    "messages": conv_messages,
    "sharegpt": conv_messages,
    "alpaca": conv_alpaca,
    "text": conv_text,
    "preference": conv_preference,
    "labeled": conv_labeled,
    "classification": conv_classification,
}


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


def convert(row: dict, fmt: str, target_kind: str) -> dict:
    """One raw row to one canonical record of ``target_kind`` (raises :class:`RowError`)."""
    record = CONVERTERS[fmt](row, fmt)
    if FORMAT_KINDS[fmt] == "messages" and target_kind == "text":
        record = {"text": messages_to_text(record["messages"])}
    return record
