"""The OpenAI-compatible HTTP API of ``blis serve`` (Starlette), timed by a :class:`RealtimeEngine`.

Routes: ``POST /v1/completions`` and ``POST /v1/chat/completions`` (streamed as server-sent
events when ``stream`` is true, else one JSON body), ``GET /v1/models``, ``GET /health``, and
ours, ``GET /blis/stats``: requests so far, in flight, the simulated clock, and how late the
server released tokens after the simulator's times (the server's own share of any drift).
Shapes are vLLM's: a streamed request gets one chunk per output token (the last with
``finish_reason: "length"``), then a chunk with empty ``choices`` carrying ``usage`` (always,
as with ``stream_options.include_usage``) and ``data: [DONE]``. A chat stream's first chunk
carries the role with the first token (vLLM sends the role alone first; here every chunk is
a token, so a client's first chunk is the first token). Every final chunk and JSON body also
has ``blis_sim``, an extension: the simulator's own figures for the request (µs, from server
start: ``arrival_us``, ``ttft_us``, ``e2e_us``; ``request_id``, ``instance``).

A client that disconnects before its response ends cancels its request: it leaves the
simulation at once (KV freed) and ``/blis/stats`` counts it under ``cancelled``.

Output length is ``max_tokens`` (``max_completion_tokens`` in chat; default 16, OpenAI's) and
every request generates exactly that many tokens (no stop sequences, no EOS). Errors are
OpenAI's ``{"error": {"message", "type", "param", "code"}}``: 400 for a bad body, 404 for an
unknown model, 429 for an admission rejection, 503 while stopping.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any, Callable, Optional

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request as HTTPRequest
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .realtime import Cancelled, RealtimeEngine, Rejected, RequestStream
from .tokens import FILLER, MAX_PROMPT_TOKENS, TokenIds, filler_text

DEFAULT_MAX_TOKENS = 16  # OpenAI's default for completions
MAX_OUTPUT_TOKENS = 1_000_000  # a sanity bound: larger is surely a mistake

_SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]
_DONE = b"data: [DONE]\n\n"
_COMPACT = (",", ":")  # JSON separators of streamed events
_WORDS = tuple(json.dumps(w).encode() for w in FILLER)  # each filler token as a JSON string


class BadRequest(Exception):
    """A request the API refuses before it reaches the simulation."""

    def __init__(
        self,
        message: str,
        status: int = 400,
        param: Optional[str] = None,
        code: Optional[str] = None,
        kind: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.param = param
        self.code = code
        self.kind = kind


def _error_body(message: str, kind: str, param: Optional[str], code: Any) -> dict:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def _error(exc: Exception) -> JSONResponse:
    if isinstance(exc, BadRequest):
        return JSONResponse(_error_body(str(exc), exc.kind, exc.param, exc.code or exc.status), exc.status)
    assert isinstance(exc, Rejected)
    return JSONResponse(_error_body(str(exc), exc.kind, None, exc.status), exc.status)


# --- request bodies -----------------------------------------------------------------------
def _int_field(body: dict, name: str) -> Optional[int]:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{name} must be an integer, got {json.dumps(value)}", param=name)
    return value


def _max_tokens(body: dict, names: tuple[str, ...]) -> int:
    for name in names:
        value = _int_field(body, name)
        if value is not None:
            if not 1 <= value <= MAX_OUTPUT_TOKENS:
                raise BadRequest(f"{name} must be between 1 and {MAX_OUTPUT_TOKENS}, got {value}", param=name)
            return value
    return DEFAULT_MAX_TOKENS


def _text_ids(ids: TokenIds, text: str, param: str) -> np.ndarray:
    try:
        return ids.text(text)
    except ValueError as exc:
        raise BadRequest(str(exc), param=param) from None


def _prompt_ids(body: dict, ids: TokenIds) -> np.ndarray:
    """Token ids of a completion's ``prompt``: a string, a one-string list, or token ids."""
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and not isinstance(prompt[0], int):
        prompt = prompt[0]  # a batch of one
    if isinstance(prompt, str):
        out = _text_ids(ids, prompt, "prompt")
    elif (
        isinstance(prompt, list)
        and prompt
        and all(isinstance(t, int) and not isinstance(t, bool) and 0 <= t < 1 << 62 for t in prompt)
    ):
        out = np.array(prompt, dtype=np.int64)
    elif prompt is None:
        raise BadRequest("prompt is required", param="prompt")
    elif isinstance(prompt, list) and len(prompt) > 1 and all(isinstance(p, (str, list)) for p in prompt):
        raise BadRequest("only one prompt per request is supported", param="prompt")
    else:
        raise BadRequest("prompt must be a string or a list of token ids", param="prompt")
    if len(out) == 0:
        raise BadRequest("prompt must not be empty", param="prompt")
    if len(out) > MAX_PROMPT_TOKENS:
        raise BadRequest(f"the prompt has {len(out)} tokens, more than {MAX_PROMPT_TOKENS}", param="prompt")
    return out


def _message_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: the text ones count
        parts = []
        for part in content:
            if not isinstance(part, dict):
                raise BadRequest("each content part must be an object", param="messages")
            if part.get("type") == "text":
                text = part.get("text")
                if not isinstance(text, str):
                    raise BadRequest("a text content part needs a string 'text'", param="messages")
                parts.append(text)
        return " ".join(parts)
    if content is None:
        return ""
    raise BadRequest("message content must be a string or a list of content parts", param="messages")


def _chat_ids(body: dict, ids: TokenIds) -> np.ndarray:
    """Token ids of a chat's ``messages``: each message's content in order (roles count nothing)."""
    messages = body.get("messages")
    if messages is None:
        raise BadRequest("messages is required", param="messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages must be a non-empty list", param="messages")
    arrays = []
    for m in messages:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise BadRequest("each message must be an object with a string 'role'", param="messages")
        arrays.append(_text_ids(ids, _message_text(m.get("content")), "messages"))
    out = np.concatenate(arrays)
    if len(out) == 0:
        raise BadRequest("messages hold no text", param="messages")
    if len(out) > MAX_PROMPT_TOKENS:
        raise BadRequest(f"the messages hold {len(out)} tokens, more than {MAX_PROMPT_TOKENS}", param="messages")
    return out


# --- responses ----------------------------------------------------------------------------
class _Shape:
    """One API's response shapes (completions or chat) for one request, pre-encoded so a
    streamed token costs two concatenations."""

    def __init__(self, chat: bool, rid: str, created: int, model: str) -> None:
        self.chat = chat
        self.rid = rid
        self.created = created
        self.model = model
        obj = "chat.completion.chunk" if chat else "text_completion"
        head = (
            f'data: {{"id":{json.dumps(rid)},"object":"{obj}","created":{created},'
            f'"model":{json.dumps(model)},"choices":[{{"index":0,'
        ).encode()
        if chat:
            self.first = head + b'"delta":{"role":"assistant","content":'
            self.head = head + b'"delta":{"content":'
            self.tail = b'},"logprobs":null,"finish_reason":null}]}\n\n'
            self.last = b'},"logprobs":null,"finish_reason":"length"}]}\n\n'
        else:
            self.first = self.head = head + b'"text":'
            self.tail = b',"logprobs":null,"finish_reason":null,"stop_reason":null}]}\n\n'
            self.last = b',"logprobs":null,"finish_reason":"length","stop_reason":null}]}\n\n'

    def chunks(self, start: int, count: int, n_out: int) -> bytes:
        """SSE events of output tokens ``start .. start + count - 1`` (of ``n_out``)."""
        words = _WORDS
        nw = len(words)
        head, tail = self.head, self.tail
        parts = []
        for k in range(start, start + count):
            parts += (self.first if k == 0 else head, words[k % nw], self.last if k == n_out - 1 else tail)
        return b"".join(parts)

    def _common(self, obj: str) -> dict:
        return {"id": self.rid, "object": obj, "created": self.created, "model": self.model}

    def usage_chunk(self, stream: RequestStream) -> bytes:
        body = self._common("chat.completion.chunk" if self.chat else "text_completion")
        body["choices"] = []
        body["usage"] = _usage(stream)
        body["blis_sim"] = stream.sim_timing()
        return b"data: " + json.dumps(body, separators=_COMPACT).encode() + b"\n\n"

    def response(self, stream: RequestStream) -> dict:
        text = filler_text(0, stream.request.n_out)
        if self.chat:
            body = self._common("chat.completion")
            body["choices"] = [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": None,
                    "finish_reason": "length",
                }
            ]
        else:
            body = self._common("text_completion")
            body["choices"] = [
                {"index": 0, "text": text, "logprobs": None, "finish_reason": "length", "stop_reason": None}
            ]
        body["usage"] = _usage(stream)
        body["blis_sim"] = stream.sim_timing()
        return body


def _usage(stream: RequestStream) -> dict:
    req = stream.request
    return {"prompt_tokens": req.n_in, "completion_tokens": req.n_out, "total_tokens": req.n_in + req.n_out}


class _Watch:
    """Waits for the client to disconnect while its request is served (an ASGI ``receive``
    answers ``http.disconnect`` then), and cancels the request in the engine when it does.
    ``close()`` when the response has ended."""

    __slots__ = ("task",)

    def __init__(self, receive: Callable, engine: RealtimeEngine, stream: RequestStream) -> None:
        self.task = asyncio.ensure_future(self._watch(receive, engine, stream))

    @staticmethod
    async def _watch(receive: Callable, engine: RealtimeEngine, stream: RequestStream) -> None:
        while True:
            message = await receive()
            if message.get("type") == "http.disconnect":
                engine.cancel(stream)
                return

    def close(self) -> None:
        self.task.cancel()


class _EventStream:
    """An ASGI response streaming a request's tokens as server-sent events, each written when
    the simulator releases it (tokens due together go out in one write)."""

    def __init__(self, stream: RequestStream, shape: _Shape, watch: _Watch) -> None:
        self.stream = stream
        self.shape = shape
        self.watch = watch

    async def __call__(self, scope, receive, send) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
            stream, shape = self.stream, self.shape
            n_out = stream.request.n_out
            try:
                while n := await stream.tokens():
                    await send(
                        {
                            "type": "http.response.body",
                            "body": shape.chunks(stream.sent - n, n, n_out),
                            "more_body": True,
                        }
                    )
                await stream.finished()
                last = shape.usage_chunk(stream) + _DONE
            except Cancelled:  # the client went away: nobody to write to
                return
            except Rejected as exc:  # the server is stopping mid-stream
                last = (
                    b"data: "
                    + json.dumps(_error_body(str(exc), exc.kind, None, exc.status), separators=_COMPACT).encode()
                    + b"\n\n"
                    + _DONE
                )
            self.watch.close()  # before the last write: its end is no disconnection
            await send({"type": "http.response.body", "body": last, "more_body": False})
        finally:
            self.watch.close()


# --- the app ----------------------------------------------------------------------------------
class _Gone(Exception):
    """The client disconnected while its request body was being read."""


async def _read_body(receive: Callable) -> bytes:
    parts = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Gone
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)


class Api:
    """The ASGI app: ``POST /v1/completions`` and ``POST /v1/chat/completions`` handled here
    directly, everything else (and the lifespan) by a Starlette app. A streamed token wakes
    this short chain of coroutines and goes straight to uvicorn's ``send``, where Starlette's
    router and middleware would add a dozen frames to resume and three wrappers to call per
    token (the server's one core is what falls behind first at 1,000 streams)."""

    def __init__(self, app: Starlette, fast: dict[str, Callable]) -> None:
        self.app = app
        self.fast = fast
        self.state = app.state

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            handler = self.fast.get(scope["path"])
            if handler is not None:
                try:
                    raw = await _read_body(receive)
                except _Gone:
                    return
                response = await handler(raw, receive)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(engine: RealtimeEngine, model: str) -> Api:
    """The API for ``engine``, serving ``model`` (matched case-insensitively; a request may omit
    it). The engine starts and stops with the app (its lifespan)."""
    served = model.lower()
    created = int(time.time())

    async def generate(raw: bytes, receive: Callable, chat: bool) -> Any:
        """The ASGI response to a completion request's body; ``receive`` tells when the client
        goes away."""
        try:
            try:
                body = json.loads(raw)
            except ValueError as exc:
                raise BadRequest(f"the body is not valid JSON: {exc}") from None
            if not isinstance(body, dict):
                raise BadRequest("the body must be a JSON object")
            name = body.get("model")
            if name is not None and (not isinstance(name, str) or name.lower() != served):
                raise BadRequest(f"The model `{name}` does not exist.", 404, "model", "model_not_found")
            stream_flag = body.get("stream", False)
            if not isinstance(stream_flag, bool) and stream_flag is not None:
                raise BadRequest("stream must be a boolean", param="stream")
            n = _int_field(body, "n")
            if n is not None and n != 1:
                raise BadRequest("only n = 1 is supported", param="n")
            if chat:
                ids = _chat_ids(body, engine.ids)
                n_out = _max_tokens(body, ("max_completion_tokens", "max_tokens"))
            else:
                ids = _prompt_ids(body, engine.ids)
                n_out = _max_tokens(body, ("max_tokens",))
            stream = engine.submit(ids, n_out)
        except (BadRequest, Rejected) as exc:
            return _error(exc)
        watch = _Watch(receive, engine, stream)
        try:
            # Headers wait for the simulator's verdict: a rejection is still an HTTP error.
            await stream.ready()
            index = stream.request.index
            shape = _Shape(chat, f"chatcmpl-{index}" if chat else f"cmpl-{index}", int(time.time()), model)
            if stream_flag:
                response, watch = _EventStream(stream, shape, watch), None  # the response closes it
                return response
            await stream.finished()
            watch.close()
            return JSONResponse(shape.response(stream))
        except Rejected as exc:  # rejected, the server stopping, or (Cancelled) nobody to answer
            return _error(exc)
        finally:
            if watch is not None:
                watch.close()

    async def completions_body(raw: bytes, receive: Callable) -> Any:
        return await generate(raw, receive, chat=False)

    async def chat_body(raw: bytes, receive: Callable) -> Any:
        return await generate(raw, receive, chat=True)

    # Starlette's routes for these paths only answer other methods (405); Api takes the POSTs.
    async def completions(request: HTTPRequest) -> Any:
        return await completions_body(await request.body(), request.receive)

    async def chat_completions(request: HTTPRequest) -> Any:
        return await chat_body(await request.body(), request.receive)

    async def models(request: HTTPRequest) -> JSONResponse:
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {
                        "id": model,
                        "object": "model",
                        "created": created,
                        "owned_by": "blis-gym",
                        "root": model,
                        "parent": None,
                    }
                ],
            }
        )

    async def health(request: HTTPRequest) -> Response:
        return Response(status_code=200)

    async def stats(request: HTTPRequest) -> JSONResponse:
        return JSONResponse(engine.stats())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        engine.start()
        try:
            yield
        finally:
            await engine.close()

    app = Starlette(
        routes=[
            Route("/v1/completions", completions, methods=["POST"]),
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/blis/stats", stats, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.engine = engine
    return Api(app, {"/v1/completions": completions_body, "/v1/chat/completions": chat_body})
