"""The text ``blis run`` prints, section by section, and the results file."""

from __future__ import annotations

from typing import Optional

from ..cluster.simulator import ClusterResult
from ..cluster.trace import summarize, summary_lines
from ..config.slo import SLOTargets
from . import gojson
from .disaggregation import pd_json, pd_lines
from .fitness import compute_fitness, fitness_lines, raw_metrics
from .goodput import Goodput, compute_goodput
from .slo import per_slo_distributions, per_slo_lines
from .summary import Anomalies, hol_blocking_events, kv_rates, metrics_block, priority_inversions, request_rows

HEADER = "=== Simulation Metrics ==="


def _metrics_section(instance_id: str, m, extra: Optional[dict] = None) -> list[str]:
    # Like the reference, an instance that completed nothing prints no block.
    if m.completed == 0:
        return []
    return [HEADER, gojson.dumps(metrics_block(instance_id, m) | (extra or {}))]


def goodput_of(result: ClusterResult, slo_targets: Optional[SLOTargets]) -> Optional[Goodput]:
    """The run's goodput against ``slo_targets`` (None without targets)."""
    if not slo_targets:
        return None
    return compute_goodput(result.aggregate, result.arrived_by_class, slo_targets)


def stdout_text(
    result: ClusterResult,
    priority_policy: str = "constant",
    fitness_weights: Optional[dict] = None,
    summarize_trace: bool = False,
    slo_targets: Optional[SLOTargets] = None,
) -> str:
    """Everything the reference prints on stdout for this run, in its section order (with goodput
    targets, the cluster block gains upstream's goodput fields)."""
    lines: list[str] = []
    if len(result.instances) > 1:
        for iid, m in zip(result.instance_ids, result.instances):
            lines += _metrics_section(iid, m)
    goodput = goodput_of(result, slo_targets)
    lines += _metrics_section("cluster", result.aggregate, goodput.json_fields() if goodput else None)
    if fitness_weights is not None:
        lines += fitness_lines(compute_fitness(raw_metrics(result.aggregate), fitness_weights))
    anomalies = Anomalies(
        priority_inversions(result.instances, priority_policy),
        hol_blocking_events(result.instances),
        result.rejected,
        result.aggregate.dropped_unservable,
    )
    if anomalies.any():
        lines += [
            "=== Anomaly Counters ===",
            f"Priority Inversions: {anomalies.priority_inversions}",
            f"HOL Blocking Events: {anomalies.hol_blocking_events}",
            f"Rejected Requests: {anomalies.rejected_requests}",
            f"Dropped Unservable: {anomalies.dropped_unservable}",
        ]
    preempt, hit, thrash = kv_rates(result.aggregate, result.instances)
    if preempt or hit or thrash:
        lines += [
            "=== KV Cache Metrics ===",
            f"Preemption Rate: {preempt:.4f}",
            f"Cache Hit Rate: {hit:.4f}",
            f"KV Thrashing Rate: {thrash:.4f}",
        ]
    if result.pd is not None and result.pd.disaggregated:
        lines += pd_lines(result.pd)
    if result.cost is not None:
        lines += ["=== Cost ===", gojson.dumps(cost_json(result.cost))]
    lines += per_slo_lines(per_slo_distributions(result.aggregate), goodput=goodput is not None)
    if summarize_trace and result.trace is not None:
        lines += summary_lines(summarize(result.trace))
    return "\n".join(lines) + ("\n" if lines else "")


def cost_json(c) -> dict:
    """The ``=== Cost ===`` section: GPU-seconds of the instances (TP x seconds from loading to
    the end of draining or of the run), idle GPU-seconds of the nodes, their dollar cost."""
    return {
        "gpu_seconds": c.gpu_seconds,
        "idle_node_gpu_seconds": c.idle_node_gpu_seconds,
        "node_seconds": c.node_seconds,
        "cost": c.cost,
        "peak_instances": c.peak_instances,
        "scale_ups": c.scale_ups,
        "scale_downs": c.scale_downs,
        "failed_scale_ups": c.failed_scale_ups,
    }


def results_json(result: ClusterResult, slo_targets: Optional[SLOTargets] = None) -> str:
    """The results file: the cluster block plus one row per request (then goodput, as upstream)."""
    doc = metrics_block("cluster", result.aggregate)
    if result.pd is not None:
        doc["pd_metrics"] = pd_json(result.pd)
    if result.cost is not None:
        doc["cost"] = cost_json(result.cost)
    rows = request_rows(result.aggregate)
    if rows:
        doc["requests"] = rows
    goodput = goodput_of(result, slo_targets)
    if goodput is not None:
        doc.update(goodput.json_fields())
    return gojson.dumps(doc)


def sim_results_json(result: ClusterResult) -> str:
    """Upstream's per-request replay results (``blis replay --results-path``): completed requests
    by id, times in µs (``itl_mean_us`` and ``slo_class`` left out when empty, as upstream does)."""
    from ..workload.trace_replay import request_number  # lazy: only replays write these

    m = result.aggregate
    rows = []
    for rid in sorted(m.e2es, key=lambda r: (request_number(r, -1), r)):
        record = m.requests.get(rid)
        row = {
            "request_id": request_number(rid, -1),
            "ttft_us": m.ttfts.get(rid, 0.0),
            "e2e_us": m.e2es[rid],
            "input_tokens": record.num_prefill_tokens if record else 0,
            "output_tokens": record.num_decode_tokens if record else 0,
        }
        if record is not None and record.slo_class:
            row["slo_class"] = record.slo_class
        itl = m.itls.get(rid, 0.0)
        if itl:
            row["itl_mean_us"] = itl
        rows.append(row)
    return gojson.dumps(rows)
