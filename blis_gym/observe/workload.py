"""A ``blis run`` workload as requests to send: arrival times and lengths from the generated
requests, the rest (streaming, prefix group, round, modality counts) from where the workload
came from.

A workload spec says per client whether it streams and which prefix group it shares; a trace
v2 (``--workload traces`` on a trace folder) says everything per row, its token counts
included (sent as the row says: BLIS's replay would add 50 tokens per prefix group, which a
recorded row already counts). Presets, distributions and BLIS's CSV traces say neither: they
stream. Rounds of a multi-turn session are numbered in arrival order from 0.
"""

from __future__ import annotations

import re
from typing import Optional, Sequence

from ..engine.request import Request
from ..plan import RunOptions
from ..workload.spec_loader import load_workload_spec
from ..workload.tracev2 import TraceRecord, is_trace_v2, load_trace_v2
from .client import PendingRequest

_NUMBER = re.compile(r"(\d+)$")


def request_number(request_id: str, fallback: int) -> int:
    """The integer a request id ends with (``request_7`` -> 7), else ``fallback``."""
    m = _NUMBER.search(request_id)
    return int(m.group(1)) if m else fallback


def _trace_rows(opts: RunOptions) -> dict[int, TraceRecord]:
    """The rows of the run's trace v2 by request id (empty for any other workload)."""
    path = opts.workload_traces_filepath
    if opts.workload_spec or opts.workload != "traces" or not path or not is_trace_v2(path):
        return {}
    return {r.request_id: r for r in load_trace_v2(path).records}


def pending_requests(
    opts: RunOptions, requests: Sequence[Request], stream: Optional[bool] = None
) -> list[PendingRequest]:
    """``requests`` (generated for ``opts``) as requests to send, in arrival order (ties by
    number). ``stream`` True or False overrides what the workload says."""
    clients = {}
    if opts.workload_spec:
        for c in load_workload_spec(opts.workload_spec).clients:
            clients.setdefault(c.id, c)
    rows = _trace_rows(opts)
    rounds: dict[str, int] = {}
    out = []
    ordered = sorted(enumerate(requests), key=lambda ir: (ir[1].arrival, request_number(ir[1].id, ir[0])))
    for i, r in ordered:
        number = request_number(r.id, i)
        row = rows.get(number)
        client = clients.get(r.client_id)
        if row is not None:
            streaming, round_index = row.streaming, row.round_index
        else:
            streaming = client.streaming if client is not None else True
            round_index = rounds.get(r.session_id, 0) if r.session_id else 0
            if r.session_id:
                rounds[r.session_id] = round_index + 1
        out.append(
            PendingRequest(
                request_id=number,
                arrival_us=r.arrival,
                # A trace row's lengths are what was sent (BLIS's replay adds 50 prefix tokens per group).
                input_tokens=row.input_tokens if row is not None else r.n_in,
                output_tokens=row.output_tokens if row is not None else r.n_out,
                streaming=streaming if stream is None else stream,
                client_id=r.client_id or (row.client_id if row is not None else ""),
                tenant_id=r.tenant_id,
                slo_class=r.slo_class,
                session_id=r.session_id,
                round_index=round_index,
                prefix_group=row.prefix_group
                if row is not None
                else (client.prefix_group if client is not None else ""),
                text_tokens=row.text_tokens if row is not None else 0,
                image_tokens=row.image_tokens if row is not None else 0,
                audio_tokens=row.audio_tokens if row is not None else 0,
                video_tokens=row.video_tokens if row is not None else 0,
                reason_ratio=row.reason_ratio if row is not None else 0.0,
            )
        )
    return out
