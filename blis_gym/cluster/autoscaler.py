"""Autoscaling in the cluster loop: ticks, actuation, instance lifecycles, nodes and their cost.

Every ``interval`` ticks (from 0) the scaling policy sees the serving instances' KV and queue
signals and returns how many instances of each kind (GPU, TP) to add or remove; a decision
passes the stabilization windows and takes effect after the scrape delay. A new instance
takes free GPUs on a node of its GPU type (first fit, pools in file order), or a new node
(up to ``max_nodes``, ready after the provisioning delay); it loads for the loading delay,
then serves. Removing one cancels a loading instance first, else drains the newest serving
one: it gets no new requests, finishes what it holds, and then frees its GPUs (a node left
empty above ``min_nodes`` is released).

Where upstream BLIS (f90a1e3a) differs and we do what a user expects: it never provisions
nodes (a scale-up without free GPUs is dropped), leaves an idle instance draining for ever,
may drain every replica (the cluster then rejects everything and never scales back), drains
by instance-id order, and prints no cost. Each is fixed here; the docs list them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Optional

from ..config.autoscale import AutoscaleConfig, Delay, NodePool
from ..errors import ConfigError
from ..gorand import GoRand, subsystem_seed
from ..policies.autoscaling import ReplicaSignal, ScalingSignals, StabilizationGate, Variant
from ..policies.base import RoutingDecision
from ..policies.disaggregation import PoolRouter

log = logging.getLogger("blis_gym")

# Cluster event kinds: node and instance readiness before arrivals at equal times, ticks and
# actuations after the request path (upstream BLIS's order).
NODE_READY, INSTANCE_READY, SCALING_TICK, SCALE_ACTUATION = -2, -1, 8, 9
LOADING, SERVING, DRAINING, TERMINATED, CANCELLED = "loading", "serving", "draining", "terminated", "cancelled"


@dataclass
class _Node:
    pool: NodePool
    name: str
    free: int
    up_at: int  # when it was asked for (billing starts)
    ready: bool = True
    down_at: Optional[int] = None
    idle_since: int = 0  # the time ``free`` last changed
    idle_gpu_ticks: int = 0  # integral of free GPUs over time while up
    waiting: list = field(default_factory=list)  # replicas placed on it before it is ready


@dataclass
class Replica:
    """One instance's life: where it runs and when."""

    index: int
    gpu: str
    tp: int
    node: Optional[_Node]
    state: str
    started: int  # loading began (GPU time counts from here)
    ended: Optional[int] = None
    ready_at: Optional[int] = None  # began serving
    drained_at: Optional[int] = None  # stopped taking requests


@dataclass
class CostReport:
    """The ``=== Cost ===`` section (seconds and dollars)."""

    gpu_seconds: float
    idle_node_gpu_seconds: float
    node_seconds: float
    cost: float
    peak_instances: int
    scale_ups: int
    scale_downs: int
    failed_scale_ups: int


class Autoscaler:
    """The simulator's scaling part. ``policy`` None pauses the run at each tick for an agent."""

    def __init__(self, sim, cfg: AutoscaleConfig, seed: int, policy) -> None:
        self.sim = sim
        self.cfg = cfg
        self.policy = policy
        self._rng_scrape = GoRand(subsystem_seed(seed, "autoscaler"))
        self._rng_loading = GoRand(subsystem_seed(seed, "instance-loading"))
        self._rng_nodes = GoRand(subsystem_seed(seed, "node-provisioning"))
        self.nodes: list[_Node] = []
        for pool in cfg.node_pools:
            for _ in range(pool.initial_nodes):
                self._add_node(pool, 0, ready=True)
        self.replicas: list[Replica] = []
        self.serving: list[int] = []  # instance indices that take new requests, in index order
        self.draining: set[int] = set()
        self.gate = StabilizationGate(cfg.scale_up_window, cfg.scale_down_window)
        self.scale_ups = self.scale_downs = self.failed = 0
        self.peak = 0

    # --- start ------------------------------------------------------------------
    def place_initial(self, variants: list[Variant]) -> None:
        """Put the starting instances on the initial nodes (loading unless warm-started)."""
        for i, (gpu, tp) in enumerate(variants):
            node = self._free_node(gpu, tp)
            if node is None:
                have = sum(n.pool.gpus_per_node for n in self.nodes if n.pool.gpu_type == gpu)
                need = sum(t for g, t in variants if g == gpu)
                raise ConfigError(
                    f"node_pools: the {len(variants)} starting instances need {need} {gpu} GPUs "
                    f"(TP {tp} each, on one node), the pools' initial nodes have {have}"
                )
            self._take(node, tp, 0)
            rep = Replica(i, gpu, tp, node, SERVING if self.cfg.warm_start else LOADING, 0)
            self.replicas.append(rep)
            if self.cfg.warm_start:
                self._serve(i, 0)
            else:
                self._start_loading(rep, 0)
        self.peak = len(variants)
        if self.cfg.enabled:
            self.sim.push_event(0, SCALING_TICK, None)

    # --- nodes ------------------------------------------------------------------
    def _add_node(self, pool: NodePool, t: int, ready: bool) -> _Node:
        k = sum(1 for n in self.nodes if n.pool is pool)
        node = _Node(pool, f"{pool.name}-{k}", pool.gpus_per_node, t, ready, idle_since=t)
        self.nodes.append(node)
        return node

    def _free_node(self, gpu: str, tp: int) -> Optional[_Node]:
        for node in self.nodes:
            if node.ready and node.down_at is None and node.pool.gpu_type == gpu and node.free >= tp:
                return node
        return None

    def _take(self, node: _Node, gpus: int, t: int) -> None:
        node.idle_gpu_ticks += node.free * (t - node.idle_since)
        node.idle_since = t
        node.free -= gpus

    def _give(self, node: _Node, gpus: int, t: int) -> None:
        self._take(node, -gpus, t)
        if node.free == node.pool.gpus_per_node:
            live = sum(1 for n in self.nodes if n.pool is node.pool and n.down_at is None)
            if live > node.pool.min_nodes:
                node.idle_gpu_ticks += node.free * (t - node.idle_since)
                node.idle_since = t
                node.down_at = t

    # --- ticks and actuation ------------------------------------------------------
    def signals(self, t: int) -> ScalingSignals:
        """What the tick scrapes, read from the instances as they are (no router view is touched:
        upstream's tick refreshes the routers' stale snapshots as a side effect; ours does not)."""
        sim = self.sim
        bs = sim.config.engine.block_size
        cost = {p.gpu_type: p.cost_per_hour for p in reversed(self.cfg.node_pools)}
        reps = []
        for i in self.serving:
            r = self.replicas[i]
            inst = sim.instances[i]
            kv = inst.kv
            reps.append(ReplicaSignal(r.gpu, r.tp, kv.used * bs, kv.total * bs, len(inst.waitq), cost.get(r.gpu, 0.0)))
        pending = sum(sim.instances[r.index].kv.total * bs for r in self.replicas if r.state == LOADING)
        return ScalingSignals(reps, pending, t)

    def tick(self, t: int) -> Optional[ScalingSignals]:
        """Run a tick; returns the signals when an agent must decide (no built-in policy)."""
        sim = self.sim
        if sim.stop_at >= (1 << 63) - 1 and not sim.has_work():
            return None  # an unbounded run with nothing left: stop ticking
        sim.push_event(t + self.cfg.interval, SCALING_TICK, None)
        signals = self.signals(t)
        if self.policy is None:
            return signals
        self.apply(t, self.gate(t, self.policy.decide(signals)))
        return None

    def apply(self, t: int, deltas: dict[Variant, int]) -> None:
        """Act on ``deltas`` after the scrape delay (at once when it is 0)."""
        deltas = {v: d for v, d in deltas.items() if d}
        if not deltas:
            return
        delay = self._sample(self.cfg.scrape_delay, self._rng_scrape)
        self.sim.push_event(t + delay, SCALE_ACTUATION, deltas)

    def on_event(self, t: int, kind: int, payload) -> None:
        if kind == SCALE_ACTUATION:
            for variant, d in payload.items():
                if d > 0:
                    for _ in range(d):
                        self._scale_up(t, variant)
                else:
                    for _ in range(-d):
                        self._scale_down(t, variant)
        elif kind == INSTANCE_READY:
            rep = payload
            if rep.state == LOADING:
                rep.state = SERVING
                self._serve(rep.index, t)
        elif kind == NODE_READY:
            node = payload
            node.ready = True
            for rep in node.waiting:
                if rep.state == LOADING:
                    self._start_loading(rep, t)

    def _sample(self, d: Delay, rng: GoRand) -> int:
        if d.stddev <= 0:
            return d.mean
        v = rng.norm_float64() * d.stddev + d.mean
        return int(v) if v > 0 else 0

    def _serve(self, i: int, t: int) -> None:
        self.replicas[i].ready_at = t
        self.serving.append(i)
        self.serving.sort()

    def _start_loading(self, rep: Replica, t: int) -> None:
        delay = self._sample(self.cfg.loading_delay, self._rng_loading)
        if delay == 0:
            rep.state = SERVING
            self._serve(rep.index, t)
        else:
            self.sim.push_event(t + delay, INSTANCE_READY, rep)

    def _scale_up(self, t: int, variant: Variant) -> None:
        gpu, tp = variant
        node = self._free_node(gpu, tp)
        if node is None:
            pools = [p for p in self.cfg.node_pools if p.gpu_type == gpu and p.gpus_per_node >= tp]
            for pool in pools:  # a node still coming up with room
                for n in self.nodes:
                    if n.pool is pool and not n.ready and n.down_at is None and n.free >= tp:
                        node = n
                        break
                if node is not None:
                    break
            if node is None:
                pool = next(
                    (p for p in pools if sum(1 for n in self.nodes if n.pool is p and n.down_at is None) < p.max_nodes),
                    None,
                )
                if pool is None:
                    self.failed += 1
                    log.info("autoscaler: no %s GPUs left for a TP-%d instance (node pools at max_nodes)", gpu, tp)
                    return
                delay = self._sample(pool.provisioning_delay, self._rng_nodes)
                node = self._add_node(pool, t, ready=delay == 0)
                if delay:
                    self.sim.push_event(t + delay, NODE_READY, node)
        self._take(node, tp, t)
        index = self.sim.add_instance(gpu, tp)
        rep = Replica(index, gpu, tp, node, LOADING, t)
        self.replicas.append(rep)
        self.scale_ups += 1
        if node.ready:
            self._start_loading(rep, t)
        else:
            node.waiting.append(rep)
        live = sum(1 for r in self.replicas if r.state in (LOADING, SERVING, DRAINING))
        self.peak = max(self.peak, live)

    def _scale_down(self, t: int, variant: Variant) -> None:
        loading = [r for r in self.replicas if r.state == LOADING and (r.gpu, r.tp) == variant]
        if loading:
            rep = max(loading, key=lambda r: (r.started, r.index))
            rep.state = CANCELLED
            self._end(rep, t)
            self.scale_downs += 1
            return
        serving = [i for i in self.serving if (self.replicas[i].gpu, self.replicas[i].tp) == variant]
        if not serving or len(self.serving) <= 1:
            return  # the last serving instance stays
        i = max(serving, key=lambda k: (self.replicas[k].started, k))
        self.serving.remove(i)
        self.replicas[i].state = DRAINING
        self.replicas[i].drained_at = t
        self.draining.add(i)
        self.scale_downs += 1
        self.check_drained(i, t)

    def check_drained(self, i: int, t: int) -> None:
        """End a draining instance once it holds nothing (called after its events)."""
        inst = self.sim.instances[i]
        if inst.running or inst.waitq or inst.events or self.sim.pending[i]:
            return
        self.draining.discard(i)
        rep = self.replicas[i]
        rep.state = TERMINATED
        self._end(rep, t)

    def _end(self, rep: Replica, t: int) -> None:
        rep.ended = t
        if rep.node is not None:
            self._give(rep.node, rep.tp, t)

    # --- views for agents -------------------------------------------------------------
    def gpu_seconds(self, now: int) -> float:
        """GPU-seconds spent so far (TP x seconds of each instance since it began loading)."""
        ticks = 0
        for r in self.replicas:
            stop = r.ended if r.ended is not None and r.ended < now else now
            if stop > r.started:
                ticks += r.tp * (stop - r.started)
        return ticks / 1e6

    def count(self, gpu: str, *states: str) -> int:
        """Instances on ``gpu`` in any of ``states``."""
        return sum(1 for r in self.replicas if r.gpu == gpu and r.state in states)

    # --- results -------------------------------------------------------------------
    def report(self, end: int) -> CostReport:
        """The Cost section at ``end`` (the end of the run, in ticks)."""
        idle = 0
        node_ticks = 0
        cost = 0.0
        for n in self.nodes:
            stop = n.down_at if n.down_at is not None else end
            idle += n.idle_gpu_ticks + (n.free * (stop - n.idle_since) if n.down_at is None else 0)
            up = max(0, stop - n.up_at)
            node_ticks += up
            cost += up / 3.6e9 * n.pool.cost_per_hour
        return CostReport(
            self.gpu_seconds(end),
            idle / 1e6,
            node_ticks / 1e6,
            cost,
            self.peak,
            self.scale_ups,
            self.scale_downs,
            self.failed,
        )


class ServingRouter:
    """The cluster's routing policy over the instances serving now (loading and draining ones
    get no requests); with none serving, the request is rejected (target -1), as upstream."""

    def __init__(self, policy) -> None:
        self.policy = policy
        self.inner = PoolRouter(policy, ())
        self._sim = None

    def bind_simulator(self, sim) -> None:
        self._sim = sim
        bind = getattr(self.policy, "bind_simulator", None)
        if bind is not None:
            bind(sim)

    def __getattr__(self, name: str):  # optional policy hooks (on_workload, on_routed, ...)
        if name in ("policy", "inner", "_sim"):
            raise AttributeError(name)
        return getattr(self.policy, name)

    def route(self, req, state) -> RoutingDecision:
        serving = self._sim.autoscaler.serving
        if not serving:
            return RoutingDecision(-1, "no instance serving")
        if len(serving) != len(self.inner.pool) or tuple(serving) != self.inner.pool:
            self.inner.pool = tuple(serving)
            self.inner.bind_views(self._sim.snapshots.cache_views())
        return RoutingDecision(self.inner.route(req, state), "serving")
