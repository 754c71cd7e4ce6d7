"""Goodput and SLO attainment, counted as upstream BLIS counts them.

A completed request is *good* when every dimension its class gates holds: TTFT, the request's
mean ITL and E2E each at most the class's limit (a request with no TTFT or ITL record misses
that dimension). A class's attainment is good / injected, where injected counts every request
of the class that arrived: drops, rejections and requests the horizon caught count as misses.
Requests without a class are class ``default``; classes without targets are left out of both
counts. Goodput is good requests per second of simulated time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from ..config.slo import SLOTargets
from ..engine.metrics import InstanceMetrics
from .summary import percentile_ms

DEFAULT_CLASS = "default"


@dataclass(frozen=True)
class ClassGoodput:
    """One class: good and injected requests, attainment per gated dimension, latency figures (ms)."""

    good: int
    injected: int
    by_dim: dict[str, float] = field(default_factory=dict)
    ttft_p99_ms: float = 0.0
    itl_mean_ms: float = 0.0
    e2e_p99_ms: float = 0.0

    @property
    def attainment(self) -> float:
        return self.good / self.injected if self.injected else 0.0


@dataclass(frozen=True)
class Goodput:
    """The run's goodput: overall attainment, good requests per second, and each class's."""

    attainment: float
    goodput_rps: float
    runtime_s: float
    classes: dict[str, ClassGoodput]

    def json_fields(self) -> dict:
        """The fields the cluster's metrics block gains (upstream drops zeros, as Go's omitempty)."""
        out: dict = {}
        if self.goodput_rps:
            out["goodput_rps"] = self.goodput_rps
        if self.attainment:
            out["slo_attainment"] = self.attainment
        per = {}
        for cls, c in self.classes.items():
            entry: dict = {"count": c.injected}
            if c.e2e_p99_ms > 0:
                entry["e2e_p99_ms"] = c.e2e_p99_ms
            entry["goodput_rps"] = c.good / self.runtime_s if self.runtime_s > 0 else 0.0
            if c.itl_mean_ms > 0:
                entry["itl_mean_ms"] = c.itl_mean_ms
            entry["slo_attainment"] = c.attainment
            if c.by_dim:
                entry["slo_attainment_by_dim"] = dict(sorted(c.by_dim.items()))
            if c.ttft_p99_ms > 0:
                entry["ttft_p99_ms"] = c.ttft_p99_ms
            per[cls] = entry
        if per:
            out["per_class"] = per
        return out


def class_of(slo_class: str) -> str:
    return slo_class or DEFAULT_CLASS


def dimensions_met(ttft: float | None, itl: float | None, e2e: float, target) -> dict[str, bool]:
    """For each dimension ``target`` gates, whether a completed request (latencies in ticks)
    meets it; a request with no TTFT or ITL record misses that dimension."""
    values = {"ttft": ttft, "itl": itl, "e2e": e2e}
    return {d: values[d] is not None and values[d] / 1e3 <= limit for d, limit in target.limits().items()}


def is_good(ttft: float | None, itl: float | None, e2e: float, target) -> bool:
    """Whether a completed request meets every dimension ``target`` gates."""
    return all(dimensions_met(ttft, itl, e2e, target).values())


def compute_goodput(m: InstanceMetrics, injected_by_class: Mapping[str, int], targets: SLOTargets) -> Goodput:
    """Goodput of the merged metrics ``m`` against ``targets``; ``injected_by_class`` counts the
    requests that arrived, by raw class (``""`` for none)."""
    runtime = m.sim_ended / 1e6
    met = {cls: dict.fromkeys(t.limits(), 0) for cls, t in targets.items()}
    gated = {cls: 0 for cls in targets}
    good = {cls: 0 for cls in targets}
    ttfts: dict[str, list] = {cls: [] for cls in targets}
    e2es: dict[str, list] = {cls: [] for cls in targets}
    itl_sum = {cls: 0.0 for cls in targets}
    itl_n = {cls: 0 for cls in targets}
    for rid in sorted(m.e2es):
        record = m.requests.get(rid)
        cls = class_of(record.slo_class if record is not None else "")
        target = targets.get(cls)
        if target is None:
            continue
        e2e = m.e2es[rid]
        ttft = m.ttfts.get(rid)
        itl = m.itls.get(rid)
        gated[cls] += 1
        e2es[cls].append(e2e)
        if ttft is not None:
            ttfts[cls].append(ttft)
        if itl is not None:
            itl_sum[cls] += itl
            itl_n[cls] += 1
        dims = dimensions_met(ttft, itl, e2e, target)
        for d, ok in dims.items():
            met[cls][d] += ok
        good[cls] += all(dims.values())
    classes = {}
    total_good = 0
    total_injected = 0
    for cls in sorted(targets):
        injected = injected_by_class.get(cls, 0)
        if cls == DEFAULT_CLASS:
            injected += injected_by_class.get("", 0)
        n = gated[cls]
        classes[cls] = ClassGoodput(
            good[cls],
            injected,
            {d: (k / n if n else 0.0) for d, k in met[cls].items()},
            percentile_ms(np.sort(np.asarray(ttfts[cls], dtype=float)), 99) if ttfts[cls] else 0.0,
            (itl_sum[cls] / itl_n[cls]) / 1e3 if itl_n[cls] else 0.0,
            percentile_ms(np.sort(np.asarray(e2es[cls], dtype=float)), 99) if e2es[cls] else 0.0,
        )
        total_good += good[cls]
        total_injected += injected
    return Goodput(
        total_good / total_injected if total_injected else 0.0,
        total_good / runtime if runtime > 0 else 0.0,
        runtime,
        classes,
    )
