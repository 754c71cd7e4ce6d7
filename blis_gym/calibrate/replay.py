"""Replaying a real-mode trace in the simulator and pairing each request with its twin.

The trace (``blis observe``'s v2 trace: a folder with ``trace_header.yaml`` and
``trace_data.csv``) is replayed with ``--workload traces``: each request arrives at its
``arrival_time_us`` (the intended send schedule) with its token counts. Where the ``blis run``
options leave the model, TP, batch size, block size or model length unset, the trace header's
``server`` section fills them in. Each real request is then paired with its simulated twin
(``request_<id>``) and the two are compared per metric (:mod:`.compare`). Real ITL comes from
the trace's ITL file (``blis observe --record-itl``: ``trace_data.itl.csv`` beside it, or one
named) when there is one, else from each row's chunk count.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Optional

from ..config.slo import merge_targets
from ..engine.metrics import InstanceMetrics
from ..errors import WorkloadError
from ..plan import RunOptions, resolve, simulate
from ..report.goodput import DEFAULT_CLASS
from ..workload.itl import itl_path, load_itl
from ..workload.trace_replay import PREFIX_TOKENS
from ..workload.tracev2 import TraceHeader, TraceV2, load_trace_v2
from .compare import (
    CalibrationConfig,
    CalibrationPairs,
    CalibrationReport,
    ConfigMatch,
    SimResult,
    build_calibration_report,
    prepare_calibration_pairs,
    report_dict,
)

_ID_PREFIX = "request_"
# (trace header server key, RunOptions field) pairs the simulator can take from the header.
_SERVER_FIELDS = (
    ("model", "model"),
    ("tensor_parallel", "tp"),
    ("max_num_seqs", "max_num_running_reqs"),
    ("block_size", "block_size_in_tokens"),
    ("max_model_len", "max_model_len"),
)


def flag_name(name: str) -> str:
    """The ``blis run`` flag of a RunOptions field."""
    return "--" + name.replace("_", "-")


def match_server_config(opts: RunOptions, header: TraceHeader) -> tuple[RunOptions, ConfigMatch]:
    """``opts`` with the trace header's server settings where no flag gave them, and which
    settings matched the header, fell back to defaults, or were overridden by a flag."""
    server = header.server
    matched: list[str] = []
    defaulted: list[str] = []
    overridden: list[str] = []
    updates: dict[str, Any] = {}
    for key, name in _SERVER_FIELDS:
        value = getattr(server, key) if server is not None else None
        ours = getattr(opts, name)
        if not value:  # 0 or "": the header does not say
            if name not in opts.explicit:
                shown = ours if ours else "from the defaults file"
                defaulted.append(f"{key} (not in trace header): {flag_name(name)} {shown}")
            continue
        if name == "tp" and opts.instance_pool:  # the pool sets each instance's TP
            overridden.append(f"{flag_name('instance_pool')} {opts.instance_pool} (trace header: {key}={value})")
            continue
        if name in opts.explicit:
            same = str(ours).lower() == str(value).lower() if name == "model" else ours == value
            if same:
                matched.append(f"{key}={value}")
            else:
                overridden.append(f"{flag_name(name)} {ours} (trace header: {key}={value})")
            continue
        updates[name] = value
        matched.append(f"{key}={value} (from trace header)")
    if server is not None and server.gpu_memory_utilization:
        defaulted.append(
            f"gpu_memory_utilization={server.gpu_memory_utilization:g} is not modelled: KV blocks "
            f"from --total-kv-blocks or the defaults file"
        )
    if updates:
        opts = replace(opts, explicit=opts.explicit | set(updates), **updates)
    return opts, ConfigMatch(tuple(matched), tuple(defaulted), tuple(overridden))


def sim_results(aggregate: InstanceMetrics, trace: TraceV2) -> list[SimResult]:
    """The completed simulated requests as :class:`SimResult` (µs, server-side). Token counts
    are the trace's view: the replayed prompt less the synthetic prefix replay added."""
    grouped = {r.request_id for r in trace.records if r.prefix_group}
    out = []
    for rid, e2e in aggregate.e2es.items():
        if not rid.startswith(_ID_PREFIX) or rid not in aggregate.ttfts:
            continue
        try:
            number = int(rid[len(_ID_PREFIX) :])
        except ValueError:
            continue
        rec = aggregate.requests.get(rid)
        n_in = rec.num_prefill_tokens if rec is not None else 0
        n_out = rec.num_decode_tokens if rec is not None else 0
        if number in grouped:
            n_in -= PREFIX_TOKENS  # the shared prefix replay put before the prompt
        out.append(SimResult(number, float(aggregate.ttfts[rid]), float(e2e), n_in, n_out))
    return out


@dataclass(frozen=True)
class Calibration:
    """A finished comparison: the report, the pairs behind it and the JSON document."""

    report: CalibrationReport
    pairs: CalibrationPairs
    document: dict[str, Any]
    itl_file: str = ""  # the ITL file real ITL came from ("" for none)


def calibrate(
    trace: str,
    opts: RunOptions,
    network_rtt_ms: Optional[float] = None,
    bandwidth_mbps: float = 0.0,
    warm_up: Optional[int] = None,
    itl_data: Optional[str] = None,
    slo_flags: Optional[dict] = None,
) -> Calibration:
    """Replay ``trace`` on the cluster ``opts`` describes and compare it request by request.

    ``network_rtt_ms`` (default: the header's measured round trip, else 0) and the link
    ``bandwidth_mbps`` (0: no delay) turn simulated server-side latencies into client-side
    ones; requests with an id below ``warm_up`` (default: the header's) are left out. Real
    ITL comes from the ITL file ``itl_data`` (default: the trace's own, when it has one).
    ``slo_flags`` (dimension -> {class: ms}, the ``--slo-*`` flags; they beat the trace header's
    goodput targets) add each class's SLO attainment, real against simulated, per dimension.
    Raises WorkloadError when the trace has nothing to compare.
    """
    data = load_trace_v2(trace)
    itl_file = itl_data if itl_data is not None else str(itl_path(trace)) if itl_path(trace).is_file() else ""
    chunk_times = load_itl(itl_file) if itl_file else None  # a bad file fails before simulating
    header = data.header
    if header.mode != "real":
        raise WorkloadError(
            f"{trace}: has no observed timings (mode: {header.mode or 'unset'}); calibrate needs a "
            f"real-mode trace from blis observe"
        )
    if not data.records:
        raise WorkloadError(f"{trace}: the trace has no requests")
    rtt_ms = (
        network_rtt_ms
        if network_rtt_ms is not None
        else (
            header.network.measured_rtt_ms if header.network is not None and header.network.measured_rtt_ms > 0 else 0.0
        )
    )
    config = CalibrationConfig(
        warm_up_requests=header.warm_up_requests if warm_up is None else warm_up,
        network_rtt_us=int(rtt_ms * 1000),  # truncated to whole µs, as BLIS converts it
        bandwidth_mbps=bandwidth_mbps,
        ttft_streaming_only=True,
    )

    candidates = sum(1 for r in data.records if r.request_id >= config.warm_up_requests and r.status == "ok")
    if candidates == 0:  # known before simulating anything
        raise WorkloadError(
            f"{trace}: no request to compare: each of the {len(data.records)} is warm-up (request_id "
            f"below {config.warm_up_requests}) or not ok"
        )
    opts, config_match = match_server_config(opts, header)
    # The trace's arrival times are the intended send schedule; the simulator replays them.
    opts = replace(opts, workload="traces", workload_traces_filepath=str(trace))
    result = simulate(resolve(opts))

    pairs = prepare_calibration_pairs(data.records, sim_results(result.aggregate, data), config, chunk_times)
    if pairs.matched_count == 0:
        raise WorkloadError(
            f"{trace}: no request could be compared ({len(data.records)} in the trace: {pairs.excluded_warm_up} "
            f"warm-up, {pairs.excluded_non_ok} not ok, {pairs.unmatched_real} without a completed simulated twin "
            f"or with negative latencies)"
        )
    report = build_calibration_report(pairs, config_match)
    normalization = {
        "normalization": {
            "warm_up_requests": config.warm_up_requests,
            "network_rtt_us": config.network_rtt_us,
            "bandwidth_mbps": config.bandwidth_mbps,
        }
    }
    if chunk_times is not None:
        normalization["itl_file"] = {
            "path": itl_file,
            "requests": len(chunk_times),
            "itl_pairs": len(pairs.itl.real),
            "dropped_negative_gaps": pairs.itl_dropped,
            "missing": pairs.itl_missing,
        }
    targets = merge_targets(slo_flags or {}, header=header.goodput_slo_targets)
    if targets:
        normalization["slo_attainment"] = slo_attainment_by_class(
            data.records, sim_results(result.aggregate, data), config, chunk_times, targets
        )
    return Calibration(report, pairs, report_dict(report, normalization), itl_file)


def slo_attainment_by_class(records, sims, config, chunk_times, targets) -> dict:
    """Per SLO class with targets and per gated dimension: the compared requests' share within
    the limit, real and simulated (the calibration's normalized latencies), and their count."""
    out = {}
    for cls, target in targets.items():
        mine = [r for r in records if (r.slo_class or DEFAULT_CLASS) == cls]
        pairs = prepare_calibration_pairs(mine, sims, config, chunk_times)
        dims = {}
        for dim, limit_ms in target.limits().items():
            pair = getattr(pairs, dim)
            n = len(pair.real)
            limit = limit_ms * 1000.0
            dims[dim] = {
                "count": n,
                "real": sum(1 for v in pair.real if v <= limit) / n if n else 0.0,
                "sim": sum(1 for v in pair.sim if v <= limit) / n if n else 0.0,
            }
        out[cls] = dims
    return out
