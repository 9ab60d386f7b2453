"""The OpenAI-compatible HTTP API of ``sftkit serve`` (a Starlette app, run by uvicorn).

Routes: ``GET /v1/models``, ``POST /v1/chat/completions`` (``stream: true`` → server-sent events
ending in ``data: [DONE]``), ``POST /v1/completions``. Sampling: ``temperature`` (default 1;
0 = greedy), ``top_p``, ``max_tokens`` (``max_completion_tokens`` too), ``stop`` (a string or up to 4),
``seed``. Every error is OpenAI-shaped: ``{"error": {"message", "type", "param", "code"}}`` with its
HTTP status. With an API key, every request needs ``Authorization: Bearer KEY``. Request bodies are
bounded (``MAX_BODY``); prompts longer than the model's context are refused, not cut.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import secrets
import time
from typing import Any

from .engine import Sampling

MAX_BODY = 1 << 20  # bytes of one request body
MAX_STOPS = 4


class ApiError(Exception):
    """A request the client can fix: HTTP ``status`` + an OpenAI error object."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


def _number(body: dict, key: str, default, lo: float, hi: float, integer: bool = False):
    value = body.get(key, default)
    if value is None:
        return default
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or not lo <= value <= hi:
        kind = "an integer" if integer else "a number"
        raise ApiError(400, f"{key} must be {kind} from {lo} to {hi}, got {value!r}", param=key)
    return value


def parse_sampling(body: dict, room: int) -> Sampling:
    """Sampling settings of a request; ``room`` = tokens left in the context after the prompt."""
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is None:
        max_tokens = min(room, 512)
    else:
        max_tokens = _number({"max_tokens": max_tokens}, "max_tokens", 16, 1, 1 << 20, integer=True)
        if max_tokens > room:
            raise ApiError(400, f"max_tokens {max_tokens} + the prompt exceed the model's context "
                                f"({room} tokens left)", param="max_tokens", code="context_length_exceeded")
    stop = body.get("stop")
    if stop is None:
        stops: tuple[str, ...] = ()
    elif isinstance(stop, str):
        stops = (stop,)
    elif isinstance(stop, list) and len(stop) <= MAX_STOPS and all(isinstance(s, str) for s in stop):
        stops = tuple(stop)
    else:
        raise ApiError(400, f"stop must be a string or a list of up to {MAX_STOPS} strings", param="stop")
    if any(not s for s in stops):
        raise ApiError(400, "stop strings must not be empty", param="stop")
    n = body.get("n", 1)
    if n != 1:
        raise ApiError(400, "only n = 1 is supported", param="n")
    return Sampling(
        max_tokens=int(max_tokens),
        temperature=float(_number(body, "temperature", 1.0, 0.0, 2.0)),
        top_p=float(_number(body, "top_p", 1.0, 0.0, 1.0) or 1.0),
        stop=stops,
        seed=_number(body, "seed", None, -(1 << 63), (1 << 63) - 1, integer=True),
    )


def _messages(body: dict) -> list[dict]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages must be a non-empty list of {role, content}", param="messages")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "developer", "user", "assistant", "tool"):
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
    return out


class Server:
    """The served models and the API key; :meth:`app` builds the Starlette application."""

    def __init__(self, models: dict[str, Any], api_key: str | None = None):
        self.models = models
        self.api_key = api_key
        self.created = int(time.time())

    # ------------------------------------------------------------------ plumbing
    def _model(self, body: dict):
        name = body.get("model")
        if name is None and len(self.models) == 1:
            return next(iter(self.models.values()))
        if name not in self.models:
            raise ApiError(404, f"the model {name!r} does not exist; served: {', '.join(self.models)}",
                           param="model", code="model_not_found")
        return self.models[name]

    def _check_key(self, request) -> None:
        if self.api_key is None:
            return
        given = request.headers.get("authorization", "")
        token = given[7:] if given.lower().startswith("bearer ") else ""
        if not hmac.compare_digest(token.encode(), self.api_key.encode()):
            raise ApiError(401, "invalid or missing API key (send Authorization: Bearer KEY)",
                           kind="authentication_error", code="invalid_api_key")

    @staticmethod
    async def _json(request) -> dict:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > MAX_BODY:
            raise ApiError(413, f"request body over {MAX_BODY} bytes")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY:
                raise ApiError(413, f"request body over {MAX_BODY} bytes")
            chunks.append(chunk)
        try:
            body = json.loads(b"".join(chunks) or b"null")
        except ValueError as err:
            raise ApiError(400, f"the body is not JSON: {err}") from err
        if not isinstance(body, dict):
            raise ApiError(400, "the body must be a JSON object")
        return body

    def _prepare(self, served, prompt: str, body: dict) -> tuple[list[int], Sampling]:
        ids = served.encode(prompt)
        room = served.context_length - len(ids)
        if room < 1:
            raise ApiError(400, f"the prompt is {len(ids)} tokens; the model's context is {served.context_length}",
                           param="messages", code="context_length_exceeded")
        return ids, parse_sampling(body, room)

    @staticmethod
    def _stream(served, ids: list[int], sampling: Sampling):
        """Submit to the engine; return (request handle, asyncio queue of (delta, finish))."""
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()

        def sink(delta: str, finish: str | None) -> None:
            loop.call_soon_threadsafe(events.put_nowait, (delta, finish))

        return served.engine.submit(ids, sampling, sink), events

    async def _collect(self, served, ids, sampling) -> tuple[str, str, int]:
        req, events = self._stream(served, ids, sampling)
        parts = []
        try:
            while True:
                delta, finish = await events.get()
                parts.append(delta)
                if finish is not None:
                    break
        finally:
            req.cancel()
        if finish == "error":
            raise ApiError(500, "generation failed: " + "".join(parts), kind="server_error")
        return "".join(parts), finish, len(req.tokens)

    # ------------------------------------------------------------------ routes
    async def list_models(self, request):
        from starlette.responses import JSONResponse

        self._check_key(request)
        return JSONResponse({"object": "list", "data": [
            {"id": name, "object": "model", "created": self.created, "owned_by": "sftkit"} for name in self.models]})

    async def chat(self, request):
        self._check_key(request)
        body = await self._json(request)
        served = self._model(body)
        messages = _messages(body)
        try:
            prompt = served.render(messages)
        except Exception as err:  # a template that rejects the conversation (e.g. roles out of order)
            raise ApiError(400, f"the chat template rejected the messages: {str(err).splitlines()[0]}",
                           param="messages") from err
        ids, sampling = self._prepare(served, prompt, body)
        return await self._respond(served, ids, sampling, body, chat=True)

    async def completions(self, request):
        self._check_key(request)
        body = await self._json(request)
        served = self._model(body)
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise ApiError(400, "prompt must be a string (one prompt per request)", param="prompt")
        ids, sampling = self._prepare(served, prompt, body)
        return await self._respond(served, ids, sampling, body, chat=False)

    async def _respond(self, served, ids, sampling, body, *, chat: bool):
        from starlette.responses import JSONResponse, StreamingResponse

        rid = ("chatcmpl-" if chat else "cmpl-") + secrets.token_hex(12)
        created = int(time.time())
        obj = "chat.completion" if chat else "text_completion"
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(self._events(served, ids, sampling, rid, created, chat, include_usage),
                                     media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        text, finish, n_out = await self._collect(served, ids, sampling)
        choice = {"index": 0, "finish_reason": finish, "logprobs": None}
        choice.update({"message": {"role": "assistant", "content": text}} if chat else {"text": text})
        return JSONResponse({"id": rid, "object": obj, "created": created, "model": served.name,
                             "choices": [choice], "usage": _usage(len(ids), n_out)})

    async def _events(self, served, ids, sampling, rid, created, chat, include_usage):
        obj = "chat.completion.chunk" if chat else "text_completion"

        def chunk(delta: str | None, finish: str | None, first: bool = False) -> str:
            if chat:
                d = {"role": "assistant", "content": ""} if first else ({"content": delta} if delta else {})
                choice = {"index": 0, "delta": d, "finish_reason": finish, "logprobs": None}
            else:
                choice = {"index": 0, "text": delta or "", "finish_reason": finish, "logprobs": None}
            return "data: " + json.dumps({"id": rid, "object": obj, "created": created, "model": served.name,
                                          "choices": [choice]}) + "\n\n"

        req, events = self._stream(served, ids, sampling)
        try:
            if chat:
                yield chunk(None, None, first=True)
            while True:
                delta, finish = await events.get()
                if finish == "error":
                    err = ApiError(500, "generation failed: " + delta, kind="server_error")
                    yield "data: " + json.dumps(err.body()) + "\n\n"
                    break
                if delta:
                    yield chunk(delta, None)
                if finish is not None:
                    yield chunk(None, finish)
                    if include_usage:
                        yield "data: " + json.dumps({"id": rid, "object": obj, "created": created,
                                                     "model": served.name, "choices": [],
                                                     "usage": _usage(len(ids), len(req.tokens))}) + "\n\n"
                    break
            yield "data: [DONE]\n\n"
        finally:
            req.cancel()  # the client went away: free the batch row

    # ------------------------------------------------------------------ app
    def app(self):
        """The Starlette application (errors → OpenAI JSON)."""
        from starlette.applications import Starlette
        from starlette.exceptions import HTTPException
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        async def api_error(request, exc: ApiError):
            return JSONResponse(exc.body(), status_code=exc.status)

        async def http_error(request, exc: HTTPException):
            kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
            return JSONResponse(ApiError(exc.status_code, str(exc.detail), kind=kind).body(),
                                status_code=exc.status_code)

        async def server_error(request, exc: Exception):
            return JSONResponse(ApiError(500, f"{type(exc).__name__}: {exc}", kind="server_error").body(),
                                status_code=500)

        routes = [Route("/v1/models", self.list_models, methods=["GET"]),
                  Route("/v1/chat/completions", self.chat, methods=["POST"]),
                  Route("/v1/completions", self.completions, methods=["POST"])]
        return Starlette(routes=routes, exception_handlers={ApiError: api_error, HTTPException: http_error,
                                                            Exception: server_error})


def _usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}
