"""The cluster: N instances on one clock behind admission and routing.

Each request flows arrival -> admission decision (after ``admission_latency``)
-> routing decision (after ``routing_latency``) -> the chosen instance.
Cluster events order by (time, kind, sequence); at equal times they run
before instance events, and among instances the lowest index goes first.

The loop is pausable. A decision family without a built-in policy pauses the
loop at each of its decisions::

    sim = ClusterSimulator(config, requests, admission=AlwaysAdmit(), routing=None)
    while (d := sim.advance()) is not None:      # d.kind == "routing"
        sim.route(d, target=choose(d.state))     # any instance index
    result = sim.result()

With both policies given, ``run()`` goes straight to the end.
"""

from __future__ import annotations

import copy
import heapq
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

from ..config.schema import ClusterConfig, InstanceClass
from ..engine.instance import QUEUED, Instance
from ..engine.kvcache import mark_private_decodes, mark_unshared_prompts
from ..engine.latency import latency_model
from ..engine.metrics import InstanceMetrics
from ..engine.request import Request
from ..forking import Forkable, fork_with_tuples
from ..gcpause import gc_paused
from ..policies import ADMISSION, PRIORITY, ROUTING, SCHEDULER
from ..policies.autoscaling import AUTOSCALER
from ..policies.base import AdmissionPolicy, RouterState, RoutingDecision, RoutingPolicy
from .autoscaler import INSTANCE_READY, NODE_READY, SCALE_ACTUATION, SCALING_TICK, Autoscaler, CostReport, ServingRouter
from .disaggregation import (
    PREFILL_ROUTING,
    TRANSFER_DONE,
    TRANSFER_START,
    Disaggregator,
    PDReport,
    disaggregated_router,
)
from .snapshots import SnapshotProvider
from .trace import DecisionTrace

log = logging.getLogger("blis_gym")

ARRIVAL, ADMISSION_DECISION, ROUTING_DECISION = 0, 1, 2
_INF = 1 << 64


class Decision:
    """A paused decision: what to decide about which request, and the router's view."""

    __slots__ = ("kind", "request", "state", "time")

    def __init__(self, kind: str, request: Request, state: RouterState, time: int) -> None:
        self.kind = kind  # "admission" or "routing"
        self.request = request
        self.state = state
        self.time = time  # ticks; the decision event's time

    def __repr__(self) -> str:
        return f"Decision({self.kind}, {self.request.id}, t={self.time})"


@dataclass
class ClusterResult:
    """Finished run: per-instance and merged metrics, rejections."""

    instances: list[InstanceMetrics]
    instance_ids: list[str]
    aggregate: InstanceMetrics
    rejected: int
    horizon: int
    total_kv_blocks: int
    # Requests the horizon caught before they reached an instance's queue.
    not_arrived: int = 0
    in_pipeline: int = 0  # arrived, awaiting admission or routing
    in_transit: int = 0  # routed, not yet queued
    trace: Optional[DecisionTrace] = None  # with trace_level "decisions"
    pd: Optional[PDReport] = None  # with prefill/decode pools
    in_transfer: int = 0  # disaggregated: prefill done, KV not yet at the decode instance
    cost: Optional[CostReport] = None  # with node pools
    # Requests that arrived, by SLO class ("" for none): goodput's denominators.
    arrived_by_class: dict = field(default_factory=dict)

    @property
    def accounted(self) -> int:
        """Every request is in exactly one of these states at the end."""
        a = self.aggregate
        return (
            a.completed
            + a.still_queued
            + a.still_running
            + a.dropped_unservable
            + self.rejected
            + self.not_arrived
            + self.in_pipeline
            + self.in_transit
            + self.in_transfer
        )


class ClusterSimulator(Forkable):
    """Shared-clock loop over instances with an online admission/routing pipeline."""

    _FORK_FLAT = frozenset({"pending", "_tops"})
    _FORK_SHARED = frozenset({"config", "_classes"})  # _classes: never changed after the start

    def __deepcopy__(self, memo: dict) -> "ClusterSimulator":
        return fork_with_tuples(self, memo, lists={"_events": -1})

    def __init__(
        self,
        config: ClusterConfig,
        requests: Sequence[Request],
        admission: Optional[AdmissionPolicy] = None,
        routing: Optional[RoutingPolicy] = None,
        scaling=None,
    ) -> None:
        self.config = config
        eng = config.engine
        scheduler = SCHEDULER.make(config.scheduler)
        priority = PRIORITY.make(config.priority_policy) if scheduler is not None else None
        # Decisions are recorded whoever makes them (built-in policy or an outside agent).
        self.trace: Optional[DecisionTrace] = (
            DecisionTrace(config.counterfactual_k) if config.trace_level == "decisions" else None
        )
        self._priority, self._scheduler = priority, scheduler
        self._latencies: dict = {}
        self.instances = [self._make_instance(i, config.instance_class(i)) for i in range(config.num_instances)]
        if not config.reference_kv:
            if eng.cpu_tier is None:
                mark_private_decodes(requests, eng.block_size)
                mark_unshared_prompts(requests, eng.block_size)
            else:  # a CPU tier offloads decode blocks by prefix: they must be unique to skip
                mark_private_decodes(requests, eng.block_size, unique=True)
        self._deferred = any(r.defer_kv for r in requests)
        self.admission = admission
        self.routing = routing
        # Snapshots are built for admission only for someone who reads them, or when building
        # them refreshes the stale cache (a side effect that must happen).
        self._admission_snapshots = (
            admission is None or config.snapshot_refresh_interval > 0 or getattr(admission, "reads_snapshots", True)
        )
        self.snapshots = SnapshotProvider(self.instances, config.snapshot_refresh_interval, config.cache_signal_delay)
        self.pending = [0] * config.num_instances
        self._admit_at_arrival = config.admission_latency == 0
        self._route_at_admission = config.routing_latency == 0
        # Each instance's earliest event time (_INF when it has none), kept up to date
        # wherever an instance's events change (it runs one, or a request is injected).
        self._tops = [_INF] * config.num_instances
        self.rejected = 0
        self.clock = 0
        self.routing_observers: list[Callable[[Request, int], None]] = []
        # Where the loop stops; a fork may stop earlier (a lookahead rollout's horizon).
        self.stop_at = config.horizon
        # Optional policy hooks: bind_simulator(sim) for an oracle that forks the run,
        # on_workload(requests) before the run (a learned policy's clock scale),
        # on_routed(request, target) after each routing (its prefix index).
        for policy in (admission, routing):
            bind = getattr(policy, "bind_simulator", None)
            if bind is not None:
                bind(self)
            on_workload = getattr(policy, "on_workload", None)
            if on_workload is not None:
                on_workload(requests)
            on_routed = getattr(policy, "on_routed", None)
            if on_routed is not None:
                self.routing_observers.append(on_routed)
        # Called with (request, tick) whenever a request leaves the system: completed,
        # dropped by an instance or rejected by admission (see set_departure_hook).
        self._on_departure: Optional[Callable[[Request, int], None]] = None
        self._on_first_token: Optional[Callable[[Request, int], None]] = None
        # Called with the number of requests routed so far (a CLI progress bar).
        self.progress: Optional[Callable[[int], None]] = None
        self._routed = 0
        self._paused: Optional[Decision] = None
        self._route_now: Optional[tuple] = None  # (request, tick, state) set by admit()
        self._share_arrivals = False  # after a fork: copy each request as it arrives
        self._done = False
        # Keys are unique (time, kind, sequence), so any valid heap pops in one order.
        self._events: list = [(req.arrival, ARRIVAL, seq, req) for seq, req in enumerate(requests)]
        self._classes = [req.slo_class for req in requests]
        self._held: dict[int, Request] = {}  # requests kept from arriving (hold_back)
        heapq.heapify(self._events)
        self._seq = len(self._events)
        # Prefill/decode pools: splits, transfers and the parents' metrics.
        self.pd: Optional[Disaggregator] = None
        if config.pd is not None:
            self.pd = Disaggregator(self, config)
        # Node pools and the autoscaler (None: the fleet is fixed); ``scaling`` None with
        # ticks on pauses the run at each tick for an outside answer (``scale``).
        self.autoscaler: Optional[Autoscaler] = None
        self._handlers: dict = {}
        if self.pd is not None:
            for k in (PREFILL_ROUTING, TRANSFER_START, TRANSFER_DONE):
                self._handlers[k] = self.pd.on_event
        if config.autoscale is not None:
            self.autoscaler = Autoscaler(self, config.autoscale, config.seed, scaling)
            for k in (NODE_READY, INSTANCE_READY, SCALE_ACTUATION):
                self._handlers[k] = self.autoscaler.on_event
            self.autoscaler.place_initial([config.instance_variant(i) for i in range(config.num_instances)])
        self._draining = self.autoscaler.draining if self.autoscaler is not None else frozenset()
        pipeline = config.admission_latency + config.routing_latency
        if 0 < config.horizon < pipeline:
            log.warning(
                "horizon (%d) < admission + routing latency (%d); no request can complete", config.horizon, pipeline
            )

    def _make_instance(self, i: int, c: InstanceClass) -> Instance:
        eng = self.config.engine
        latency = self._latencies.get(c)
        if latency is None:
            latency = self._latencies[c] = latency_model(c.alpha, c.beta, c.roofline)
        return Instance(
            f"instance_{i}",
            total_kv_blocks=c.total_kv_blocks,
            block_size=eng.block_size,
            max_running=eng.max_running,
            max_scheduled_tokens=eng.max_scheduled_tokens,
            long_prefill_threshold=eng.long_prefill_threshold,
            latency=latency,
            horizon=self.config.horizon,
            priority=self._priority,
            scheduler=self._scheduler,
            reference_kv=self.config.reference_kv,
            speed=c.speed,
            cpu_tier=eng.cpu_tier,
            preemption=eng.preemption_policy,
        )

    def add_instance(self, gpu: str, tp: int) -> int:
        """A new instance of the autoscaler's class for (gpu, tp); returns its index."""
        i = len(self.instances)
        inst = self._make_instance(i, self.config.scaling_class(gpu, tp))
        inst.on_departure = self._on_departure
        inst.on_first_token = self._on_first_token
        self.instances.append(inst)
        self.pending.append(0)
        self._tops.append(_INF)
        self.snapshots.add(inst)
        return i

    def has_work(self) -> bool:
        """Whether anything is left to happen to a request (arrivals, transfers, instance work)."""
        return min(self._tops) < _INF or any(e[1] >= ARRIVAL and e[1] <= TRANSFER_DONE for e in self._events)

    @classmethod
    def from_config(cls, config: ClusterConfig, requests: Sequence[Request]) -> "ClusterSimulator":
        """A simulator whose decisions are all made by the config's named built-in policies."""
        opts = config.policy_options()
        if config.pd is not None:
            routing = disaggregated_router(config)
        else:
            routing = ROUTING.make(config.routing_policy, **opts)
        scaling = None
        if config.autoscale is not None:
            routing = ServingRouter(routing)
            scaling = AUTOSCALER.make(config.autoscale.policy, analyzer=config.autoscale.analyzer)
        return cls(config, requests, ADMISSION.make(config.admission_policy, **opts), routing, scaling)

    @gc_paused
    def fork(self, *also, drop_arrivals: bool = False):
        """An exact, independent copy of this simulation as it stands (paused or not).

        Answering the same decisions in both gives identical results, and running
        either never changes the other. A pending decision is copied too: answer the
        fork's own, ``fork.pending_decision``. Hooks and observers are copied with the
        objects they belong to. Objects passed in ``also`` (a request, a router state)
        are copied consistently: the result is then ``(fork, *their copies)``.
        ``drop_arrivals`` leaves out the requests that have not arrived yet (they are
        not even copied): the fork simulates only what is in the system now.
        """
        events = self._events
        memo: dict = {}
        if drop_arrivals:
            self._events = [e for e in events if e[1] != ARRIVAL]
        else:
            # Requests yet to arrive are shared, not copied: each run copies its own as it
            # arrives there (see advance), so neither ever changes the other's.
            for e in events:
                if e[1] == ARRIVAL:
                    memo[id(e[3])] = e[3]
            self._share_arrivals = True
        try:
            copies = copy.deepcopy((self, *also), memo)
        finally:
            self._events = events
        if drop_arrivals:
            heapq.heapify(copies[0]._events)
        return copies if also else copies[0]

    @property
    def pending_decision(self) -> Optional[Decision]:
        """The decision ``advance`` returned and nobody has answered yet, if any."""
        return self._paused

    def hold_routing(self, req: Request, state: RouterState) -> Decision:
        """Pause at a routing decision for ``req`` now, as ``advance`` would: for a fork taken
        while a routing policy was deciding (the run was mid-decision, not paused)."""
        self._paused = Decision("routing", req, state, state.clock)
        return self._paused

    def set_departure_hook(self, hook: Optional[Callable[[Request, int], None]]) -> None:
        """Call ``hook(request, tick)`` when a request completes, is dropped or is rejected."""
        self._on_departure = hook
        self._install_hooks()

    def set_first_token_hook(self, hook: Optional[Callable[[Request, int], None]]) -> None:
        """Call ``hook(request, tick)`` when a request gets its first output token (once per request)."""
        self._on_first_token = hook
        self._install_hooks()

    def _install_hooks(self) -> None:
        """Give every instance the hooks (a prefill instance's go through the disaggregator)."""
        for i, inst in enumerate(self.instances):
            if self.pd is None or not self.pd.is_wrapped(i):
                inst.on_departure = self._on_departure
                inst.on_first_token = self._on_first_token
        if self.pd is not None:
            self.pd.set_hooks(self._on_departure, self._on_first_token)

    def hold_back(self, requests: Sequence[Request]) -> None:
        """Keep these requests of the workload from arriving until :meth:`release_held` (a closed
        loop: a session's next round arrives when its previous one completes)."""
        held = {id(r) for r in requests}
        self._held.update((id(r), r) for r in requests)
        self._events = [e for e in self._events if not (e[1] == ARRIVAL and id(e[3]) in held)]
        heapq.heapify(self._events)

    def release_held(self, req: Request) -> None:
        """Let a held request arrive at ``req.arrival`` (not before the clock)."""
        self._held.pop(id(req))
        req.arrival = max(req.arrival, self.clock)
        self.push_event(req.arrival, ARRIVAL, req)

    def departed(self, req: Request, tick: int) -> None:
        """Tell the departure hook that ``req`` left the system at ``tick`` (outside an instance)."""
        if self._on_departure is not None:
            self._on_departure(req, tick)

    # --- event plumbing ----------------------------------------------------
    def push_event(self, time: int, kind: int, payload) -> None:
        """Schedule a cluster event: a request's (arrival, admission, routing) or a component's
        (disaggregation, autoscaler), whose kind orders it among equal times."""
        heapq.heappush(self._events, (time, kind, self._seq, payload))
        self._seq += 1

    def deliver(self, target: int, req: Request, t: int, prompt_kv: bool = False) -> None:
        """Hand ``req`` to instance ``target`` at ``t``: it arrives there, or (``prompt_kv``, a
        disaggregated decode) joins its queue holding its prompt's KV."""
        inst = self.instances[target]
        self.pending[target] += 1
        if prompt_kv:
            inst.receive_prompt_kv(req, t)
        else:
            inst.inject(req, t)
        self._tops[target] = inst.peek_time()

    def router_state(self) -> RouterState:
        """Snapshots of every instance now (pending counts included)."""
        return RouterState(self.snapshots.all(self.clock, self.pending), self.clock)

    # --- an open run: requests injected while it runs (blis serve) ---------------
    def inject(self, req: Request) -> None:
        """Add a request to the run, arriving at ``req.arrival`` (ticks, never before the clock).

        In a run driven by ``advance_until``, an arrival after the last tick run (``> until``)
        keeps events in the order they would have had with the request in the workload from
        the start (at one tick, cluster events come before instance events)."""
        if req.arrival < self.clock:
            raise ValueError(f"request {req.id} arrives at {req.arrival}, before the clock ({self.clock})")
        if self._deferred:
            # Its prompt may start as one whose blocks went unregistered (mark_unshared_prompts).
            raise RuntimeError("inject needs a simulator whose workload left every prompt registered")
        self.push_event(req.arrival, ARRIVAL, req)

    def next_event_time(self) -> int:
        """The earliest pending event's tick (cluster or instance); ``1 << 64`` when there is none."""
        ct = self._events[0][0] if self._events else _INF
        it = min(self._tops)
        return ct if ct < it else it

    @gc_paused
    def advance_until(self, tick: int) -> None:
        """Run every event at or before ``tick`` and stop there, leaving the run open: more
        requests may be injected and the run never finishes (its metrics stay as they are).
        Needs both built-in policies (nothing may pause the loop)."""
        if self.admission is None or self.routing is None:
            raise RuntimeError("advance_until needs both an admission and a routing policy")
        if tick >= self.clock:  # (an earlier tick has nothing left to run)
            self._loop(tick)

    # --- the loop --------------------------------------------------------------
    @gc_paused
    def advance(self) -> Optional[Decision]:
        """Run until a decision needs an outside answer; None once the run is over."""
        return self._loop(None)

    def _loop(self, until: Optional[int]) -> Optional[Decision]:
        """The event loop: up to the next pending decision, or the end; with ``until``
        (an open run), only up to that tick, without finishing."""
        if self._paused is not None:
            raise RuntimeError("a decision is pending: answer it with admit() or route() first")
        if self._done:
            return None
        if self._route_now is not None:
            # An answered admission whose routing is due at once, with the admission's view.
            req, t, state = self._route_now
            self._route_now = None
            if self.routing is None:
                self._paused = Decision("routing", req, state, t)
                return self._paused
            self._apply_routing(req, t, self.routing.route(req, state), state)
        events = self._events
        instances = self.instances
        horizon = self.stop_at if until is None or until > self.stop_at else until
        pending = self.pending
        tops = self._tops
        draining = self._draining
        while True:
            ct = events[0][0] if events else _INF
            it = min(tops)
            if ct <= it:
                if ct == _INF:
                    break
                if ct > horizon:
                    self.clock = ct
                    break
                t, kind, _, req = heapq.heappop(events)
                self.clock = t
                if kind == ARRIVAL:
                    if self._share_arrivals:  # a fork may hold the same object: take our own
                        req = copy.deepcopy(req)
                    if not self._admit_at_arrival:
                        self.push_event(t + self.config.admission_latency, ADMISSION_DECISION, req)
                        continue
                    # An arrival only schedules its admission, so with no latency the
                    # admission may run now: no other event's effects come in between.
                    kind = ADMISSION_DECISION
                if not ARRIVAL <= kind <= ROUTING_DECISION:
                    if kind == SCALING_TICK:
                        signals = self.autoscaler.tick(t)
                        if signals is not None:
                            self._paused = Decision("scaling", None, signals, t)
                            return self._paused
                    else:
                        self._handlers[kind](t, kind, req)
                    continue
                if kind == ADMISSION_DECISION:
                    if self._admission_snapshots:
                        state = self.router_state()
                    else:  # nobody reads them, but a decision still refreshes stale cache views
                        state = None
                        self.snapshots.refresh_caches(t)
                    if self.admission is None:
                        self._paused = Decision("admission", req, state, t)
                        return self._paused
                    if not self._apply_admission(req, t, *self.admission.admit(req, state or RouterState((), t))):
                        continue
                    # Routing at once: nothing ran since the admission's view was taken.
                    if state is None:
                        state = self.router_state()
                else:
                    state = self.router_state()
                if self.routing is None:
                    self._paused = Decision("routing", req, state, t)
                    return self._paused
                self._apply_routing(req, t, self.routing.route(req, state), state)
            else:
                self.clock = it
                if it > horizon:
                    break
                idx = tops.index(it)  # the lowest index among equal times
                inst = instances[idx]
                if inst.process_next() == QUEUED and pending[idx] > 0:
                    pending[idx] -= 1
                ev = inst.events
                tops[idx] = ev[0][0] if ev else _INF
                if draining and idx in draining:
                    self.autoscaler.check_drained(idx, it)
        if until is not None:  # an open run paused at its tick: the clock stands there
            self.clock = until
            return None
        self._finish()
        return None

    def admit(self, decision: Decision, admitted: bool, reason: str = "") -> None:
        """Answer a paused admission decision."""
        self._check_paused(decision, "admission")
        self._paused = None
        if self._apply_admission(decision.request, decision.time, admitted, reason):
            self._route_now = (decision.request, decision.time, decision.state)

    def route(self, decision: Decision, target: int, reason: str = "", split: Optional[int] = None) -> None:
        """Answer a paused routing decision with an instance index; with prefill/decode pools,
        ``target`` is the decode instance and ``split`` the prefill instance (None: no split)."""
        self._check_paused(decision, "routing")
        n = len(self.instances)
        if not (isinstance(target, int) and 0 <= target < n):
            raise ValueError(f"routing target must be an instance index in [0, {n}), got {target!r}")
        answer = RoutingDecision(int(target), reason, split=split)
        if self.pd is not None:
            self.pd.check(answer)
        elif split is not None:
            raise ValueError("split needs prefill/decode pools (--prefill-instances, --decode-instances)")
        self._paused = None
        self._apply_routing(decision.request, decision.time, answer, decision.state)

    def scale(self, decision: Decision, deltas: dict) -> None:
        """Answer a paused scaling tick: ``{(gpu, tp): +n or -n}`` instances to add or remove
        (after the scrape delay, as the built-in policy's decisions)."""
        self._check_paused(decision, "scaling")
        self._paused = None
        self.autoscaler.apply(decision.time, deltas)

    def _check_paused(self, decision: Decision, kind: str) -> None:
        if self._paused is not decision:
            raise RuntimeError(f"no such pending {kind} decision")
        if decision.kind != kind:
            raise RuntimeError(f"the pending decision is {decision.kind}, not {kind}")

    def _apply_admission(self, req: Request, t: int, admitted: bool, reason: str) -> bool:
        """Record an admission decision. True when the routing decision is due now and would
        be the very next event: the caller takes it at once instead of queueing it."""
        if self.trace is not None:
            self.trace.record_admission(req.id, t, admitted, reason)
        if not admitted:
            self.rejected += 1
            if self._on_departure is not None:
                self._on_departure(req, t)
            return False
        if self._route_at_admission and not (self._events and self._events[0][0] <= t):
            return True
        self.push_event(t + self.config.routing_latency, ROUTING_DECISION, req)
        return False

    def _apply_routing(self, req: Request, t: int, decision: RoutingDecision, state: RouterState) -> None:
        target = decision.target
        if target < 0:  # nowhere to go (every instance loading or draining)
            self.rejected += 1
            log.warning("request %s rejected: no instance is serving", req.id)
            self.departed(req, t)
            return
        if self.trace is not None:
            self.trace.record_routing(req.id, t, target, decision.reason, decision.scores, state.snapshots)
        if decision.priority != 0:
            req.priority = decision.priority
        inst = self.instances[target]
        req.assigned = inst.id
        for observe in self.routing_observers:
            observe(req, target)
        if self.pd is None or not self.pd.dispatch(req, t, decision):
            self.deliver(target, req, t)
        self._routed += 1
        if self.progress is not None:
            self.progress(self._routed)

    def _finish(self) -> None:
        self._done = True
        # A fork stopped early on purpose (a lookahead rollout's horizon) leaves requests in
        # flight by design: only a run that reached its own horizon reports them.
        cut_short = self.stop_at < self.config.horizon
        for inst, p in zip(self.instances, self.pending):
            if p and not cut_short:
                log.warning("post-simulation: %d requests routed to %s never reached its queue", p, inst.id)
        for inst in self.instances:
            inst.finalize()

    def run(self) -> ClusterResult:
        """Run to the end with the built-in policies."""
        if self.admission is None or self.routing is None:
            raise RuntimeError("run() needs both an admission and a routing policy; use advance() instead")
        self.advance()
        return self.result()

    def result(self) -> ClusterResult:
        if not self._done:
            raise RuntimeError("the simulation has not finished")
        per = [inst.metrics for inst in self.instances]
        agg = InstanceMetrics.merge(per) if self.pd is None else self.pd.aggregate(per)
        if agg.completed == 0:
            if self.rejected:
                log.warning("all %d requests were rejected by admission; none completed", self.rejected)
            else:
                log.warning("no requests completed: the horizon may be too short or the workload empty")
        late = [e[3].slo_class for e in self._events if e[1] == ARRIVAL]
        late += [r.slo_class for r in self._held.values()]
        not_arrived = len(late)
        arrived = Counter(self._classes)
        arrived.subtract(late)
        in_pipeline = sum(1 for e in self._events if ARRIVAL < e[1] <= PREFILL_ROUTING)
        return ClusterResult(
            per,
            [i.id for i in self.instances],
            agg,
            self.rejected,
            self.config.horizon,
            self.config.engine.total_kv_blocks,
            not_arrived,
            in_pipeline,
            sum(self.pending),
            self.trace,
            self.pd.report(per, agg) if self.pd is not None else None,
            sum(1 for e in self._events if TRANSFER_START <= e[1] <= TRANSFER_DONE),
            self.autoscaler.report(min(self.clock, self.config.horizon)) if self.autoscaler is not None else None,
            {cls: n for cls, n in sorted(arrived.items()) if n > 0},
        )
