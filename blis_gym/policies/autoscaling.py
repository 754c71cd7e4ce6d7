"""Scaling policies: at each autoscaler tick, how many instances of each kind to add or remove.

A policy sees one :class:`ReplicaSignal` per serving instance and the KV capacity of those
still loading, and returns ``{(gpu, tp): delta}``. The built-in ``saturation`` policy is
upstream BLIS's saturation analyzer with its unlimited engine (f90a1e3a): KV demand against
KV supply, one decision per tick.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple, Sequence

from .registry import Registry

AUTOSCALER: Registry = Registry("scaling policy", "autoscaler policy")

Variant = tuple[str, int]  # (GPU type, TP)


@dataclass(frozen=True)
class Analyzer:
    """The saturation analyzer's settings (upstream's defaults)."""

    kv_cache_threshold: float = 0.8  # share of an instance's KV that counts as its supply
    scale_up_threshold: float = 0.8  # scale up when demand exceeds this share of supply
    scale_down_boundary: float = 0.4  # scale down while demand stays under this share without one
    avg_input_tokens: float = 512.0  # KV tokens a queued request will take


class ReplicaSignal(NamedTuple):
    """One serving instance as the autoscaler scrapes it (KV in tokens)."""

    gpu: str
    tp: int
    kv_in_use: int
    kv_capacity: int
    queue_depth: int
    cost_per_hour: float


class ScalingSignals(NamedTuple):
    """What a tick sees: serving replicas, and the KV capacity (tokens) still loading."""

    replicas: Sequence[ReplicaSignal]
    pending_capacity: int
    clock: int


@AUTOSCALER.register("saturation")
class SaturationAnalyzer:
    """Scale up the cheapest kind when KV demand exceeds ``scale_up_threshold`` of supply (loading
    capacity included); scale down the costliest kind while demand would stay under
    ``scale_down_boundary`` of supply without its largest replica.

    Supply of a replica is ``kv_cache_threshold`` of its KV tokens; demand is its KV tokens in
    use plus ``avg_input_tokens`` per queued request.
    """

    def __init__(self, analyzer: Analyzer = Analyzer()) -> None:
        self.cfg = analyzer

    def decide(self, signals: ScalingSignals) -> dict[Variant, int]:
        cfg = self.cfg
        groups: dict[Variant, list] = {}  # variant -> [supply, demand, count, cost]
        for r in signals.replicas:
            if r.kv_capacity <= 0:
                continue
            g = groups.setdefault((r.gpu, r.tp), [0.0, 0.0, 0, r.cost_per_hour])
            g[0] += r.kv_capacity * cfg.kv_cache_threshold
            g[1] += r.kv_in_use + r.queue_depth * cfg.avg_input_tokens
            g[2] += 1
        if not groups:
            return {}
        cheapest = sorted(groups, key=lambda v: (groups[v][3], v[0], v[1]))
        supply = sum(groups[v][0] for v in cheapest)
        demand = sum(groups[v][1] for v in cheapest)
        pending = signals.pending_capacity * cfg.kv_cache_threshold
        required = demand / cfg.scale_up_threshold - (supply + pending)
        if required > 0:
            v = cheapest[0]
            per = groups[v][0] / groups[v][2]
            return {v: max(1, math.ceil(required / per)) if per > 0 else 1}
        count = sum(g[2] for g in groups.values())
        if count <= 1:
            return {}
        floor = demand / cfg.scale_down_boundary
        spare = supply - floor
        largest = max(g[0] / g[2] for g in groups.values())
        if spare <= 0 or supply - largest <= floor:
            return {}
        costly = sorted(groups, key=lambda v: (-groups[v][3], v[0], v[1]))[0]
        per = groups[costly][0] / groups[costly][2]
        n = min(max(1, math.floor(spare / per)), groups[costly][2])
        return {costly: -n}


class StabilizationGate:
    """Upstream's stabilization windows: a kind's scale-up (scale-down) decision passes only once
    its signal has persisted ``up_window`` (``down_window``) ticks; a pass, a stop or a flip
    restarts the window."""

    def __init__(self, up_window: int, down_window: int) -> None:
        self.windows = ((1, up_window, {}), (-1, down_window, {}))

    def __call__(self, t: int, deltas: dict[Variant, int]) -> dict[Variant, int]:
        out = {}
        for sign, window, since in self.windows:
            for v in list(since):
                if deltas.get(v, 0) * sign <= 0:
                    del since[v]
            for v, d in deltas.items():
                if d * sign <= 0:
                    continue
                first = since.setdefault(v, t)
                if t - first >= window:
                    del since[v]
                    out[v] = d
        return out
