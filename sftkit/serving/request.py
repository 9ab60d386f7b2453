"""The body of a ``/v1/chat/completions`` or ``/v1/completions`` request, checked in one place.

:func:`parse_body` reads the bytes (bounded size, bounded nesting) and :func:`parse_request` checks
every field the OpenAI API defines, as it does: a wrongly typed field (``"stream": "yes"``,
``"max_tokens": "3"`` or ``3.0``, ``"model": ["a"]``) is a 400 naming the field (code
``invalid_type``), a value out of range a 400 too; fields sftkit does not use are still type-checked,
unknown ones ignored. The routes read the returned :class:`Request`, never the raw body.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

MAX_BODY = 1 << 20  # bytes of one request body
MAX_STOPS = 4
ROLES = ("system", "developer", "user", "assistant", "tool")

# field -> the JSON types it may have (null: the field's default), as the OpenAI API defines them
FIELDS: dict[str, tuple[str, ...]] = {
    "model": ("string",), "messages": ("array",), "prompt": ("string", "array"),
    "stream": ("boolean", "null"), "stream_options": ("object", "null"),
    "max_tokens": ("integer", "null"), "max_completion_tokens": ("integer", "null"),
    "temperature": ("number", "null"), "top_p": ("number", "null"), "n": ("integer", "null"),
    "stop": ("string", "array", "null"), "seed": ("integer", "null"),
    "presence_penalty": ("number", "null"), "frequency_penalty": ("number", "null"),
    "logit_bias": ("object", "null"), "logprobs": ("boolean", "integer", "null"),
    "top_logprobs": ("integer", "null"), "user": ("string", "null"), "response_format": ("object", "null"),
    "tools": ("array", "null"), "tool_choice": ("string", "object", "null"), "echo": ("boolean", "null"),
    "best_of": ("integer", "null"), "suffix": ("string", "null"), "metadata": ("object", "null"),
    "store": ("boolean", "null"), "parallel_tool_calls": ("boolean", "null"),
}
_NAMES = {"string": "a string", "integer": "an integer", "number": "a number", "boolean": "a boolean",
          "array": "an array", "object": "an object", "null": "null"}


class ApiError(Exception):
    """A request the client can fix: HTTP ``status`` + an OpenAI error object."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


class ClientGone(Exception):
    """The client went away before sending the whole body: there is nobody to answer."""


@dataclass(frozen=True)
class Request:
    """A checked request: what the routes and the sampler read."""

    model: str | None
    messages: tuple | None  # chat: ({"role", "content"}, ...), content joined to one string
    prompt: str | None  # completions
    stream: bool
    include_usage: bool
    max_tokens: int | None  # None: as many as fit, at most 512
    temperature: float
    top_p: float
    stop: tuple[str, ...]
    seed: int | None


def json_type(value) -> str:
    """The JSON type of a parsed value: string, integer, number, boolean, array, object or null."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    for kind, py in (("integer", int), ("number", float), ("string", str), ("array", list), ("object", dict)):
        if isinstance(value, py):
            return kind
    return type(value).__name__


def _type_error(param: str, expected: tuple[str, ...], value) -> ApiError:
    got = "a decimal number" if isinstance(value, float) else _NAMES.get(json_type(value), "a value")
    want = " or ".join(_NAMES[t] for t in expected if t != "null")
    return ApiError(400, f"Invalid type for '{param}': expected {want}, but got {got} instead.",
                    param=param, code="invalid_type")


def _typed(body: dict, key: str, param: str | None = None):
    """``body[key]`` when its JSON type is one ``FIELDS`` allows (None when absent or null)."""
    value = body.get(key)
    allowed = FIELDS[key]
    kind = json_type(value)
    if kind not in allowed and not (kind == "integer" and "number" in allowed):
        raise _type_error(param or key, allowed, value)
    return value


def _bounded(body: dict, key: str, default, lo: float, hi: float):
    value = _typed(body, key)
    if value is None:
        return default
    if not lo <= value <= hi:  # NaN fails too
        raise ApiError(400, f"{key} must be from {lo} to {hi}, got {value}", param=key)
    return value


async def parse_body(request) -> dict:
    """The JSON object a request carries; 413 over :data:`MAX_BODY` bytes, 400 when it is not a
    JSON object (nested too deeply included), :class:`ClientGone` when the client left mid-body."""
    from starlette.requests import ClientDisconnect

    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY:
        raise ApiError(413, f"request body over {MAX_BODY} bytes")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY:
                raise ApiError(413, f"request body over {MAX_BODY} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise ClientGone() from None
    try:
        body = json.loads(b"".join(chunks) or b"null")
    except RecursionError:
        raise ApiError(400, "the body is nested too deeply to be a request") from None
    except ValueError as err:
        raise ApiError(400, f"the body is not JSON: {err}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    return body


def _messages(value: list) -> tuple:
    if not value:
        raise ApiError(400, "messages must be a non-empty list of {role, content}", param="messages")
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise ApiError(400, f"messages[{i}] needs a role: system, user, assistant or tool", param="messages")
        content = m.get("content")
        if isinstance(content, list):  # [{type: text, text: ...}] parts
            if not all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
                       for p in content):
                raise ApiError(400, f"messages[{i}].content: only text parts are supported", param="messages")
            content = "".join(p["text"] for p in content)
        if not isinstance(content, str):
            raise ApiError(400, f"messages[{i}].content must be a string", param="messages")
        out.append({"role": "system" if m["role"] == "developer" else m["role"], "content": content})
    return tuple(out)


def _stops(value) -> tuple[str, ...]:
    if value is None:
        return ()
    stops = (value,) if isinstance(value, str) else value
    if len(stops) > MAX_STOPS or not all(isinstance(s, str) for s in stops):
        raise ApiError(400, f"stop must be a string or a list of up to {MAX_STOPS} strings", param="stop")
    if any(not s for s in stops):
        raise ApiError(400, "stop strings must not be empty", param="stop")
    return tuple(stops)


def parse_request(body: dict, *, chat: bool) -> Request:
    """Check every known field of ``body`` (type, then range) and return the :class:`Request`."""
    for key in FIELDS:
        if key in body:
            _typed(body, key)
    options = _typed(body, "stream_options") or {}
    include_usage = options.get("include_usage") or False
    if not isinstance(include_usage, bool):
        raise _type_error("stream_options.include_usage", ("boolean",), include_usage)
    if chat:
        if body.get("messages") is None:
            raise ApiError(400, "Missing required parameter: 'messages'.", param="messages",
                           code="missing_required_parameter")
        messages, prompt = _messages(body["messages"]), None
    else:
        messages, prompt = None, body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise ApiError(400, "prompt must be a string (one prompt per request)", param="prompt")
    max_key = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    if _bounded(body, "n", 1, 1, 128) != 1:
        raise ApiError(400, "only n = 1 is supported", param="n")
    return Request(
        model=body.get("model"), messages=messages, prompt=prompt,
        stream=bool(body.get("stream")), include_usage=include_usage,
        max_tokens=_bounded(body, max_key, None, 1, 1 << 20),
        temperature=float(_bounded(body, "temperature", 1.0, 0.0, 2.0)),
        top_p=float(_bounded(body, "top_p", 1.0, 0.0, 1.0) or 1.0),
        stop=_stops(body.get("stop")),
        seed=_bounded(body, "seed", None, -(1 << 63), (1 << 63) - 1),
    )
