"""Sending a workload to an OpenAI-compatible server and recording what came back.

:class:`RealClient` holds one HTTP/1.1 connection pool (an ``aiohttp.ClientSession``) to a
server. :meth:`RealClient.probe` checks the server before anything is sent (``GET /v1/models``:
is it reachable, what does it serve, how long is a round trip); :meth:`RealClient.prewarm`
keeps it busy with small requests that are not recorded; :meth:`RealClient.replay` sends each
:class:`PendingRequest` at its arrival time, at most ``concurrency`` at once, and fills one
:class:`Observation` per request sent: send, first-chunk and last-chunk times (wall clock, µs
since the Unix epoch), chunk count, output tokens, a status (``ok``, ``error``, ``timeout``)
and, with ``record_itl``, the time of every chunk. A request that fails, times out or gets
garbage back is an ``error`` or ``timeout`` observation with a one-line message; nothing a
server answers stops the replay.

The request body is BLIS's: ``{"model", "max_tokens", "stream", "prompt": "Token count: N"}``,
plus ``max_tokens`` set to the request's own output length (BLIS sends 2048), ``ignore_eos``
(so a vLLM server generates exactly that many tokens) and, when streaming, ``stream_options:
{include_usage: true}`` (so the last chunk says how many tokens came). With the ``chat`` API
format the same prompt goes to ``/v1/chat/completions`` as one user message.

Why aiohttp: at 1,000 concurrent streams httpx's per-chunk cost (several layers of async
generators per line) made the client, not the server, the bottleneck; aiohttp parses HTTP in
C and a chunk costs one read and one split here (``tests/bench/bench_observe.py``).
:func:`run` runs a coroutine on uvloop when it is installed (``uvicorn[standard]`` brings it).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import statistics
import time
from array import array
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterator, Optional, Sequence, TypeVar

import aiohttp
import yarl

from ..workload.tracev2 import TraceRecord

ERROR_BODY_CHARS = 200  # of an error response's body, kept in the message
_ERROR_BODY_BYTES = 4096  # read at most this much of an error body (a server may send megabytes)
RTT_SAMPLES = 3  # GET /v1/models round trips timed after the first
API_FORMATS = ("completions", "chat")
# Lines of server-sent events that are token chunks (data: a braced object) or blank: a read of
# nothing else is counted without looking at each line.
_TOKEN_EVENTS = re.compile(rb"(?:data: ?\{[^\n]*\}\r?\n|\r?\n)*")
# After [DONE] the body's end normally follows at once; it is read (so the connection goes back
# to the pool) for at most this long and this much, else the connection is closed instead.
_DRAIN_S = 1.0
_DRAIN_BYTES = 1 << 16
# A server usually closes idle keep-alive connections after 5 s (uvicorn's default): ours go
# sooner, so a request never goes out on one the server is closing.
KEEPALIVE_S = 4.0
# Prewarm (BLIS's): a few small requests at a time, not streamed.
PREWARM_CONCURRENCY = 4
PREWARM_INPUT_TOKENS = 256
PREWARM_OUTPUT_TOKENS = 64
PREWARM_BACKOFF_S = 0.5  # after a failed prewarm request (an unreachable server is not hammered)

_JSON_HEADERS = {"Content-Type": "application/json"}

T = TypeVar("T")


def now_us() -> int:
    """Wall-clock time in µs since the Unix epoch (the trace's clock)."""
    return time.time_ns() // 1000


def run(coro: Awaitable[T]) -> T:
    """Run ``coro`` in a new event loop: uvloop's when it is installed (several times cheaper
    per socket read than asyncio's), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


if hasattr(asyncio, "timeout"):  # Python 3.11+: no task of its own

    def _deadline(seconds: float):
        return asyncio.timeout(seconds)

else:  # pragma: no cover - Python 3.10

    class _deadline:  # type: ignore[no-redef]
        """``asyncio.timeout`` for Python 3.10: cancels the task after ``seconds``; the cancellation
        leaves as TimeoutError."""

        def __init__(self, seconds: float) -> None:
            self.seconds = seconds
            self.expired = False

        async def __aenter__(self):
            task = asyncio.current_task()
            loop = asyncio.get_running_loop()
            self.handle = loop.call_later(self.seconds, self._expire, task)
            return self

        def _expire(self, task) -> None:
            self.expired = True
            task.cancel()

        async def __aexit__(self, kind, exc, tb):
            self.handle.cancel()
            if self.expired and kind is asyncio.CancelledError:
                raise asyncio.TimeoutError from exc
            return False


def _one_line(text: str) -> str:
    """Whitespace runs (newlines included) as single spaces: a message is one CSV cell, one line."""
    return " ".join(text.split())


def _reason(exc: BaseException) -> str:
    """Why a transport failed, in the words of the OS when it said (``Connection refused``, ``Name or
    service not known``) rather than the wrappers' (``Cannot connect to host ...``)."""
    cause: Optional[BaseException] = exc
    best = _one_line(str(exc))
    seen = 0
    while cause is not None and seen < 10:
        errno = cause.errno if isinstance(cause, OSError) else None
        if isinstance(errno, int) and errno:
            best = os.strerror(errno) if errno > 0 else _one_line(str(cause.strerror or cause))
        # aiohttp keeps the OS error in os_error as well as in __cause__
        cause = getattr(cause, "os_error", None) or cause.__cause__ or cause.__context__
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
    the unfinished ones ``error: interrupted``. ``chunk_times_us`` (with ``record_itl``) holds
    the arrival time of each chunk counted in ``num_chunks``."""

    send_time_us: int = 0
    first_chunk_time_us: int = 0
    last_chunk_time_us: int = 0
    num_chunks: int = 0
    output_tokens: int = 0
    status: str = "ok"
    error_message: str = ""
    finished: bool = False
    chunk_times_us: Optional[array] = None

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


@dataclass(frozen=True)
class PrewarmResult:
    """How a prewarm went: requests sent (finished or cut off at the end) and how many failed."""

    sent: int
    failed: int
    seconds: float


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

    def chunk_times(self) -> Iterator[tuple[int, Sequence[int]]]:
        """(request id, chunk times in µs since the Unix epoch) of each request that recorded
        them (``record_itl``), by request id; requests that got no chunk are left out."""
        rows = [(req.request_id, obs.chunk_times_us) for req, obs in self.sent if obs.chunk_times_us]
        rows.sort(key=lambda r: r[0])
        return iter(rows)


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


def _json(text: bytes, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        shown = text[:ERROR_BODY_CHARS].decode("utf-8", "replace")
        raise _BadResponse(f"{what} is not JSON: {shown!r}") from None


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


async def _drain(content: aiohttp.StreamReader) -> None:
    """Read what is left of a body after [DONE] (its end, normally at once), so the connection can
    be reused; a body that goes on gives up after a while and the connection is closed instead."""
    if content.at_eof():
        return
    try:
        async with _deadline(_DRAIN_S):
            left = _DRAIN_BYTES
            while left > 0:
                part = await content.readany()
                if not part:
                    break
                left -= len(part)
    except (asyncio.TimeoutError, aiohttp.ClientError):
        pass


class RealClient:
    """An OpenAI-compatible server at ``url`` (scheme, host, port; a trailing ``/v1`` is
    allowed) serving ``model``. Use as ``async with RealClient(...) as client``.

    ``api_format`` is ``completions`` (``/v1/completions``, a ``prompt``) or ``chat``
    (``/v1/chat/completions``, one user message). ``timeout_s`` bounds each request from send
    to last byte; ``connect_timeout_s`` bounds opening a connection (and each probe read).
    ``record_itl`` keeps each chunk's arrival time (:attr:`Observation.chunk_times_us`).
    ``on_final(request_id, payload)``, when given, is called with each answer's final JSON
    object: the streamed chunk carrying ``usage``, or the whole body (a benchmark reads the
    server's own figures there).
    """

    def __init__(
        self,
        url: str,
        model: str,
        *,
        api_key: str = "",
        api_format: str = "completions",
        concurrency: int = 64,
        timeout_s: float = 300.0,
        connect_timeout_s: float = 5.0,
        record_itl: bool = False,
        on_final: Optional[Callable[[int, dict], None]] = None,
    ) -> None:
        if api_format not in API_FORMATS:
            raise ValueError(f"api_format must be one of {', '.join(API_FORMATS)}, got {api_format!r}")
        base = url.rstrip("/")
        if base.endswith("/v1"):  # the OpenAI SDKs' base URL convention
            base = base[:-3]
        self.base = base
        self.model = model
        self.api_format = api_format
        self.chat = api_format == "chat"
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.record_itl = record_itl
        self.on_final = on_final
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.endpoint = f"{base}/v1/chat/completions" if self.chat else f"{base}/v1/completions"
        self._http: Optional[aiohttp.ClientSession] = None

    async def __aenter__(self) -> "RealClient":
        # One connection per request in flight (the replay's bound), so none waits for another's;
        # aiohttp's pool hands out an idle connection in O(1), however many there are.
        connector = aiohttp.TCPConnector(
            limit=max(self.concurrency, PREWARM_CONCURRENCY), limit_per_host=0, keepalive_timeout=KEEPALIVE_S
        )
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout_s)
        self._http = aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            headers=self.headers,
            cookie_jar=aiohttp.DummyCookieJar(),  # an API keeps no cookies: none to match per request
            trust_env=False,
        )
        self._url = yarl.URL(self.endpoint)  # parsed once, not per request
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            raise RuntimeError("RealClient used outside 'async with'")
        return self._http

    # --- before sending -------------------------------------------------------------------------

    async def _get(self, url: str) -> tuple[int, bytes]:
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.connect_timeout_s, sock_read=self.connect_timeout_s
        )
        async with self.http.get(url, timeout=timeout) as resp:
            return resp.status, await resp.read()

    async def probe(self) -> ServerInfo:
        """``GET /v1/models``; raises :class:`EndpointUnreachable` when no connection can be made.

        Any HTTP answer means the server is there: a non-200 or non-JSON one (some servers lack
        the route) only yields a warning. The round trip is the median of a few more GETs on the
        open connection (the first one also paid for connecting).
        """
        url = f"{self.base}/v1/models"
        try:
            status, raw = await self._get(url)
        except aiohttp.ConnectionTimeoutError:
            raise EndpointUnreachable(f"no connection within {self.connect_timeout_s:g} s") from None
        except (aiohttp.ClientConnectorError, aiohttp.InvalidURL) as exc:
            raise EndpointUnreachable(_reason(exc) or type(exc).__name__) from None
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            return ServerInfo(warning=f"GET {url} failed ({_failure(exc)}); no server details or round trip recorded")
        rtts = []
        for _ in range(RTT_SAMPLES):
            t0 = time.perf_counter()
            try:
                await self._get(url)
            except (aiohttp.ClientError, asyncio.TimeoutError):
                break
            rtts.append((time.perf_counter() - t0) * 1e3)
        rtt = statistics.median(rtts) if rtts else 0.0
        if status != 200:
            return ServerInfo(rtt_ms=rtt, warning=f"GET {url} answered HTTP {status}; no server details recorded")
        try:
            listing = json.loads(raw)
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

    async def prewarm(self, seconds: float, stop: Optional[asyncio.Event] = None) -> PrewarmResult:
        """Keep the server busy for ``seconds`` (CUDA graphs, caches, a gateway's pools) with
        BLIS's prewarm load: ``PREWARM_CONCURRENCY`` loops of one request at a time, each a
        ``Token count: 256`` prompt answered with 64 tokens, not streamed; a failed one waits
        half a second before the next. Nothing is recorded. Requests still out when the time is
        up (or when ``stop`` is set) are cancelled."""
        sent = failed = 0
        loop = asyncio.get_running_loop()
        start = loop.time()
        end = start + seconds
        req = PendingRequest(-1, 0, PREWARM_INPUT_TOKENS, PREWARM_OUTPUT_TOKENS, streaming=False)

        async def worker() -> None:
            nonlocal sent, failed
            while loop.time() < end:
                obs = Observation()
                sent += 1
                await self.send(req, obs, final=False)
                if obs.status != "ok":
                    failed += 1
                    await asyncio.sleep(min(PREWARM_BACKOFF_S, max(end - loop.time(), 0)))

        workers = [asyncio.ensure_future(worker()) for _ in range(PREWARM_CONCURRENCY)]
        waiters = set(workers)
        if stop is not None:
            waiters.add(asyncio.ensure_future(stop.wait()))
        try:
            # The workers stop sending once the time is up: the first to end ends the prewarm.
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
        return PrewarmResult(sent, failed, loop.time() - start)

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

    async def send(self, req: PendingRequest, obs: Observation, final: bool = True) -> None:
        """Send ``req`` now and fill ``obs`` as the answer comes; never raises but on cancellation
        (then ``obs.finished`` stays False). ``final``: pass the last JSON object to ``on_final``."""
        obs.send_time_us = now_us()
        if self.record_itl and req.streaming:
            obs.chunk_times_us = array("q")
        try:
            async with _deadline(self.timeout_s):
                await self._exchange(req, obs, final)
        except aiohttp.ServerTimeoutError as exc:  # connecting took longer than connect_timeout_s
            obs.fail("timeout", _failure(exc))
        except asyncio.TimeoutError:
            obs.fail("timeout", f"no complete response within {self.timeout_s:g} s")
        except _BadResponse as exc:
            obs.fail("error", str(exc))
        except aiohttp.ClientError as exc:  # connection refused or reset, protocol errors
            obs.fail("error", _failure(exc))
        except Exception as exc:  # anything else a broken server provokes is one error row, not a crash
            obs.fail("error", _failure(exc))
        obs.finished = True

    async def _exchange(self, req: PendingRequest, obs: Observation, final: bool) -> None:
        data = json.dumps(self.body(req)).encode()
        async with self.http.post(self._url, data=data, headers=_JSON_HEADERS) as resp:
            if resp.status != 200:
                body = bytearray()
                while len(body) < _ERROR_BODY_BYTES:
                    part = await resp.content.readany()
                    if not part:
                        break
                    body += part
                text = body.decode("utf-8", "replace")[:ERROR_BODY_CHARS]
                obs.fail("error", f"HTTP {resp.status}: {text}")
                return
            kind = resp.headers.get("content-type", "").split(";")[0].strip().lower()
            on_final = self.on_final if final else None
            # A server may ignore "stream": a JSON answer is read as one, whatever was asked.
            if req.streaming and kind != "application/json":
                await self._read_stream(resp.content, req, obs, on_final)
            else:
                await self._read_whole(resp, req, obs, on_final)

    @staticmethod
    async def _read_whole(
        resp: aiohttp.ClientResponse, req: PendingRequest, obs: Observation, on_final: Optional[Callable]
    ) -> None:
        raw = await resp.read()
        obs.first_chunk_time_us = obs.last_chunk_time_us = now_us()
        obs.num_chunks = 1
        if obs.chunk_times_us is not None:
            obs.chunk_times_us.append(obs.first_chunk_time_us)
        payload = _json(raw, "response body")
        if not isinstance(payload, dict):
            raise _BadResponse(f"response body is not a JSON object: {raw[:ERROR_BODY_CHARS]!r}")
        err = _server_error(payload)
        if err is not None:
            raise _BadResponse(f"server error: {err}")
        n = _completion_tokens(payload)
        obs.output_tokens = n if n is not None else obs.num_chunks
        if on_final is not None:
            on_final(req.request_id, payload)

    @staticmethod
    async def _read_stream(
        content: aiohttp.StreamReader, req: PendingRequest, obs: Observation, on_final: Optional[Callable]
    ) -> None:
        """Server-sent events: each ``data:`` line but ``[DONE]`` is a chunk, timed when the read
        that completed its line returned; usage is taken from the last chunk that carries it. A
        line that is neither an event field, a comment nor blank makes the request an error, and
        so does a chunk that is not a JSON object (not in braces, or one that names usage or an
        error and does not parse: a token's chunk is not parsed)."""
        usage: Optional[int] = None
        final: Optional[dict] = None
        times = obs.chunk_times_us
        rest = b""
        done = False
        loads = json.loads
        while not done:
            data = await content.readany()
            t = now_us()
            if not data:  # the end of the body: a last line without its newline still counts
                if not rest:
                    break
                lines = [rest]
                done = True
            else:
                if rest:
                    data = rest + data
                cut = data.rfind(b"\n") + 1
                rest = data[cut:]
                if not cut:
                    continue
                # The usual read: whole token chunks and blank lines only. They are counted at
                # once (the checks below would pass each of them untouched).
                if b'"usage"' not in data and b'"error"' not in data and _TOKEN_EVENTS.fullmatch(data, 0, cut):
                    n = data.count(b"data:", 0, cut)
                    if n:
                        if not obs.num_chunks:
                            obs.first_chunk_time_us = t
                        obs.num_chunks += n
                        obs.last_chunk_time_us = t
                        if times is not None:
                            times.extend([t] * n)
                    continue
                lines = data[:cut].split(b"\n")
                lines.pop()
            for line in lines:
                if line[-1:] == b"\r":
                    line = line[:-1]
                if not line or line[0] == 58:  # blank (event separator), ":" (an SSE comment)
                    continue
                if line[:5] != b"data:":
                    if line.split(b":", 1)[0] in (b"event", b"id", b"retry"):
                        continue
                    shown = line[:ERROR_BODY_CHARS].decode("utf-8", "replace")
                    raise _BadResponse(f"not a server-sent event line: {shown!r}")
                payload = line[5:].strip()
                if payload == b"[DONE]":
                    done = True
                    break
                n = obs.num_chunks = obs.num_chunks + 1
                if n == 1:
                    obs.first_chunk_time_us = t
                obs.last_chunk_time_us = t
                if times is not None:
                    times.append(t)
                # A token's chunk, braced and naming neither usage nor an error, is not parsed:
                # decoding every one was half the client's time per token at 1,000 streams.
                if (
                    payload[:1] == b"{"
                    and payload[-1:] == b"}"
                    and b'"usage"' not in payload
                    and b'"error"' not in payload
                ):
                    continue
                try:
                    chunk = loads(payload)
                except ValueError:
                    shown = payload[:ERROR_BODY_CHARS].decode("utf-8", "replace")
                    raise _BadResponse(f"chunk {n} is not JSON: {shown!r}") from None
                if type(chunk) is not dict:
                    shown = payload[:ERROR_BODY_CHARS].decode("utf-8", "replace")
                    raise _BadResponse(f"chunk {n} is not a JSON object: {shown!r}")
                if "error" in chunk:
                    err = _server_error(chunk)
                    if err is not None:
                        raise _BadResponse(f"server error in chunk {n}: {err}")
                if "usage" in chunk:
                    u = _completion_tokens(chunk)
                    if u is not None:
                        usage = u
                        final = chunk
        if obs.num_chunks == 0:
            raise _BadResponse("the stream ended without a data chunk")
        obs.output_tokens = usage if usage is not None else obs.num_chunks
        if done:
            await _drain(content)
        if on_final is not None and final is not None:
            on_final(req.request_id, final)

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
                due = started_mono + req.arrival_us / 1e6
                # Never early: uvloop's timers count whole milliseconds and may fire up to one
                # early, so what is left after one is slept again, a millisecond at least.
                while (delay := due - time.monotonic()) > 0:
                    await asyncio.sleep(max(delay, 0.001))
                await sem.acquire()
                obs = Observation()
                result.sent.append((req, obs))
                task = asyncio.ensure_future(self.send(req, obs))
                task.add_done_callback(finished(obs))
                in_flight.add(task)
            while in_flight:
                await asyncio.wait(set(in_flight))

        dispatcher = asyncio.ensure_future(dispatch())
        waiters = {dispatcher}
        stopper = asyncio.ensure_future(stop.wait()) if stop is not None else None
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
