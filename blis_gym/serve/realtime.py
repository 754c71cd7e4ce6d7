"""The real-time engine of ``blis serve``: a cluster simulation whose clock is the wall clock.

Simulated time (ticks, µs) is wall time since the engine started. One asyncio task drives
the simulation: it runs every event due by now (never one in the future), then sleeps until
the next event is due or a request comes in. A request arrives at the current tick (after
every tick already run, so the run is the one a workload holding it from the start would
give: ``tests/unit/test_serve_open_run.py`` checks that), goes through the configured admission and
routing policies, and is simulated like any other.

Token times are the simulator's own figures, not step boundaries: the first token comes at
arrival + TTFT, each later one an inter-token latency (its step's time plus the per-token
overhead alpha2) after the one before, and the request ends at arrival + E2E, which in BLIS
is one more inter-token latency after the last token. Lazy decoding is off (it would report
a decoder's tokens late, in bulk), so after each simulated step every running request's
progress is exact; the engine turns new progress into release ticks, and each request's
reader (:class:`RequestStream`) sleeps until a tick's wall time before handing tokens out.
Times a token is produced are always ahead of the event that produced it (a step's tokens
come out when it ends), which gives the loop its slack.

Cancellation (ours; the simulator has none): :meth:`RealtimeEngine.cancel` takes a request
whose client went away out of the simulation, from its instance's wait queue or running batch,
its KV blocks freed; one still on its way to an instance (admission, routing) is taken out as
soon as it reaches one. Its reader wakes at once with :class:`Cancelled`.

Memory stays flat however many requests are served: nothing is kept of a finished request.
The simulator's per-request tables (the metrics' TTFT, E2E, ITL, scheduling delay and request
records, for a report a server never writes) are emptied as requests leave, its per-step
series (queue depths, batch sizes) are cut, and each instance's step ITL series, which token
times are read from, is rebased now and then to begin at the oldest step a request in the
system still refers to (:func:`compact_step_itls`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Optional

import numpy as np

from ..cluster.simulator import ClusterSimulator
from ..config.schema import ClusterConfig
from ..engine.metrics import InstanceMetrics
from ..engine.request import COMPLETED, Request
from .tokens import TokenIds

log = logging.getLogger("blis_gym")

_INF = 1 << 64
LATE_BUCKET_US = 100  # release lateness histogram: 0.1 ms buckets...
LATE_BUCKETS = 10_000  # ...up to 1 s (the last bucket holds everything later)
# An instance's step ITL series is rebased once this many steps are no longer referred to,
# and its per-step report series are cut beyond this length.
COMPACT_STEPS = 4096


class Rejected(Exception):
    """The simulation will not serve a request: admission rejected it, it can never fit an
    instance's KV cache, or the server is stopping. ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, status: int, kind: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind  # OpenAI's error type


class Cancelled(Rejected):
    """The client went away (HTTP 499, nginx's "client closed request": nobody reads it)."""

    def __init__(self) -> None:
        super().__init__("the client closed the connection", 499, "cancelled")


def _resolve(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)


def _instance_metrics_tables(m: InstanceMetrics) -> tuple[dict, ...]:
    """The per-request tables of an instance's metrics (for an end-of-run report)."""
    return (m.ttfts, m.e2es, m.itls, m.scheduling_delays, m.requests)


def tidy(inst, streams: dict) -> None:
    """Let go of what ``inst`` keeps of the past: its per-step report series, the per-request
    table entries of requests no longer in it (those ``_forget`` did not see: the prompt part
    of a disaggregated request, say), and the steps of its ITL series nobody refers to."""
    m = inst.metrics
    del m.batch_sizes[:], m.waitq_depths[:]
    live = {r.id for r in inst.running}
    live.update(r.id for r in inst.waitq)
    live.update(e[-1].id for e in inst.events if isinstance(e[-1], Request))
    for table in _instance_metrics_tables(m):
        if len(table) > len(live):
            for rid in [rid for rid in table if rid not in live]:
                del table[rid]
    compact_step_itls(inst, streams)


def compact_step_itls(inst, streams: dict) -> int:
    """Rebase ``inst``'s step ITL series to begin at the oldest step a request still in the
    instance refers to (its first ITL range), dropping the steps before it; the ranges of those
    requests and the cursors of their ``streams`` (by request index) move with it. Returns the
    number of steps dropped. The ITL counts (a report's histogram) restart from zero."""
    m = inst.metrics
    prefix = m._itl_prefix
    low = len(prefix) - 1  # no request refers to a step: keep only the running sum's end
    holders = [r for r in (*inst.running, *inst.waitq) if r.itl_steps]
    for r in holders:
        if r.itl_steps[0] < low:
            low = r.itl_steps[0]
    if low <= 0:
        return 0
    base = prefix[low]
    m._itl_prefix = [p - base for p in prefix[low:]]
    m._itl_count_diff = [0] * len(m._itl_prefix)
    for r in holders:
        r.itl_steps[:] = [i - low for i in r.itl_steps]
        stream = streams.get(r.index)
        if stream is not None and stream.request is r and stream._ri >= 0:
            stream._pos -= low
    return low


def _ignore(req: Request, tick: int) -> None:
    """A fork's departure hook: what happens in a fork's future (the lookahead oracle's) is
    hypothetical, so nobody is told."""


class _DepartureHook:
    """The engine's departure hook, as the simulation holds it: forks of the simulation get
    ``_ignore`` instead of a copy (which would copy the engine, its event loop and streams)."""

    __slots__ = ("engine",)

    def __init__(self, engine: "RealtimeEngine") -> None:
        self.engine = engine

    def __call__(self, req: Request, tick: int) -> None:
        self.engine._departed(req, tick)

    def __deepcopy__(self, memo: dict):
        return _ignore


class RequestStream:
    """One request as its HTTP handler sees it: the release tick of each output token the
    simulator has produced so far, then the request's end (ticks, µs since engine start)."""

    __slots__ = ("request", "ticks", "end", "error", "sent", "_engine", "_waiter", "_sleeper", "_ri", "_pos")

    def __init__(self, engine: "RealtimeEngine", request: Request) -> None:
        self.request = request
        self.ticks: list[int] = []  # release tick of each output token known so far
        self.end: Optional[int] = None  # arrival + the simulator's E2E, once it completed
        self.error: Optional[Rejected] = None
        self.sent = 0  # tokens handed out by tokens()
        self._engine = engine
        self._waiter: Optional[asyncio.Future] = None
        self._sleeper: Optional[asyncio.Future] = None  # while sleeping until a release time
        # Cursor over the request's ITL steps (flat [start, end) ranges of its instance's
        # step series): the next step whose latency separates two of its tokens.
        self._ri = -2
        self._pos = 0

    # --- the engine's side -------------------------------------------------------
    def _produce(self, produced: int, metrics: InstanceMetrics) -> None:
        """The simulator has produced ``produced`` tokens: add the release ticks of new ones."""
        ticks = self.ticks
        known = len(ticks)
        if known >= produced:
            return
        req = self.request
        if known == 0:
            ticks.append(req.arrival + req.first_token_time)
            known = 1
        if known < produced:
            steps = req.itl_steps
            ri = self._ri
            pos = self._pos
            t = ticks[-1]
            step_itl = metrics.step_itl
            while known < produced:
                if ri < 0 or pos >= steps[ri + 1]:
                    if ri + 2 >= len(steps):  # cannot happen: a decoded token records its step
                        break
                    ri += 2
                    pos = steps[ri]
                t += step_itl(pos)
                pos += 1
                ticks.append(t)
                known += 1
            self._ri = ri
            self._pos = pos
        self._notify()

    def _fail(self, error: Rejected) -> None:
        """End the request with ``error``: its reader raises it as soon as it next looks, even
        mid-sleep (tokens already known are not handed out)."""
        if self.error is None:
            self.error = error
        self._notify()
        s = self._sleeper
        if s is not None and not s.done():
            s.set_result(None)

    def _notify(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    # --- the reader's side --------------------------------------------------------
    async def _changed(self) -> None:
        fut = self._engine.loop.create_future()
        self._waiter = fut
        try:
            await fut
        finally:
            self._waiter = None

    async def _sleep_until(self, tick: int) -> None:
        """Sleep until the wall time of ``tick`` (at once when it has passed), or until the
        request fails."""
        engine = self._engine
        loop = engine.loop
        when = engine._t0 + tick * 1e-6
        if when <= loop.time():
            return
        fut = loop.create_future()
        self._sleeper = fut
        handle = loop.call_at(when, _resolve, fut)
        try:
            await fut
        finally:
            handle.cancel()
            self._sleeper = None

    async def ready(self) -> None:
        """Return once the first token's release tick is known (the simulator produced it);
        raise :class:`Rejected` when the request will not be served."""
        while not self.ticks:
            if self.error is not None:
                raise self.error
            await self._changed()

    async def tokens(self) -> int:
        """Sleep until the next token is due; return how many tokens are due now (at least 1),
        or 0 once every token was handed out. Raises :class:`Rejected` (the server stops)."""
        n_out = self.request.n_out
        while True:
            if self.error is not None:
                raise self.error
            sent = self.sent
            ticks = self.ticks
            if sent < len(ticks):
                engine = self._engine
                due = ticks[sent]
                await self._sleep_until(due)
                if self.error is not None:
                    raise self.error
                # Tokens that fell due meanwhile go out together (one write when behind).
                now = engine.now()
                engine.late(now - due)
                k = sent + 1
                n = len(ticks)
                while k < n and ticks[k] <= now:
                    k += 1
                self.sent = k
                return k - sent
            if sent >= n_out:
                return 0
            await self._changed()

    async def finished(self) -> None:
        """Sleep until the request's end (arrival + E2E); raises :class:`Rejected`."""
        while self.end is None:
            if self.error is not None:
                raise self.error
            await self._changed()
        engine = self._engine
        await self._sleep_until(self.end)
        if self.error is not None:
            raise self.error
        engine.late(engine.now() - self.end)

    def sim_timing(self) -> dict:
        """The simulator's own figures for this request (µs; times since engine start)."""
        req = self.request
        out = {
            "request_id": req.id,
            "instance": req.assigned,
            "arrival_us": req.arrival,
            "ttft_us": req.first_token_time if self.ticks else None,
            "e2e_us": self.end - req.arrival if self.end is not None else None,
        }
        return out


class RealtimeEngine:
    """A cluster simulation run against the wall clock (see the module docstring).

    Build it anywhere; ``start()`` inside the event loop that serves requests ties tick 0 to
    that moment. ``submit`` adds a request arriving now and returns its stream.
    """

    def __init__(self, config: ClusterConfig) -> None:
        self.config = config
        self.sim = ClusterSimulator.from_config(config, [])
        for inst in self.sim.instances:
            inst.lazy_enabled = False  # every step must show each request's true progress
        self.sim.set_departure_hook(_DepartureHook(self))
        self.ids = TokenIds()
        self._streams: dict[int, RequestStream] = {}  # in flight, by request index
        self._doomed: dict[int, Request] = {}  # cancelled on their way to an instance, by index
        self.cancelled = 0  # requests whose client went away before their response ended
        self._seen_steps = [0] * len(self.sim.instances)
        self._tidied = [0] * len(self.sim.instances)  # step count at each instance's last tidy()
        self._next_index = 0
        self._until = -1  # the last tick run
        self._t0 = 0.0  # loop time (s) of tick 0
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self._task: Optional[asyncio.Task] = None
        self._waiter: Optional[asyncio.Future] = None
        self._stopped: Optional[Rejected] = None
        # How late releases (a token batch, or a request's end) came after their tick: a
        # histogram, so the hot path adds one count and keeps no object per token.
        self._late_hist = [0] * LATE_BUCKETS
        self._late_max = 0

    # --- clock -----------------------------------------------------------------------
    def now(self) -> int:
        """The current tick: µs of wall time since ``start``."""
        return int((self.loop.time() - self._t0) * 1e6)

    def wall_time(self, tick: int) -> float:
        """The event loop's time (s; ``time.monotonic``) of ``tick``."""
        return self._t0 + tick * 1e-6

    async def sleep_until(self, tick: int) -> None:
        """Sleep until the wall time of ``tick`` (at once when it has passed)."""
        delay = self._t0 + tick * 1e-6 - self.loop.time()
        if delay > 0:
            await asyncio.sleep(delay)

    def late(self, us: int) -> None:
        """Record one release that came ``us`` µs after its tick."""
        if us < 0:
            us = 0
        i = us // LATE_BUCKET_US
        self._late_hist[i if i < LATE_BUCKETS else LATE_BUCKETS - 1] += 1
        if us > self._late_max:
            self._late_max = us

    def stats(self) -> dict:
        """The run so far: requests submitted and in flight, the simulated clock (µs), and
        release lateness (ms: p50 and p99 to the 0.1 ms bucket's top, the max exact)."""
        hist = self._late_hist
        total = sum(hist)
        out = {
            "requests": self._next_index,
            "in_flight": len(self._streams),
            "cancelled": self.cancelled,
            "sim_time_us": self._until,
            "kv_blocks_used": sum(inst.kv.used for inst in self.sim.instances),
            "kv_blocks_total": sum(inst.kv.total for inst in self.sim.instances),
            "releases": total,
        }
        if total:
            lat = {}
            for name, q in (("p50", 0.5), ("p99", 0.99)):
                want, seen = q * total, 0
                for i, n in enumerate(hist):
                    seen += n
                    if seen >= want:
                        lat[name] = min((i + 1) * LATE_BUCKET_US, self._late_max) / 1e3
                        break
            lat["max"] = self._late_max / 1e3
            out["release_lateness_ms"] = lat
        return out

    @property
    def in_flight(self) -> int:
        """Requests submitted and not yet completed, dropped or rejected."""
        return len(self._streams)

    # --- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        """Start the simulation now, in the running event loop."""
        self.loop = asyncio.get_running_loop()
        self._t0 = self.loop.time()
        self._task = self.loop.create_task(self._run())

    def stop(self) -> None:
        """Stop: end every request in flight with a 503 and refuse new ones."""
        if self._stopped is None:
            self._stopped = Rejected("the server is shutting down", 503, "service_unavailable")
            self._fail_all(self._stopped)
            self._wake()

    async def close(self) -> None:
        """``stop``, then wait for the simulation task to end."""
        self.stop()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    # --- requests --------------------------------------------------------------------
    def submit(self, input_ids: np.ndarray, n_out: int) -> RequestStream:
        """A request with these input token ids and ``n_out`` output tokens, arriving now."""
        if self._stopped is not None:
            raise self._stopped
        tick = self.now()
        if tick <= self._until:  # events of that tick already ran: arrive just after them
            tick = self._until + 1
        index = self._next_index
        self._next_index += 1
        req = Request(f"request_{index}", index, tick, input_ids, self.ids.fresh(n_out))
        self.sim.inject(req)
        stream = RequestStream(self, req)
        self._streams[index] = stream
        self._wake()
        return stream

    def cancel(self, stream: RequestStream) -> bool:
        """The client of ``stream`` went away: end it (its reader raises :class:`Cancelled`) and
        take its request out of the simulation, KV blocks freed, now or (on its way to an
        instance) as soon as it reaches one. Counted in ``stats()["cancelled"]`` unless the
        request had already ended. Returns whether the simulation still held the request."""
        if stream.error is not None:
            return False  # rejected, failed or cancelled already
        self.cancelled += 1
        stream._fail(Cancelled())  # its own: an exception raised again keeps its old traceback
        req = stream.request
        if self._streams.pop(req.index, None) is None:
            return False  # the simulation was done with it; only its last tokens were due
        if not self._withdraw(req.index):
            self._doomed[req.index] = req
            self._wake()
        return True

    def _withdraw(self, index: int) -> bool:
        """Take the request (and any part of it, e.g. a disaggregated prompt) numbered ``index``
        out of the instance holding it: its wait queue, or its running batch with its KV blocks
        released. False when no instance holds it (yet)."""
        found = False
        for inst in self.sim.instances:
            for r in inst.running:
                if r.index == index:
                    inst.running.remove(r)  # in place: with lazy decoding off it is also the active list
                    inst.kv.release(r)
                    self._forget(inst, r)
                    found = True
                    break
            for r in inst.waitq:
                if r.index == index:
                    inst.waitq.remove(r)
                    self._forget(inst, r)
                    found = True
                    break
        return found

    @staticmethod
    def _forget(inst, req: Request) -> None:
        for table in _instance_metrics_tables(inst.metrics):
            table.pop(req.id, None)

    # --- the simulation task -------------------------------------------------------------
    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def _run(self) -> None:
        loop = self.loop
        sim = self.sim
        try:
            while self._stopped is None:
                now = self.now()
                if now > self._until:
                    sim.advance_until(now)
                    self._until = now
                    self._collect()
                    if self._doomed:
                        for index in [i for i in self._doomed if self._withdraw(i)]:
                            del self._doomed[index]
                nxt = sim.next_event_time()
                fut = loop.create_future()
                self._waiter = fut
                handle = loop.call_at(self._t0 + nxt * 1e-6, _resolve, fut) if nxt < _INF else None
                try:
                    await fut
                finally:
                    self._waiter = None
                    if handle is not None:
                        handle.cancel()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a simulator bug: say so to every client, once in the log
            log.exception("blis serve: the simulation failed")
            self._stopped = Rejected(f"the simulation failed: {exc}", 500, "internal_error")
            self._fail_all(self._stopped)

    def _collect(self) -> None:
        """Release ticks of the tokens produced by the steps just run, instance by instance."""
        streams = self._streams
        seen = self._seen_steps
        for i, inst in enumerate(self.sim.instances):
            count = inst.step_count
            if count == seen[i]:
                continue
            seen[i] = count
            metrics = inst.metrics
            if count - self._tidied[i] >= COMPACT_STEPS:
                self._tidied[i] = count
                tidy(inst, streams)
            for req in inst.running:
                produced = req.progress - req.n_in + 1
                if produced > 0:
                    stream = streams.get(req.index)
                    if stream is not None and produced > len(stream.ticks):
                        stream._produce(produced, metrics)

    def _departed(self, req: Request, tick: int) -> None:
        """The departure hook: a request completed (at ``tick`` = arrival + E2E), was dropped
        by its instance or rejected by admission."""
        stream = self._streams.pop(req.index, None)
        self._doomed.pop(req.index, None)
        inst = self._instance(req.assigned) if req.assigned else None
        if stream is None:
            if inst is not None:
                self._forget(inst, req)
            return
        if req.state == COMPLETED:
            stream._produce(req.n_out, inst.metrics)
            stream.end = tick
            stream._notify()
        elif req.assigned:
            stream._fail(
                Rejected(
                    f"the simulated instance cannot hold this request in its KV cache ({req.n_in} prompt + "
                    f"{req.n_out} output tokens)",
                    400,
                    "invalid_request_error",
                )
            )
        else:
            stream._fail(
                Rejected(f"rejected by the admission policy ({self.config.admission_policy})", 429, "rate_limit_error")
            )
        if inst is not None:
            self._forget(inst, req)

    def _instance(self, instance_id: str):
        """The instance named ``instance_id`` (ids are ``instance_<i>``)."""
        try:
            inst = self.sim.instances[int(instance_id.rsplit("_", 1)[1])]
            if inst.id == instance_id:
                return inst
        except (IndexError, ValueError):
            pass
        return next(i for i in self.sim.instances if i.id == instance_id)

    def _fail_all(self, error: Rejected) -> None:
        streams = list(self._streams.values())
        self._streams.clear()
        for stream in streams:
            stream._fail(error)
