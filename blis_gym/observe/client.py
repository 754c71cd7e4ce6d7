"""Sending a workload to an OpenAI-compatible server and recording what came back.

:class:`RealClient` holds one HTTP/1.1 connection pool (``httpx.AsyncClient``) to a server.
:meth:`RealClient.probe` checks the server before anything is sent (``GET /v1/models``: is it
reachable, what does it serve, how long is a round trip); :meth:`RealClient.replay` sends each
:class:`PendingRequest` at its arrival time, at most ``concurrency`` at once, and fills one
:class:`Observation` per request sent: send, first-chunk and last-chunk times (wall clock, µs
since the Unix epoch), chunk count, output tokens and a status (``ok``, ``error``,
``timeout``). A request that fails, times out or gets garbage back is an ``error`` or
``timeout`` observation with a one-line message; nothing a server answers stops the replay.

The request body is BLIS's: ``{"model", "max_tokens", "stream", "prompt": "Token count: N"}``,
plus ``max_tokens`` set to the request's own output length (BLIS sends 2048), ``ignore_eos``
(so a vLLM server generates exactly that many tokens) and, when streaming, ``stream_options:
{include_usage: true}`` (so the last chunk says how many tokens came). With ``chat`` the same
prompt goes to ``/v1/chat/completions`` as one user message.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import httpx

from ..workload.tracev2 import TraceRecord

ERROR_BODY_CHARS = 200  # of an error response's body, kept in the message
_ERROR_BODY_BYTES = 4096  # read at most this much of an error body (a server may send megabytes)
RTT_SAMPLES = 3  # GET /v1/models round trips timed after the first


def now_us() -> int:
    """Wall-clock time in µs since the Unix epoch (the trace's clock)."""
    return time.time_ns() // 1000


def _one_line(text: str) -> str:
    """Whitespace runs (newlines included) as single spaces: a message is one CSV cell, one line."""
    return " ".join(text.split())


def _reason(exc: BaseException) -> str:
    """Why a transport failed, in the words of the OS when it said (``Connection refused``, ``Name or
    service not known``) rather than the wrappers' (``All connection attempts failed``)."""
    cause: Optional[BaseException] = exc
    best = _one_line(str(exc))
    seen = 0
    while cause is not None and seen < 10:
        if isinstance(cause, OSError) and cause.errno:
            best = os.strerror(cause.errno) if cause.errno > 0 else _one_line(str(cause.strerror or cause))
        cause = cause.__cause__ or cause.__context__
        seen += 1
    return best


def _failure(exc: BaseException) -> str:
    """``Type: reason`` of a transport exception (the type alone when it says nothing more)."""
    reason = _reason(exc)
    return f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__


@dataclass(frozen=True)
class PendingRequest:
    """One request to send: when (``arrival_us``, µs after the replay starts), how long its
    prompt and answer are (tokens), and what the workload says of it (copied into the trace)."""

    request_id: int
    arrival_us: int
    input_tokens: int
    output_tokens: int
    streaming: bool = True
    client_id: str = ""
    tenant_id: str = ""
    slo_class: str = ""
    session_id: str = ""
    round_index: int = 0
    prefix_group: str = ""
    text_tokens: int = 0
    image_tokens: int = 0
    audio_tokens: int = 0
    video_tokens: int = 0
    reason_ratio: float = 0.0


@dataclass
class Observation:
    """What one request got back, filled in as it happens (µs since the Unix epoch; 0 = not
    reached). ``finished`` is False while the exchange is under way: an interrupted replay marks
    the unfinished ones ``error: interrupted``."""

    send_time_us: int = 0
    first_chunk_time_us: int = 0
    last_chunk_time_us: int = 0
    num_chunks: int = 0
    output_tokens: int = 0
    status: str = "ok"
    error_message: str = ""
    finished: bool = False

    def fail(self, status: str, message: str) -> None:
        self.status = status
        self.error_message = _one_line(message)


@dataclass(frozen=True)
class ServerInfo:
    """What ``GET /v1/models`` said: the serving engine (``owned_by``, e.g. ``vllm``; "" when not
    said), the model's context length (0 = not said), the models served, the median round trip
    (ms; 0 = not measured) and a warning when the answer was not the usual list."""

    owned_by: str = ""
    max_model_len: int = 0
    models: tuple[str, ...] = ()
    rtt_ms: float = 0.0
    warning: str = ""


@dataclass
class Replay:
    """The outcome of :meth:`RealClient.replay`: each request sent with its observation (in send
    order), the replay's start and end (µs since the Unix epoch) and whether it was cut short."""

    started_us: int
    ended_us: int = 0
    sent: list[tuple[PendingRequest, Observation]] = field(default_factory=list)
    interrupted: bool = False

    def records(self) -> tuple[TraceRecord, ...]:
        """One trace v2 row per request sent, by request id: what the workload said of it (input
        tokens asked for, arrival µs after the start) and what was observed (output tokens)."""
        rows = []
        for req, obs in self.sent:
            rows.append(
                TraceRecord(
                    request_id=req.request_id,
                    client_id=req.client_id,
                    tenant_id=req.tenant_id,
                    slo_class=req.slo_class,
                    session_id=req.session_id,
                    round_index=req.round_index,
                    prefix_group=req.prefix_group,
                    streaming=req.streaming,
                    input_tokens=req.input_tokens,
                    output_tokens=obs.output_tokens,
                    text_tokens=req.text_tokens,
                    image_tokens=req.image_tokens,
                    audio_tokens=req.audio_tokens,
                    video_tokens=req.video_tokens,
                    reason_ratio=req.reason_ratio,
                    arrival_time_us=req.arrival_us,
                    send_time_us=obs.send_time_us,
                    first_chunk_time_us=obs.first_chunk_time_us,
                    last_chunk_time_us=obs.last_chunk_time_us,
                    num_chunks=obs.num_chunks,
                    status=obs.status,
                    error_message=obs.error_message,
                )
            )
        rows.sort(key=lambda r: r.request_id)
        return tuple(rows)


class EndpointUnreachable(Exception):
    """The server could not be reached at all (connection refused, unknown host, connect timeout)."""


class _BadResponse(Exception):
    """A 200 answer that is not what an OpenAI-compatible server sends; the message says how."""


def _completion_tokens(payload: Any) -> Optional[int]:
    """``usage.completion_tokens`` of a response or chunk, when it carries one."""
    if isinstance(payload, dict):
        usage = payload.get("usage")
        if isinstance(usage, dict):
            n = usage.get("completion_tokens")
            if isinstance(n, int) and not isinstance(n, bool) and n >= 0:
                return n
    return None


def _server_error(payload: dict) -> Optional[str]:
    """The message of an ``{"error": ...}`` object (vLLM sends one mid-stream when it fails)."""
    err = payload.get("error")
    if err is None:
        return None
    if isinstance(err, dict):
        return str(err.get("message") or err)
    return str(err)


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise _BadResponse(f"{what} is not JSON: {text[:ERROR_BODY_CHARS]!r}") from None


def stop_on_sigint(stop: asyncio.Event, note: Callable[[], None]) -> None:
    """The first Ctrl-C sets ``stop`` (the replay winds down and the trace is written); a second
    one interrupts at once, without a trace. No-op where the loop cannot take signals."""
    loop = asyncio.get_running_loop()

    def first() -> None:
        loop.remove_signal_handler(signal.SIGINT)
        note()
        stop.set()

    try:
        loop.add_signal_handler(signal.SIGINT, first)
    except (NotImplementedError, RuntimeError, ValueError):  # Windows, or not the main thread
        pass


class RealClient:
    """An OpenAI-compatible server at ``url`` (scheme, host, port; a trailing ``/v1`` is
    allowed) serving ``model``. Use as ``async with RealClient(...) as client``.

    ``timeout_s`` bounds each request from send to last byte; ``connect_timeout_s`` bounds
    opening a connection (and the whole of each probe request).
    """

    def __init__(
        self,
        url: str,
        model: str,
        *,
        api_key: str = "",
        chat: bool = False,
        concurrency: int = 64,
        timeout_s: float = 300.0,
        connect_timeout_s: float = 5.0,
    ) -> None:
        base = url.rstrip("/")
        if base.endswith("/v1"):  # the OpenAI SDKs' base URL convention
            base = base[:-3]
        self.base = base
        self.model = model
        self.chat = chat
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.endpoint = f"{base}/v1/chat/completions" if chat else f"{base}/v1/completions"
        self._http: Optional[httpx.AsyncClient] = None

    async def __aenter__(self) -> "RealClient":
        # The pool holds one connection per request in flight, so none waits for another's.
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        timeout = httpx.Timeout(self.timeout_s, connect=self.connect_timeout_s, pool=None)
        self._http = httpx.AsyncClient(http2=False, limits=limits, timeout=timeout, headers=self.headers)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            raise RuntimeError("RealClient used outside 'async with'")
        return self._http

    # --- before sending -------------------------------------------------------------------------

    async def probe(self) -> ServerInfo:
        """``GET /v1/models``; raises :class:`EndpointUnreachable` when no connection can be made.

        Any HTTP answer means the server is there: a non-200 or non-JSON one (some servers lack
        the route) only yields a warning. The round trip is the median of a few more GETs on the
        open connection (the first one also paid for connecting).
        """
        url = f"{self.base}/v1/models"
        timeout = httpx.Timeout(self.connect_timeout_s)
        try:
            first = await self.http.get(url, timeout=timeout)
        except httpx.ConnectTimeout:
            raise EndpointUnreachable(f"no connection within {self.connect_timeout_s:g} s") from None
        except (httpx.ConnectError, httpx.UnsupportedProtocol) as exc:
            raise EndpointUnreachable(_reason(exc) or type(exc).__name__) from None
        except httpx.HTTPError as exc:
            return ServerInfo(warning=f"GET {url} failed ({_failure(exc)}); no server details or round trip recorded")
        rtts = []
        for _ in range(RTT_SAMPLES):
            t0 = time.perf_counter()
            try:
                await self.http.get(url, timeout=timeout)
            except httpx.HTTPError:
                break
            rtts.append((time.perf_counter() - t0) * 1e3)
        rtt = statistics.median(rtts) if rtts else 0.0
        if first.status_code != 200:
            return ServerInfo(
                rtt_ms=rtt, warning=f"GET {url} answered HTTP {first.status_code}; no server details recorded"
            )
        try:
            listing = first.json()
            entries = [e for e in listing["data"] if isinstance(e, dict)]
        except (ValueError, KeyError, TypeError):
            return ServerInfo(rtt_ms=rtt, warning=f"GET {url} did not answer a model list; no server details recorded")
        models = tuple(str(e.get("id", "")) for e in entries)
        entry = next((e for e in entries if e.get("id") == self.model), entries[0] if entries else {})
        owned = entry.get("owned_by")
        max_len = entry.get("max_model_len")
        warning = ""
        if models and self.model not in models:
            warning = f"{self.base} does not list model {self.model!r} (it serves: {', '.join(models)})"
        return ServerInfo(
            owned_by=owned if isinstance(owned, str) else "",
            max_model_len=max_len if isinstance(max_len, int) and not isinstance(max_len, bool) else 0,
            models=models,
            rtt_ms=rtt,
            warning=warning,
        )

    # --- one request ----------------------------------------------------------------------------

    def body(self, req: PendingRequest) -> dict[str, Any]:
        """The JSON body for ``req``: BLIS's count prompt, the request's own output length."""
        prompt = f"Token count: {req.input_tokens}"
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": max(req.output_tokens, 1),
            "stream": req.streaming,
            "ignore_eos": True,
        }
        if self.chat:
            body["messages"] = [{"role": "user", "content": prompt}]
        else:
            body["prompt"] = prompt
        if req.streaming:
            body["stream_options"] = {"include_usage": True}
        return body

    async def send(self, req: PendingRequest, obs: Observation) -> None:
        """Send ``req`` now and fill ``obs`` as the answer comes; never raises but on cancellation
        (then ``obs.finished`` stays False)."""
        obs.send_time_us = now_us()
        try:
            await asyncio.wait_for(self._exchange(req, obs), self.timeout_s)
        except asyncio.TimeoutError:
            obs.fail("timeout", f"no complete response within {self.timeout_s:g} s")
        except httpx.TimeoutException as exc:
            obs.fail("timeout", _failure(exc))
        except _BadResponse as exc:
            obs.fail("error", str(exc))
        except httpx.HTTPError as exc:  # connection refused or reset, protocol errors
            obs.fail("error", _failure(exc))
        except Exception as exc:  # anything else a broken server provokes is one error row, not a crash
            obs.fail("error", _failure(exc))
        obs.finished = True

    async def _exchange(self, req: PendingRequest, obs: Observation) -> None:
        async with self.http.stream("POST", self.endpoint, json=self.body(req)) as resp:
            if resp.status_code != 200:
                body = b""
                async for part in resp.aiter_bytes():
                    body += part
                    if len(body) >= _ERROR_BODY_BYTES:
                        break
                text = body.decode("utf-8", "replace")[:ERROR_BODY_CHARS]
                obs.fail("error", f"HTTP {resp.status_code}: {text}")
                return
            kind = resp.headers.get("content-type", "").split(";")[0].strip().lower()
            # A server may ignore "stream": a JSON answer is read as one, whatever was asked.
            if req.streaming and kind != "application/json":
                await self._read_stream(resp, obs)
            else:
                await self._read_whole(resp, obs)

    @staticmethod
    async def _read_whole(resp: httpx.Response, obs: Observation) -> None:
        raw = await resp.aread()
        obs.first_chunk_time_us = obs.last_chunk_time_us = now_us()
        obs.num_chunks = 1
        payload = _json(raw.decode("utf-8", "replace"), "response body")
        if not isinstance(payload, dict):
            raise _BadResponse(f"response body is not a JSON object: {raw[:ERROR_BODY_CHARS]!r}")
        err = _server_error(payload)
        if err is not None:
            raise _BadResponse(f"server error: {err}")
        n = _completion_tokens(payload)
        obs.output_tokens = n if n is not None else obs.num_chunks

    @staticmethod
    async def _read_stream(resp: httpx.Response, obs: Observation) -> None:
        """Server-sent events: each ``data:`` line but ``[DONE]`` is a chunk; usage is taken from
        the last chunk that carries it. A line that is neither an event field, a comment nor
        blank, or a chunk that is not a JSON object, makes the request an error."""
        usage: Optional[int] = None
        async for line in resp.aiter_lines():
            if not line or line.startswith(":"):
                continue  # event separator, SSE comment (keep-alive)
            if not line.startswith("data:"):
                if line.split(":", 1)[0] in ("event", "id", "retry"):
                    continue
                raise _BadResponse(f"not a server-sent event line: {line[:ERROR_BODY_CHARS]!r}")
            data = line[5:].strip()
            if data == "[DONE]":
                break
            t = now_us()
            obs.num_chunks += 1
            if obs.num_chunks == 1:
                obs.first_chunk_time_us = t
            obs.last_chunk_time_us = t
            chunk = _json(data, f"chunk {obs.num_chunks}")
            if not isinstance(chunk, dict):
                raise _BadResponse(f"chunk {obs.num_chunks} is not a JSON object: {data[:ERROR_BODY_CHARS]!r}")
            err = _server_error(chunk)
            if err is not None:
                raise _BadResponse(f"server error in chunk {obs.num_chunks}: {err}")
            n = _completion_tokens(chunk)
            if n is not None:
                usage = n
        if obs.num_chunks == 0:
            raise _BadResponse("the stream ended without a data chunk")
        obs.output_tokens = usage if usage is not None else obs.num_chunks

    # --- the replay -----------------------------------------------------------------------------

    async def replay(
        self,
        requests: Sequence[PendingRequest],
        stop: Optional[asyncio.Event] = None,
        on_done: Optional[Callable[[int, int], None]] = None,
    ) -> Replay:
        """Send ``requests`` (in arrival order) each at its arrival time after now, those already
        due at once, at most ``concurrency`` in flight; return when every answer is in, or as soon
        as ``stop`` is set: then nothing more is sent, requests in flight are cancelled and
        recorded as ``error: interrupted``, and the result says ``interrupted``.

        ``on_done(finished, failed)`` is called after each answer (a progress bar).
        """
        started_mono = time.monotonic()
        result = Replay(started_us=now_us())
        sem = asyncio.Semaphore(self.concurrency)
        in_flight: set[asyncio.Task] = set()  # only these: a long replay holds no finished tasks
        counts = [0, 0]  # finished, failed

        def finished(obs: Observation) -> Callable[[asyncio.Task], None]:
            def callback(task: asyncio.Task) -> None:
                in_flight.discard(task)
                sem.release()
                if obs.finished:
                    counts[0] += 1
                    counts[1] += obs.status != "ok"
                    if on_done is not None:
                        on_done(counts[0], counts[1])

            return callback

        async def dispatch() -> None:
            for req in sorted(requests, key=lambda r: (r.arrival_us, r.request_id)):
                delay = started_mono + req.arrival_us / 1e6 - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                await sem.acquire()
                obs = Observation()
                result.sent.append((req, obs))
                task = asyncio.create_task(self.send(req, obs))
                task.add_done_callback(finished(obs))
                in_flight.add(task)
            while in_flight:
                await asyncio.wait(set(in_flight))

        dispatcher = asyncio.create_task(dispatch())
        waiters = {dispatcher}
        stopper = asyncio.create_task(stop.wait()) if stop is not None else None
        if stopper is not None:
            waiters.add(stopper)
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # Also on our own cancellation: no request may outlive the replay.
            if stopper is not None:
                stopper.cancel()
            if not dispatcher.done():
                result.interrupted = True
                dispatcher.cancel()
                cut = list(in_flight)
                for task in cut:
                    task.cancel()
                await asyncio.gather(dispatcher, *cut, return_exceptions=True)
        if not result.interrupted:
            dispatcher.result()  # a bug in dispatching surfaces here, not silently
        for _, obs in result.sent:
            if not obs.finished:
                obs.fail("error", "interrupted")
        result.ended_us = now_us()
        return result
