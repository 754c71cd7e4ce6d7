"""Trace v2 to requests and back: replaying a trace in the simulator, freezing a workload to one.

:func:`requests_from_trace` is BLIS's ``LoadTraceV2Requests``: token ids are drawn from Go's
generator seeded with the run's seed, first 50 for each prefix group (in order of first
appearance), then per record its input tokens (after its group's prefix, if any) and its
output tokens (a trace in upstream's newer layout gives each group its ``prefix_length``
tokens instead, and none when that is 0). Requests are named ``request_<request_id>`` and arrive at
``arrival_time_us``; every record is replayed, whatever its status. As in BLIS, the client id
stays in the trace (results rows have no ``client_id``).

:func:`trace_from_requests` writes a run's requests as a ``generated`` trace (``blis run
--export-trace``): lengths, arrival times and what a workload spec says of each request
(client, tenant, SLO class, session, streaming). Prefix groups are left out, so replaying
the trace gives every request its exact length (BLIS's replay would add a 50-token prefix).
"""

from __future__ import annotations

import re
from typing import Optional, Sequence

import numpy as np

from ..engine.request import Request
from ..errors import WorkloadError
from ..gorand import GoRand, IntnStream
from .distribution import MAX_TOKEN_ID
from .tracev2 import TraceHeader, TraceRecord, TraceV2

PREFIX_TOKENS = 50  # BLIS's replay gives each prefix group 50 shared tokens


def requests_from_trace(
    trace: TraceV2, seed: int, where: str = "trace", tokens: Optional[dict] = None
) -> list[Request]:
    """The trace's records as requests, token ids drawn for ``seed`` as BLIS draws them, or
    (ours) taken from ``tokens`` (request id -> (input, output), an exported trace's token file)
    when it holds every record with its lengths."""
    if not trace.records:
        raise WorkloadError(f"{where}: empty trace (no rows after the column names)")
    exact = tokens is not None and all(
        rec.request_id in tokens
        and len(tokens[rec.request_id][0]) == rec.input_tokens
        and len(tokens[rec.request_id][1]) == rec.output_tokens
        for rec in trace.records
    )
    rng = None if exact else IntnStream(GoRand(seed), MAX_TOKEN_ID)
    prefixes: dict[str, np.ndarray] = {}
    newer = trace.layout == "upstream"  # a group's prefix is its prefix_length (0: none)
    for rec in () if exact else trace.records:
        if rec.prefix_group and rec.prefix_group not in prefixes and (rec.prefix_length > 0 or not newer):
            prefixes[rec.prefix_group] = rng.take(rec.prefix_length if newer else PREFIX_TOKENS)
    out = []
    for i, rec in enumerate(trace.records):
        if exact:
            prompt, answer = tokens[rec.request_id]
        else:
            if rec.input_tokens < 0 or rec.output_tokens < 0:
                raise WorkloadError(
                    f"{where}: row {i + 1}: token counts must be >= 0, got input "
                    f"{rec.input_tokens}, output {rec.output_tokens}"
                )
            prompt = rng.take(rec.input_tokens)
            if rec.prefix_group in prefixes:
                prompt = np.concatenate((prefixes[rec.prefix_group], prompt))
            answer = rng.take(rec.output_tokens)
        out.append(
            Request(
                f"request_{rec.request_id}",
                i,
                rec.arrival_time_us,
                prompt,
                answer,
                slo_class=rec.slo_class,
                tenant_id=rec.tenant_id,
                session_id=rec.session_id,
            )
        )
    if rng is not None:
        rng.close()
    return out


_NUMBER = re.compile(r"(\d+)$")


def request_number(request_id: str, fallback: int) -> int:
    """The integer a request id ends with (``request_7`` -> 7), else ``fallback``."""
    m = _NUMBER.search(request_id)
    return int(m.group(1)) if m else fallback


def trace_from_requests(
    requests: Sequence[Request],
    streaming: Optional[dict[str, bool]] = None,
    workload_spec: str = "",
    created_at: str = "",
) -> TraceV2:
    """A ``generated`` trace of ``requests`` (arrival order). ``streaming`` maps a client id to
    its spec's ``streaming`` flag."""
    streaming = streaming or {}
    records = tuple(
        TraceRecord(
            request_number(r.id, i),
            client_id=r.client_id,
            tenant_id=r.tenant_id,
            slo_class=r.slo_class,
            session_id=r.session_id,
            streaming=streaming.get(r.client_id, False),
            input_tokens=r.n_in,
            output_tokens=r.n_out,
            arrival_time_us=r.arrival,
        )
        for i, r in enumerate(requests)
    )
    header = TraceHeader(mode="generated", created_at=created_at, workload_spec=workload_spec)
    return TraceV2(header, records)
