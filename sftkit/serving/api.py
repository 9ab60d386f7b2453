"""The OpenAI-compatible HTTP API of ``sftkit serve`` (a Starlette app, run by uvicorn).

Routes: ``GET /v1/models``, ``POST /v1/chat/completions`` (``stream: true`` → server-sent events
ending in ``data: [DONE]``), ``POST /v1/completions``. Sampling: ``temperature`` (default 1;
0 = greedy), ``top_p``, ``max_tokens`` (``max_completion_tokens`` too), ``stop`` (a string or up to 4),
``seed``. Every error is OpenAI-shaped: ``{"error": {"message", "type", "param", "code"}}`` with its
HTTP status. With an API key, every request needs ``Authorization: Bearer KEY``. Request bodies are
read and checked in :mod:`sftkit.serving.request` (bounded size and nesting, every field's type);
prompts longer than the model's context are refused, not cut.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
import time
from typing import Any

from .engine import Sampling
from .request import MAX_BODY, ApiError, ClientGone, Request, parse_body, parse_request

__all__ = ["MAX_BODY", "ApiError", "Server", "sampling_of"]


def sampling_of(req: Request, room: int) -> Sampling:
    """The request's sampling settings; ``room`` = tokens left in the context after the prompt."""
    max_tokens = min(room, 512) if req.max_tokens is None else req.max_tokens
    if max_tokens > room:
        raise ApiError(400, f"max_tokens {max_tokens} + the prompt exceed the model's context "
                            f"({room} tokens left)", param="max_tokens", code="context_length_exceeded")
    return Sampling(max_tokens=max_tokens, temperature=req.temperature, top_p=req.top_p, stop=req.stop,
                    seed=req.seed)


class Server:
    """The served models and the API key; :meth:`app` builds the Starlette application."""

    def __init__(self, models: dict[str, Any], api_key: str | None = None):
        self.models = models
        self.api_key = api_key
        self.created = int(time.time())

    # ------------------------------------------------------------------ plumbing
    def _model(self, req: Request):
        name = req.model
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

    def _prepare(self, served, prompt: str, req: Request) -> tuple[list[int], Sampling]:
        ids = served.encode(prompt)
        room = served.context_length - len(ids)
        if room < 1:
            raise ApiError(400, f"the prompt is {len(ids)} tokens; the model's context is {served.context_length}",
                           param="messages", code="context_length_exceeded")
        return ids, sampling_of(req, room)

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

    async def _checked(self, request, *, chat: bool) -> tuple[Any, Request]:
        """The served model and the checked request (every error a 4xx before any work)."""
        self._check_key(request)
        req = parse_request(await parse_body(request), chat=chat)
        return self._model(req), req

    async def chat(self, request):
        served, req = await self._checked(request, chat=True)
        try:
            prompt = served.render(list(req.messages))
        except Exception as err:  # a template that rejects the conversation (e.g. roles out of order)
            raise ApiError(400, f"the chat template rejected the messages: {str(err).splitlines()[0]}",
                           param="messages") from err
        ids, sampling = self._prepare(served, prompt, req)
        return await self._respond(served, ids, sampling, req, chat=True)

    async def completions(self, request):
        served, req = await self._checked(request, chat=False)
        ids, sampling = self._prepare(served, req.prompt, req)
        return await self._respond(served, ids, sampling, req, chat=False)

    async def _respond(self, served, ids, sampling, req: Request, *, chat: bool):
        from starlette.responses import JSONResponse, StreamingResponse

        rid = ("chatcmpl-" if chat else "cmpl-") + secrets.token_hex(12)
        created = int(time.time())
        obj = "chat.completion" if chat else "text_completion"
        if req.stream:
            return StreamingResponse(self._events(served, ids, sampling, rid, created, chat, req.include_usage),
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
        from starlette.responses import JSONResponse, Response
        from starlette.routing import Route

        async def api_error(request, exc: ApiError):
            return JSONResponse(exc.body(), status_code=exc.status)

        async def client_gone(request, exc: ClientGone):  # nobody reads the answer: no traceback, one quiet line
            logging.getLogger("uvicorn.error").info("%s %s: the client left before sending the whole body",
                                                    request.method, request.url.path)
            return Response(status_code=400)

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
        return Starlette(routes=routes, exception_handlers={ApiError: api_error, ClientGone: client_gone,
                                                            HTTPException: http_error, Exception: server_error})


def _usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}
