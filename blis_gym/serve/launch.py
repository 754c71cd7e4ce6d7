"""Running ``blis serve``'s servers: sockets bound up front, uvicorn in one event loop.

Every server (one, or a fleet's N) runs in the same asyncio loop. Ports are bound before
anything starts, so a port in use is one clear error. Ctrl-C (or SIGTERM) stops them all:
requests in flight end at once (503), then uvicorn closes its connections.
:class:`BackgroundServers` runs the same thing in a thread, for tests and benchmarks.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import signal
import socket
import sys
import threading
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import uvicorn

from ..errors import ConfigError
from .app import create_app
from .plan import ServePlan
from .realtime import RealtimeEngine

GRACE_S = 1.0  # how long uvicorn waits for responses to finish once stopping


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: one Ctrl-C must stop every server."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


@dataclass
class Endpoint:
    """One server: its engine, its bound socket and its base URL."""

    engine: RealtimeEngine
    sock: socket.socket
    url: str
    server: Optional[_Server] = None


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket on ``host:port`` (port 0: any free one); ConfigError if taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto named explicitly: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on sockets
    # whose proto says TCP, and a token written behind a delayed ACK would come 40 ms late.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        why = "the port is in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
        raise ConfigError(f"cannot listen on {host}:{port}: {why}") from None
    sock.set_inheritable(True)
    return sock


def endpoints(plan: ServePlan, host: str, port: int) -> list[Endpoint]:
    """Bind one socket per server of ``plan``: ports ``port``, ``port + 1``, ... (0: free ones)."""
    out: list[Endpoint] = []
    try:
        for i, config in enumerate(plan.configs):
            sock = bind(host, port + i if port else 0)
            shown = f"[{host}]" if ":" in host else host
            out.append(Endpoint(RealtimeEngine(config), sock, f"http://{shown}:{sock.getsockname()[1]}"))
    except BaseException:
        for e in out:
            e.sock.close()
        raise
    return out


def http_protocol() -> str:
    """uvicorn's HTTP/1.1 implementation: httptools (``uvicorn[standard]``; its C parser makes
    a token's write several times cheaper than h11's pure Python) when installed, else h11."""
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "h11"
    return "httptools"


def _server(endpoint: Endpoint, model: str) -> _Server:
    config = uvicorn.Config(
        create_app(endpoint.engine, model),
        http=http_protocol(),
        proxy_headers=False,  # no proxy in front to trust: one middleware less per request
        log_level="warning",
        access_log=False,
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=GRACE_S,
        backlog=4096,
        timeout_keep_alive=30,
    )
    return _Server(config)


async def serve(
    eps: Sequence[Endpoint],
    model: str,
    started: Optional[Callable[[], None]] = None,
    stop: Optional[asyncio.Event] = None,
) -> None:
    """Run every endpoint's server until ``stop`` is set (or they all stop); ``started()`` is
    called once all of them listen."""
    for e in eps:
        e.server = _server(e, model)
    tasks = [asyncio.ensure_future(e.server.serve(sockets=[e.sock])) for e in eps]

    def halt() -> None:
        for e in eps:
            e.engine.stop()  # requests in flight end now, so connections close at once
            if e.server.should_exit:
                e.server.force_exit = True  # a second Ctrl-C
            e.server.should_exit = True

    while not all(e.server.started for e in eps):
        if any(t.done() for t in tasks):
            halt()
            break
        await asyncio.sleep(0.01)
    else:
        if started is not None:
            started()
    if stop is not None:
        waiter = asyncio.ensure_future(stop.wait())
        await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
        if waiter.done():
            halt()
        else:
            waiter.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError):
            raise r


def run_forever(eps: Sequence[Endpoint], model: str, describe: Callable[[Endpoint], str]) -> None:
    """Serve in this thread until Ctrl-C or SIGTERM; print ``describe(endpoint)`` for each on stderr
    once all listen."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)

        def started() -> None:
            for e in eps:
                print(describe(e), file=sys.stderr, flush=True)

        await serve(eps, model, started, stop)

    asyncio.run(main())


class BackgroundServers:
    """``blis serve`` in a background thread (tests, benchmarks)::

    with BackgroundServers(plan) as urls:    # bound to 127.0.0.1, free ports
        ...
    """

    def __init__(self, plan: ServePlan, host: str = "127.0.0.1", port: int = 0, timeout_s: float = 30.0) -> None:
        self.plan = plan
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        self.endpoints: list[Endpoint] = []
        self._thread: Optional[threading.Thread] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._stop: Optional[asyncio.Event] = None
        self._ready = threading.Event()
        self._error: Optional[BaseException] = None

    def __enter__(self) -> list[str]:
        self.endpoints = endpoints(self.plan, self.host, self.port)
        self._thread = threading.Thread(target=self._main, name="blis-serve", daemon=True)
        self._thread.start()
        if not self._ready.wait(self.timeout_s) or self._error is not None:
            self.__exit__(None, None, None)
            raise RuntimeError(f"blis serve did not start: {self._error!r}")
        return [e.url for e in self.endpoints]

    def _main(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            await serve(self.endpoints, self.plan.model, self._ready.set, self._stop)

        try:
            asyncio.run(main())
        except BaseException as exc:  # reported by __enter__ when it happens at startup
            self._error = exc
        finally:
            self._ready.set()

    def __exit__(self, *exc) -> None:
        if self._loop is not None and self._stop is not None and self._thread is not None:
            if self._thread.is_alive():
                with contextlib.suppress(RuntimeError):  # the loop already closed
                    self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(self.timeout_s)
        for e in self.endpoints:
            e.sock.close()
        if exc[0] is None and self._thread is not None and self._thread.is_alive():
            raise RuntimeError(f"blis serve did not stop within {self.timeout_s:g} s")
