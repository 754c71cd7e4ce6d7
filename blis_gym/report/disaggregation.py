"""The ``=== PD Metrics ===`` block (prefill/decode disaggregation), as text and as JSON."""

from __future__ import annotations

import numpy as np

from ..cluster.disaggregation import PDReport


def _distributions(r: PDReport):
    """(label, key, mean, p50, p95, p99) of the parents' TTFTs and the transfer durations (µs)."""
    for label, key, values in (
        ("Parent TTFT (us)", "parent_ttft_us", r.parent_ttfts),
        ("KV Transfer Duration (us)", "kv_transfer_duration_us", r.transfer_durations),
    ):
        if values:
            a = np.asarray(values, dtype=np.float64)
            p50, p95, p99 = np.percentile(a, [50, 95, 99])
            yield label, key, float(a.mean()), float(p50), float(p95), float(p99)


def pd_lines(r: PDReport) -> list[str]:
    """The ``=== PD Metrics ===`` block, in upstream BLIS's lines."""
    lines = [
        "=== PD Metrics ===",
        f"Disaggregated Requests: {r.disaggregated}",
        f"Dropped at Decode KV: {r.dropped_at_decode}",
        f"Prefill Throughput: {r.prefill_throughput:.4f} sub-req/s",
        f"Decode Throughput: {r.decode_throughput:.4f} sub-req/s",
        "Load Imbalance Ratio: " + ("inf (one pool idle)" if r.imbalance == float("inf") else f"{r.imbalance:.4f}"),
    ]
    for label, _, mean, p50, p95, p99 in _distributions(r):
        lines.append(f"{label}: mean={mean:.1f} p50={p50:.1f} p95={p95:.1f} p99={p99:.1f}")
    if r.contention:
        lines += [
            f"Peak Concurrent Transfers: {r.peak_transfers}",
            f"Mean Transfer Queue Depth: {r.mean_transfer_depth:.4f}",
        ]
    return lines


def pd_json(r: PDReport) -> dict:
    """The block as the results file's ``pd_metrics`` object."""
    out = {
        "disaggregated_requests": r.disaggregated,
        "dropped_at_decode_kv": r.dropped_at_decode,
        "prefill_throughput": r.prefill_throughput,
        "decode_throughput": r.decode_throughput,
        "load_imbalance_ratio": r.imbalance if r.imbalance != float("inf") else None,
    }
    for _, key, mean, p50, p95, p99 in _distributions(r):
        out[key] = {"mean": mean, "p50": p50, "p95": p95, "p99": p99}
    if r.contention:
        out["peak_concurrent_transfers"] = r.peak_transfers
        out["mean_transfer_queue_depth"] = r.mean_transfer_depth
    return out
