"""Per-SLO-class latency, SLO attainment and Jain's fairness index.

A request's SLO class comes from its workload spec; requests without one are
grouped as ``"default"`` for the per-class report. All latencies are in ticks
(microseconds). The ``=== Per-SLO Metrics ===`` section is printed only when a
run has two or more classes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Mapping

from ..engine.metrics import InstanceMetrics
from .fitness import Distribution, distribution, go_fixed

log = logging.getLogger("blis_gym")

DEFAULT_CLASS = "default"
HEADER = "=== Per-SLO Metrics ==="


@dataclass(frozen=True)
class SLOMetrics:
    """TTFT and end-to-end latency distributions (ticks) of one SLO class."""

    ttft: Distribution = field(default_factory=Distribution)
    e2e: Distribution = field(default_factory=Distribution)
    itl: Distribution = field(default_factory=Distribution)  # per-request mean ITLs


def _group_by_class(aggregate: InstanceMetrics, per_request: Mapping[str, float], what: str) -> dict[str, list[float]]:
    """Values of ``per_request`` grouped by their request's SLO class; unknown requests are skipped."""
    groups: dict[str, list[float]] = {}
    missing = 0
    for rid, value in per_request.items():
        record = aggregate.requests.get(rid)
        if record is None:
            missing += 1
            continue
        groups.setdefault(record.slo_class or DEFAULT_CLASS, []).append(value)
    if missing:
        log.warning("per-SLO metrics: %d requests with a %s have no request record; left out", missing, what)
    return groups


def per_slo_distributions(aggregate: InstanceMetrics) -> dict[str, SLOMetrics]:
    """TTFT and E2E distributions for each SLO class present (class -> metrics, keys sorted).

    A class seen only in TTFTs (requests still running) gets an empty E2E distribution.
    """
    ttft = _group_by_class(aggregate, aggregate.ttfts, "TTFT")
    e2e = _group_by_class(aggregate, aggregate.e2es, "E2E latency")
    itl = _group_by_class(aggregate, aggregate.itls, "ITL")
    return {
        cls: SLOMetrics(distribution(ttft.get(cls, ())), distribution(e2e.get(cls, ())), distribution(itl.get(cls, ())))
        for cls in sorted(set(ttft) | set(e2e))
    }


def slo_attainment(aggregate: InstanceMetrics, targets: Mapping[str, float]) -> float:
    """Fraction in [0, 1] of completed requests whose E2E latency is within their class's target.

    ``targets`` maps the raw SLO class (``""`` for none; no ``"default"`` renaming here)
    to a maximum E2E in ticks. A class without a target always counts as met; a
    completed request with no request record counts as missed. 0.0 when nothing completed.
    """
    if not aggregate.e2es:
        return 0.0
    met = 0
    missing = 0
    for rid, e2e in aggregate.e2es.items():
        record = aggregate.requests.get(rid)
        if record is None:
            missing += 1
            continue
        target = targets.get(record.slo_class)
        if target is None or e2e <= target:
            met += 1
    if missing:
        log.warning("SLO attainment: %d completed requests have no request record; counted as missed", missing)
    return float(met) / float(len(aggregate.e2es))


def jain_fairness_index(throughputs: Mapping[str, float]) -> float:
    """Jain's index (sum x)^2 / (n * sum x^2) of per-tenant throughputs, in [1/n, 1].

    Sums run over the tenants in sorted order. 0.0 for no tenants; 1.0 when every
    throughput is zero (all equal, so perfectly fair).
    """
    if not throughputs:
        return 0.0
    sum_x = 0.0
    sum_x2 = 0.0
    for tenant in sorted(throughputs):
        x = throughputs[tenant]
        sum_x += x
        sum_x2 += x * x
    if sum_x2 == 0:
        return 1.0
    return (sum_x * sum_x) / (float(len(throughputs)) * sum_x2)


def per_slo_lines(per_slo: Mapping[str, SLOMetrics], goodput: bool = False) -> list[str]:
    """The printed ``=== Per-SLO Metrics ===`` section: for two or more classes; with goodput
    targets (``goodput``) for any, with each class's ITL line as upstream prints it then."""
    if len(per_slo) < (1 if goodput else 2):
        return []
    lines = [HEADER]
    for cls in sorted(per_slo):
        m = per_slo[cls]
        lines.append(f"  {cls}:")
        lines.append(f"    TTFT: mean={go_fixed(m.ttft.mean, 2)} p99={go_fixed(m.ttft.p99, 2)} (n={m.ttft.count})")
        if goodput:
            lines.append(f"    ITL:  mean={go_fixed(m.itl.mean, 2)} p99={go_fixed(m.itl.p99, 2)} (n={m.itl.count})")
        lines.append(f"    E2E:  mean={go_fixed(m.e2e.mean, 2)} p99={go_fixed(m.e2e.p99, 2)} (n={m.e2e.count})")
    return lines
