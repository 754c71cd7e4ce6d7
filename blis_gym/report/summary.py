"""Summaries of a finished run: the metrics block, anomalies and KV figures.

Percentiles interpolate linearly between closest ranks of the sorted values;
latency figures are reported in milliseconds (ticks / 1000).
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..engine.metrics import InstanceMetrics
from .figures import RATE_AND_LATENCY_FIGURES
from .slo import per_slo_distributions

if TYPE_CHECKING:
    from ..cluster.simulator import ClusterResult


def percentile_ms(sorted_vals: Sequence, p: float) -> float:
    """p-th percentile of ascending tick values, in ms (the reference's formula and rounding)."""
    n = len(sorted_vals)
    if n == 0:
        return 0.0
    rank = p / 100.0 * float(n - 1)
    lo = math.floor(rank)
    hi = math.ceil(rank)
    if lo == hi:
        return float(sorted_vals[lo]) / 1000
    low = int(sorted_vals[lo])
    return float(low) / 1000 + float(int(sorted_vals[hi]) - low) * (rank - float(lo)) / 1000


def weighted_percentile_ms(values: np.ndarray, cum_counts: np.ndarray, p: float) -> float:
    """``percentile_ms`` of ascending ``values`` each repeated as ``cum_counts`` (running totals) say."""
    n = int(cum_counts[-1]) if len(cum_counts) else 0
    if n == 0:
        return 0.0
    rank = p / 100.0 * float(n - 1)
    lo = math.floor(rank)
    hi = math.ceil(rank)
    low = int(values[np.searchsorted(cum_counts, lo, side="right")])
    if lo == hi:
        return float(low) / 1000
    high = int(values[np.searchsorted(cum_counts, hi, side="right")])
    return float(low) / 1000 + float(high - low) * (rank - float(lo)) / 1000


def weighted_mean_ms(values: np.ndarray, counts: np.ndarray) -> float:
    """``mean_ms`` of ``values`` each repeated ``counts`` times (summed exactly, as mean_ms does)."""
    n = int(counts.sum())
    if n == 0:
        return 0.0
    return (float(int(np.dot(values, counts))) / float(n)) / 1000


def mean_ms(ticks: np.ndarray) -> float:
    """Mean in ms of integral tick values (summed exactly, as float64 would for these sizes)."""
    if len(ticks) == 0:
        return 0.0
    return (float(int(ticks.sum())) / float(len(ticks))) / 1000


def _sorted_ticks(values) -> np.ndarray:
    """Tick values (ints, or floats holding ints) sorted ascending."""
    return np.sort(np.fromiter(values, dtype=np.int64))


def metrics_block(instance_id: str, m: InstanceMetrics) -> dict:
    """The ``=== Simulation Metrics ===`` JSON object, keys in the reference's order."""
    runtime = m.sim_ended / 1e6
    out = {
        "instance_id": instance_id,
        "completed_requests": m.completed,
        "still_queued": m.still_queued,
        "still_running": m.still_running,
        "injected_requests": m.injected,
        "total_input_tokens": m.total_input_tokens,
        "total_output_tokens": m.total_output_tokens,
        "vllm_estimated_duration_s": runtime,
    }
    out.update(dict.fromkeys(RATE_AND_LATENCY_FIGURES, 0.0))
    if m.completed > 0:
        ttft = _sorted_ticks(m.ttfts.values())
        e2e = _sorted_ticks(m.e2es.values())
        delays = _sorted_ticks(m.scheduling_delays.values())
        for name, vals in (("e2e", e2e), ("ttft", ttft)):
            out[f"{name}_mean_ms"] = mean_ms(vals)
            for p in (90, 95, 99):
                out[f"{name}_p{p}_ms"] = percentile_ms(vals, p)
        values, counts = m.itl_histogram()
        order = np.argsort(values, kind="stable")
        values, counts = values[order], counts[order]
        cum = np.cumsum(counts)
        out["itl_mean_ms"] = weighted_mean_ms(values, counts)
        for p in (90, 95, 99):
            out[f"itl_p{p}_ms"] = weighted_percentile_ms(values, cum, p)
        out["scheduling_delay_p99_ms"] = percentile_ms(delays, 99)
        out["responses_per_sec"] = m.completed / runtime if runtime else math.inf
        out["tokens_per_sec"] = m.total_output_tokens / runtime if runtime else math.inf
    if m.kv_allocation_failures:
        out["kv_allocation_failures"] = m.kv_allocation_failures
    out["preemption_count"] = m.preemptions
    out["dropped_unservable"] = m.dropped_unservable
    return out


def request_rows(m: InstanceMetrics) -> list[dict]:
    """Per-request rows for the results file, by arrival time (ties by request id)."""
    rows = []
    for rid in sorted(m.requests):
        r = m.requests[rid]
        row = {
            "arrived_at": r.arrived_at,
            "requestID": r.id,
            "num_prefill_tokens": r.num_prefill_tokens,
            "num_decode_tokens": r.num_decode_tokens,
            "ttft_ms": m.ttfts.get(rid, 0.0) / 1e3,
            "itl_ms": m.itls.get(rid, 0.0) / 1e3,
            "e2e_ms": m.e2es.get(rid, 0.0) / 1e3,
            "scheduling_delay_ms": float(m.scheduling_delays.get(rid, 0)) / 1e3,
        }
        if r.slo_class:
            row["slo_class"] = r.slo_class
        if r.tenant_id:
            row["tenant_id"] = r.tenant_id
        if r.handled_by:
            row["handled_by"] = r.handled_by
        if r.client_id:
            row["client_id"] = r.client_id
        rows.append(row)
    rows.sort(key=lambda row: row["arrived_at"])
    return rows


@dataclass(frozen=True)
class Anomalies:
    priority_inversions: int
    hol_blocking_events: int
    rejected_requests: int
    dropped_unservable: int

    def any(self) -> bool:
        return bool(
            self.priority_inversions or self.hol_blocking_events or self.rejected_requests or self.dropped_unservable
        )


def hol_blocking_events(per_instance: Sequence[InstanceMetrics]) -> int:
    """Instances whose mean queue depth exceeds twice the cluster's mean of means."""
    if len(per_instance) < 2:
        return 0
    avgs = [(sum(m.waitq_depths) / len(m.waitq_depths)) if m.waitq_depths else 0.0 for m in per_instance]
    total = 0.0
    for a in avgs:
        total += a
    mean = total / len(avgs)
    if mean <= 0:
        return 0
    return sum(1 for a in avgs if a > 2.0 * mean)


def priority_inversions(per_instance: Sequence[InstanceMetrics], priority_policy: str) -> int:
    """Pairs within an SLO class where the earlier arrival took over twice as long (E2E).

    Suppressed under the constant policy, where such gaps are workload noise.
    """
    if priority_policy in ("constant", ""):
        return 0
    count = 0
    for m in per_instance:
        groups: dict[str, list[tuple[float, float]]] = {}
        for rid, rec in m.requests.items():
            e2e = m.e2es.get(rid)
            if e2e is not None:
                groups.setdefault(rec.slo_class or "default", []).append((rec.arrived_at, e2e))
        for cls in sorted(groups):
            reqs = sorted(groups[cls], key=lambda x: x[0])
            # Pairs i < j with e2e_i > 2 * e2e_j: walk back, keeping the later ones' doubled
            # E2Es sorted (doubling is exact, so every comparison is the pairwise one).
            later: list[float] = []
            for _, e2e in reversed(reqs):
                count += bisect_left(later, e2e)
                insort(later, e2e * 2.0)
    return count


def kv_rates(aggregate: InstanceMetrics, per_instance: Sequence[InstanceMetrics]) -> tuple[float, float, float]:
    """(preemption rate per completed request, mean cache hit rate, mean thrashing rate)."""
    preemptions = sum(m.preemptions for m in per_instance)
    rate = preemptions / aggregate.completed if aggregate.completed > 0 else 0.0
    hit = 0.0
    thrash = 0.0
    for m in per_instance:
        hit += m.cache_hit_rate
        thrash += m.kv_thrashing_rate
    n = len(per_instance)
    return rate, (hit / n if n else 0.0), (thrash / n if n else 0.0)


def result_metrics(result: ClusterResult) -> dict:
    """The figures ``blis run`` prints: the cluster block, one block per instance, and per SLO
    class (``"default"`` for requests without one) TTFT and E2E mean and p99 in ms."""
    return {
        "cluster": metrics_block("cluster", result.aggregate),
        "instances": {iid: metrics_block(iid, m) for iid, m in zip(result.instance_ids, result.instances)},
        "rejected_requests": result.rejected,
        "per_slo": {
            cls: {
                "ttft_mean_ms": m.ttft.mean / 1e3,
                "ttft_p99_ms": m.ttft.p99 / 1e3,
                "e2e_mean_ms": m.e2e.mean / 1e3,
                "e2e_p99_ms": m.e2e.p99 / 1e3,
                "completed": m.e2e.count,
            }
            for cls, m in per_slo_distributions(result.aggregate).items()
        },
    }
