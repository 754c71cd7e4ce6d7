"""Prefill/decode disaggregation in the cluster loop: splits, KV transfers, the parents' metrics.

A split request's prompt runs on a prefill instance as ``<id>_prefill`` (no output). When
that prefill's last step ends, the decode instance reserves the prompt's KV (sharing what
its cache already holds) and the rest is shipped (``PDConfig.transfer_time``); when the
transfer ends the request itself joins the decode instance's queue holding its prompt, and
its last prompt token is computed there for the first output token. Its TTFT and E2E run
from its own arrival. A decode instance that cannot hold the prompt drops the request.

Where upstream BLIS differs (and we do not follow): its transfer starts at the start of
the prefill's last step, not its end; it ships the whole prompt even when the decode
instance holds part of it, and reserves it in duplicate blocks; it counts a request
dropped at the decode instance as completed in the parents' distributions; and its pool
routers share one round-robin counter (with two instances in each pool, every request
lands on the same pair). Each pool here has its own router.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

from ..config.schema import ClusterConfig
from ..engine.metrics import InstanceMetrics
from ..engine.request import COMPLETED, Request
from ..policies import PD_DECIDER, ROUTING
from ..policies.base import PREFILL_ROUTER, RoutingDecision, RoutingPolicy
from ..policies.disaggregation import DisaggregatedRouter, PoolRouter

# Cluster event kinds, after routing (2) at equal times: upstream BLIS's order.
PREFILL_ROUTING, TRANSFER_START, TRANSFER_DONE = 3, 4, 5


@dataclass
class PDReport:
    """What the ``=== PD Metrics ===`` block prints (times in µs, throughputs per second)."""

    disaggregated: int
    dropped_at_decode: int
    prefill_throughput: float
    decode_throughput: float
    parent_ttfts: list[float]
    transfer_durations: list[int]
    contention: bool
    peak_transfers: int = 0
    mean_transfer_depth: float = 0.0

    @property
    def imbalance(self) -> float:
        """Larger pool throughput over the smaller (1 when both are 0, inf when one is)."""
        hi = max(self.prefill_throughput, self.decode_throughput)
        lo = min(self.prefill_throughput, self.decode_throughput)
        if hi == 0:
            return 1.0
        return hi / lo if lo > 0 else float("inf")


@dataclass
class _Split:
    """One split request in flight: its parts and where they run."""

    parent: Request
    part: Request
    decode: int
    prefill: int = -1


class _PrefillHooks:
    """A prefill instance's hooks, as bound methods (a fork copies them with the simulator)."""

    __slots__ = ("pd", "i")

    def __init__(self, pd: "Disaggregator", i: int) -> None:
        self.pd = pd
        self.i = i

    def departed(self, req: Request, tick: int) -> None:
        self.pd._prefill_left(self.i, req, tick)

    def first_token(self, req: Request, tick: int) -> None:
        self.pd._prefill_first_token(req, tick)


@dataclass
class _Stats:
    splits: int = 0
    dropped_at_decode: int = 0
    durations: list = field(default_factory=list)
    active: int = 0
    peak: int = 0
    depth_sum: int = 0
    starts: int = 0


class Disaggregator:
    """The simulator's PD part: routes prefills, runs transfers, projects metrics onto parents."""

    def __init__(self, sim, config: ClusterConfig) -> None:
        cfg = config.pd
        self.sim = sim
        self.cfg = cfg
        block_size = config.engine.block_size
        self.block_size = block_size
        self.prefill_pool = cfg.prefill_pool()
        self.decode_pool = cfg.decode_pool()
        self._decodes = frozenset(self.decode_pool)
        self._prefills = frozenset(self.prefill_pool)
        self.splits: dict[str, _Split] = {}  # by the prefill part's id, until it leaves
        self.done_parts: dict[int, list[Request]] = {}  # prefill instance -> its completed parts
        self.split_parents: list[Request] = []
        self.stats = _Stats()
        self._user_departure: Optional[Callable[[Request, int], None]] = None
        self._user_first_token: Optional[Callable[[Request, int], None]] = None
        # The prefill pool's own router, for splits that leave it the choice (PREFILL_ROUTER).
        self.prefill_router = pool_router(config, cfg.prefill_scorers, self.prefill_pool)
        if getattr(self.prefill_router.policy, "reads_caches", False):
            self.prefill_router.bind_views(sim.snapshots.cache_views(watch=self.prefill_pool))
        for i in self.prefill_pool:
            self._wrap(i)

    # --- hooks --------------------------------------------------------------
    def _wrap(self, i: int) -> None:
        hooks = _PrefillHooks(self, i)
        inst = self.sim.instances[i]
        inst.on_departure = hooks.departed
        inst.on_first_token = hooks.first_token

    def _prefill_left(self, i: int, req: Request, tick: int) -> None:
        """A prefill instance's request left: a split's prompt done (start its transfer) or
        dropped (so is the request), or a request of its own (the caller's hook)."""
        s = self.splits.pop(req.id, None) if req.n_out == 0 else None
        if s is None or s.part is not req:
            if self._user_departure is not None:
                self._user_departure(req, tick)
            return
        if req.state == COMPLETED:
            self.done_parts.setdefault(i, []).append(req)
            # The prompt's KV exists when the step that finished it ends.
            self.sim.push_event(self.sim.instances[i].step_end, TRANSFER_START, s)
        elif self._user_departure is not None:
            self._user_departure(s.parent, tick)

    def _prefill_first_token(self, req: Request, tick: int) -> None:
        if req.n_out == 0 and req.id in self.splits:
            return  # a prefill part's "token" is not the request's
        if self._user_first_token is not None:
            self._user_first_token(req, tick)

    def set_hooks(self, departure, first_token) -> None:
        """The simulator's hooks, called for the requests themselves (never for prefill parts)."""
        self._user_departure = departure
        self._user_first_token = first_token

    def is_wrapped(self, i: int) -> bool:
        return i in self._prefills

    # --- decisions ------------------------------------------------------------
    def check(self, decision: RoutingDecision) -> None:
        """Raise ValueError for a decision the pools cannot carry out."""
        if decision.target not in self._decodes:
            raise ValueError(
                f"decode target must be in the decode pool {list(self.decode_pool)}, got {decision.target}"
            )
        split = decision.split
        if split is not None and split != PREFILL_ROUTER and split not in self._prefills:
            raise ValueError(f"prefill target must be in the prefill pool {list(self.prefill_pool)}, got {split}")

    def dispatch(self, req: Request, t: int, decision: RoutingDecision) -> bool:
        """Carry out a routing decision; False when the request is served whole on the target
        (the caller injects it there)."""
        if decision.split is None or req.n_in == 0:
            return False
        s = _Split(req, req.prefill_part(), decision.target)
        self.stats.splits += 1
        self.split_parents.append(req)
        self.splits[s.part.id] = s
        if decision.split != PREFILL_ROUTER:
            s.prefill = decision.split
        self.sim.push_event(t, PREFILL_ROUTING, s)
        return True

    def on_event(self, t: int, kind: int, s: _Split) -> None:
        if kind == PREFILL_ROUTING:
            if s.prefill < 0:
                s.prefill = self.prefill_router.route(s.part, self.sim.router_state())
            s.part.assigned = self.sim.instances[s.prefill].id
            if s.prefill == s.decode:
                # One instance of a shared pool: the decode side will ask for the prompt's blocks.
                s.part.defer_kv = False
            self.sim.deliver(s.prefill, s.part, t)
        elif kind == TRANSFER_START:
            self._start_transfer(t, s)
        else:
            self.stats.active -= 1
            self.sim.deliver(s.decode, s.parent, t, prompt_kv=True)

    def _start_transfer(self, t: int, s: _Split) -> None:
        inst = self.sim.instances[s.decode]
        parent = s.parent
        new = -1 if inst.blocks_needed(parent) > inst.kv.total else inst.kv.hold_prompt(parent)
        st = self.stats
        if new < 0:
            st.dropped_at_decode += 1
            self.sim.departed(parent, t)
            return
        st.active += 1
        st.peak = max(st.peak, st.active)
        st.depth_sum += st.active
        st.starts += 1
        dur = self.cfg.transfer_time(new, self.block_size, st.active)
        st.durations.append(dur)
        self.sim.push_event(t + dur, TRANSFER_DONE, s)

    # --- results ----------------------------------------------------------------
    def aggregate(self, per: list[InstanceMetrics]) -> InstanceMetrics:
        """Cluster totals over the parents: completed prefill parts left out, each parent's
        scheduling delay its prefill's, decode-side drops counted."""
        parts = self.done_parts
        agg = InstanceMetrics.merge([m.without(parts[i]) if i in parts else m for i, m in enumerate(per)])
        delays = agg.scheduling_delays
        for i, done in parts.items():
            own = per[i].scheduling_delays
            for part in done:
                pid = part.id[: -len("_prefill")]
                if pid in delays and part.id in own:
                    delays[pid] = own[part.id]
        agg.dropped_unservable += self.stats.dropped_at_decode
        return agg

    def report(self, per: list[InstanceMetrics], agg: InstanceMetrics) -> PDReport:
        seconds = agg.sim_ended / 1e6
        pre = sum(per[i].completed for i in self.prefill_pool)
        dec = sum(per[i].completed for i in self.decode_pool)
        ttfts = [agg.ttfts[r.id] for r in self.split_parents if r.id in agg.ttfts and r.id in agg.e2es]
        st = self.stats
        return PDReport(
            st.splits,
            st.dropped_at_decode,
            pre / seconds if seconds > 0 else 0.0,
            dec / seconds if seconds > 0 else 0.0,
            ttfts,
            list(st.durations),
            self.cfg.contention,
            st.peak,
            st.depth_sum / st.starts if st.starts else 0.0,
        )


def pool_router(config: ClusterConfig, scorers: tuple, pool: tuple[int, ...]) -> PoolRouter:
    """A pool's own router: its scorer profile under ``weighted``, else the cluster's policy."""
    opts = config.policy_options()
    if scorers:
        policy: RoutingPolicy = ROUTING.make("weighted", **{**opts, "scorers": scorers})
    else:
        policy = ROUTING.make(config.routing_policy, **opts)
    return PoolRouter(policy, pool)


def disaggregated_router(config: ClusterConfig) -> DisaggregatedRouter:
    """The built-in routing of prefill/decode pools: the decode pool's router and the decider
    (the prefill pool's router is the simulator's, see ``Disaggregator``)."""
    pd = config.pd
    return DisaggregatedRouter(
        pool_router(config, pd.decode_scorers, pd.decode_pool()),
        PD_DECIDER.make(pd.decider, pd_prefix_threshold=pd.prefix_threshold),
        config.engine.block_size,
    )
