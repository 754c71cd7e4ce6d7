"""Requests from an expanded, validated :class:`~blis_gym.workload.spec.WorkloadSpec`.

Draw order, as in BLIS (so the same spec and seed give the same requests):

1. The "workload-gen" stream (seed XOR fnv1a64("workload-gen")) draws each
   prefix group's tokens, in order of the group's first client, then one
   Int63 seed per client.
2. Each client draws from its own stream: an inter-arrival time, then either
   a request (input length, output length, input tokens, output tokens; a
   multimodal input draws text, then per modality a count and that many item
   lengths, then all its tokens at once) or a multi-turn session (an Int63
   session id, then per round the two lengths, the two token runs and the
   reasoning share). Arrivals outside a client's activity windows draw nothing.
3. All requests are merged by arrival time (ties keep client order), cut to
   ``max_requests`` and named ``request_0 ...``.

A client stops at the horizon or after 2 x ``max_requests`` requests, as in
BLIS; clients are also merged lazily, each drawn only until nothing it could
still draw would make the cut (its streams are its own, so the requests kept are
the same; BLIS first draws every client to its cap, often several times as
many requests as it keeps). Where
BLIS has bugs we do better (README, "Where we differ"): a client whose last
activity window has closed stops (BLIS draws on until the horizon, for ever
when there is none), and multi-turn sessions keep their prefix group's
system prompt and respect activity windows (BLIS drops both).
"""

from __future__ import annotations

from heapq import heappop, heappush, heapreplace
from typing import Iterator, Optional

import numpy as np

from ..engine.request import Request
from ..errors import WorkloadError
from ..gcpause import gc_paused
from ..gorand import GoRand, IntnStream, subsystem_seed
from .samplers import LengthSampler, arrival_sampler, length_sampler
from .spec import ClientSpec, MultimodalSpec, WorkloadSpec

MAX_TOKEN_ID = 128000
DEFAULT_PREFIX_LENGTH = 50
WORKLOAD_GEN = "workload-gen"


def client_rates(spec: WorkloadSpec) -> list[float]:
    """Each client's rate in requests per µs: its share of ``aggregate_rate``."""
    total = 0.0
    for c in spec.clients:
        total += c.rate_fraction
    if total == 0:
        return [0.0] * len(spec.clients)
    return [spec.aggregate_rate * (c.rate_fraction / total) / 1e6 for c in spec.clients]


class _Multimodal:
    """Input length of a multimodal request: text plus count x item tokens per modality."""

    def __init__(self, mm: MultimodalSpec) -> None:
        self.text = length_sampler(mm.text_distribution)
        self.media = [
            (length_sampler(getattr(mm, f"{k}_count_distribution")), length_sampler(getattr(mm, f"{k}_distribution")))
            for k in ("image", "audio", "video")
            if getattr(mm, f"{k}_distribution").type
        ]

    def length(self, rng: IntnStream) -> int:
        total = self.text.sample(rng) if self.text is not None else 0
        for count, item in self.media:
            for _ in range(count.sample(rng)):
                total += item.sample(rng)
        return total or 1


def _active(windows, t: int) -> bool:
    for start, end in windows:
        if start <= t < end:
            return True
    return False


class _Client:
    """One client's generation state: its stream, samplers and prefix."""

    def __init__(self, index: int, c: ClientSpec, rate: float, seed: int, prefix: Optional[np.ndarray]) -> None:
        self.index = index
        self.spec = c
        self.rng = IntnStream(GoRand(seed), MAX_TOKEN_ID)
        self.arrivals = arrival_sampler(c.arrival, rate)
        self.inputs: Optional[LengthSampler] = length_sampler(c.input_distribution)
        self.outputs: Optional[LengthSampler] = length_sampler(c.output_distribution)
        self.prefix = prefix if prefix is not None and len(prefix) else None
        self.multimodal = _Multimodal(c.multimodal) if c.multimodal is not None else None
        self.reason_ratio = length_sampler(c.reasoning.reason_ratio_distribution) if c.reasoning else None
        windows = c.lifecycle.windows if c.lifecycle is not None else ()
        self.windows = tuple((w.start_us, w.end_us) for w in windows)
        self.last_end = max((w.end_us for w in windows), default=0)

    def generate(self, horizon: int, cap: int, pending: list) -> Iterator[int]:
        """Push (arrival, client, number, input, output, session) rows onto the ``pending`` heap,
        one request or session at a time, until the horizon or the cap; after each, yield the
        arrival just drawn (every later row of this client arrives after it)."""
        iat = self.arrivals.iat
        rng = self.rng
        take = rng.take
        windows, last_end = self.windows, self.last_end
        reasoning = self.spec.reasoning
        multi_turn = reasoning.multi_turn if reasoning is not None else None
        inputs, outputs, mm = self.inputs, self.outputs, self.multimodal
        index = self.index
        prefix = self.prefix
        count = 0
        t = 0
        while t < horizon:
            if cap and count >= cap:
                return
            t += iat(rng)
            if t >= horizon:
                return
            if windows and not _active(windows, t):
                if t >= last_end:
                    return  # no window opens again
                continue
            if multi_turn is not None:
                count += self._session(t, count, pending)
                yield t
                continue
            if mm is not None:  # its tokens come before the output length
                tokens = take(mm.length(rng))
                n_out = outputs.sample(rng)
            else:
                n_in = inputs.sample(rng)
                n_out = outputs.sample(rng)
                tokens = take(n_in)
            if prefix is not None:
                tokens = np.concatenate((prefix, tokens))
            heappush(pending, (t, index, count, tokens, take(n_out), ""))
            count += 1
            yield t

    def _session(self, start: int, number: int, pending: list) -> int:
        """One multi-turn session starting at ``start``; returns its number of requests."""
        rng = self.rng
        take = rng.take
        reasoning = self.spec.reasoning
        mt = reasoning.multi_turn
        ratio = self.reason_ratio
        accumulate = mt.context_growth == "accumulate"
        session = f"sess_{rng.int63()}"
        context: list[np.ndarray] = [] if self.prefix is None else [self.prefix]
        t = start
        for k in range(mt.max_rounds):
            n_in = self.inputs.sample(rng)
            n_out = self.outputs.sample(rng)
            new = take(n_in)
            answer = take(n_out)
            tokens = np.concatenate((*context, new)) if context else new
            if ratio is not None:
                ratio.sample(rng)  # the reasoning share: drawn, not simulated
            heappush(pending, (t, self.index, number + k, tokens, answer, session))
            if accumulate:
                context += (new, answer)
            t += mt.think_time_us + n_out  # think time, plus 1 µs per output token
        return mt.max_rounds


def _merge(generators: list[Iterator[int]], pending: list, limit: int) -> list:
    """The first ``limit`` rows (all when 0) in the order a stable sort by arrival gives
    (ties: client order, then generation order), generating each client only as far as needed.

    A pending row is final once no client can still produce an earlier one: every client's
    next row arrives after the arrival it last yielded.
    """
    active = [(0, i, g) for i, g in enumerate(generators)]  # (last arrival, client, generator)
    out: list = []
    limit = limit or -1
    while active:
        frontier = active[0][0]
        while pending and pending[0][0] <= frontier:
            out.append(heappop(pending))
            if len(out) == limit:
                return out
        _, i, gen = active[0]
        t = next(gen, None)
        if t is None:
            heappop(active)
        else:
            heapreplace(active, (t, i, gen))
    while pending and len(out) != limit:
        out.append(heappop(pending))
    return out


@gc_paused  # many small objects, no cycles (see gcpause)
def generate_spec_requests(spec: WorkloadSpec, horizon: int, max_requests: int) -> list[Request]:
    """The requests of ``spec`` (seed ``spec.seed``) arriving before ``horizon`` ticks, at most
    ``max_requests`` of them (0 = no cap)."""
    if max_requests < 0:
        raise WorkloadError(f"--num-requests must be >= 0, got {max_requests}")
    if horizon <= 0:
        return []
    master = IntnStream(GoRand(subsystem_seed(spec.seed, WORKLOAD_GEN)), MAX_TOKEN_ID)
    prefixes: dict[str, np.ndarray] = {}
    for c in spec.clients:
        if c.prefix_group and c.prefix_group not in prefixes:
            prefixes[c.prefix_group] = master.take(c.prefix_length or DEFAULT_PREFIX_LENGTH)
    cap = 2 * max_requests
    pending: list = []
    generators = []
    for i, (c, rate) in enumerate(zip(spec.clients, client_rates(spec))):
        if rate > 0:
            client = _Client(i, c, rate, master.int63(), prefixes.get(c.prefix_group) if c.prefix_group else None)
            generators.append(client.generate(horizon, cap, pending))
    rows = _merge(generators, pending, max_requests)
    clients = spec.clients
    return [
        Request(
            f"request_{k}", k, t, tokens, output, clients[ci].slo_class, clients[ci].tenant_id, clients[ci].id, session
        )
        for k, (t, ci, _, tokens, output, session) in enumerate(rows)
    ]
