"""``blis_gym/Autoscaling-v0``: at each autoscaler tick, how many instances each GPU type runs.

The scenario must turn the autoscaler on (a ``policy_config`` bundle with ``autoscaler:`` and
``node_pools:``). Routing and admission are the scenario's; the agent replaces the scaling
policy, and its decisions take effect after the scrape delay, as the built-in one's do.

**Action**: the number of instances (loading or serving) wanted on each GPU type of the node
pools, in pool order: ``Discrete(M + 1)`` for one type (M: what its pools can hold at most),
``MultiDiscrete([M1 + 1, ...])`` for several. The difference with the instances there now is
added (new instances load first) or removed (loading ones cancelled, else the newest serving
ones drained); the last serving instance is never drained.

**Observation**: ``Box(0, 1e6, (4 K + 6,))`` for K GPU types: per type, instances serving,
loading and draining and the wanted count in effect, each over M; then the KV demand over
supply (the saturation analyzer's view, upstream's formula), the serving instances' mean KV
use, waiting and running requests per serving instance over ``--max-num-running-reqs``, the
arrival rate since the last tick (requests per second / 100) and the clock (over the last
arrival).

**Reward**: ``time-in-system`` by default (or ``ttft``), minus ``gpu_cost`` per GPU-second
the instances held since the previous tick (the scenario's trade-off). ``info["metrics"]`` at
the end adds ``gpu_seconds`` and, with ``slo_ttft_ms``, ``slo_attainment``.
"""

from __future__ import annotations

import bisect

import numpy as np
from gymnasium import spaces

from ..cluster.autoscaler import DRAINING, LOADING, SERVING, ServingRouter
from ..cluster.simulator import ClusterSimulator, Decision
from ..policies import ADMISSION, ROUTING
from ..policies.autoscaling import ScalingSignals
from .cluster_env import OBS_HIGH, ClusterEnv

SCALING_KIND = "scaling"
RATE_SCALE = 100.0  # requests per second


class AutoscalingEnv(ClusterEnv):
    """The agent sets the instance count per GPU type at every tick."""

    agent_kinds = (SCALING_KIND,)
    unfit_rewards = ("regret", "lookahead", "fitness")
    scaling = True
    default_reward = "time-in-system"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        cfg = self.config.autoscale
        if cfg is None or not cfg.enabled:
            raise ValueError(
                f"scenario {self.scenario.name!r} has no autoscaler "
                "(a policy_config bundle with autoscaler.interval_us and node_pools)"
            )
        size = 4 * len(self.kinds) + 6
        self.observation_space = spaces.Box(0.0, OBS_HIGH, (size,), np.float32)

    @property
    def kinds(self) -> list[tuple[str, int]]:
        """(GPU type, TP) of each action entry: the node pools' types, in pool order."""
        cfg = self.config.autoscale
        tp = self.config.tp or self.config.instance_variant(0)[1]
        seen: list[tuple[str, int]] = []
        for p in cfg.node_pools if cfg is not None else ():
            if (p.gpu_type, tp) not in seen:
                seen.append((p.gpu_type, tp))
        return seen

    def _limits(self) -> list[int]:
        return [self.config.autoscale.capacity(gpu, tp) for gpu, tp in self.kinds]

    def _check_reward(self) -> None:
        if self.scenario.env.reward in self.unfit_rewards:
            raise ValueError(
                f"reward {self.scenario.env.reward!r} does not apply to blis_gym/Autoscaling-v0 "
                "(use 'time-in-system' or 'ttft', with gpu_cost)"
            )

    def _make_action_space(self):
        if self.config.autoscale is None:
            return spaces.Discrete(1)
        limits = self._limits()
        if len(limits) == 1:
            return spaces.Discrete(limits[0] + 1)
        return spaces.MultiDiscrete([m + 1 for m in limits])

    def _valid_action(self, action) -> bool:
        if isinstance(self.action_space, spaces.MultiDiscrete):
            return self.action_space.contains(np.asarray(action, dtype=np.int64))
        return super()._valid_action(action)

    def _policies(self) -> tuple:
        opts = self.config.policy_options()
        admission = ADMISSION.make(self.config.admission_policy, **opts)
        return admission, ServingRouter(ROUTING.make(self.config.routing_policy, **opts))

    def _simulator(self, requests, admission, routing) -> ClusterSimulator:
        return ClusterSimulator(self.config, requests, admission, routing, None)

    def _start(self, requests) -> None:
        super()._start(requests)
        self.arrivals = sorted(r.arrival for r in requests)  # ticks, for the rate (and the oracle)
        self._last_tick = 0
        self._gpu_paid = 0.0
        self._clock_scale = max(self.arrivals[-1] if self.arrivals else 1, 1)

    def wanted(self) -> list[int]:
        """Instances per action entry now (loading or serving): the action that changes nothing."""
        a = self.sim.autoscaler
        return [a.count(gpu, LOADING, SERVING) for gpu, _ in self.kinds]

    def _observe(self, d: Decision) -> np.ndarray:
        sim = self.sim
        a = sim.autoscaler
        signals: ScalingSignals = d.state
        vals: list[float] = []
        for (gpu, _), m in zip(self.kinds, self._limits()):
            m = max(m, 1)
            serving = a.count(gpu, SERVING)
            loading = a.count(gpu, LOADING)
            vals += (serving / m, loading / m, a.count(gpu, DRAINING) / m, (serving + loading) / m)
        an = self.config.autoscale.analyzer
        supply = sum(r.kv_capacity for r in signals.replicas) * an.kv_cache_threshold
        demand = sum(r.kv_in_use + r.queue_depth * an.avg_input_tokens for r in signals.replicas)
        n = max(len(signals.replicas), 1)
        kv_use = sum(r.kv_in_use / r.kv_capacity for r in signals.replicas if r.kv_capacity) / n
        per = n * self.config.engine.max_running
        waiting = sum(len(sim.instances[i].waitq) for i in a.serving)
        running = sum(len(sim.instances[i].running) for i in a.serving)
        lo = bisect.bisect_right(self.arrivals, self._last_tick)
        hi = bisect.bisect_right(self.arrivals, d.time)
        span = max(d.time - self._last_tick, 1) / 1e6
        self._last_tick = d.time
        vals += (
            min(demand / supply, 10.0) if supply > 0 else 10.0,
            kv_use,
            waiting / per,
            running / per,
            (hi - lo) / span / RATE_SCALE,
            d.time / self._clock_scale,
        )
        self._info["wanted"] = self.wanted()
        return np.asarray(vals, dtype=np.float32)

    def _pay_time(self, tick: int) -> None:
        super()._pay_time(tick)
        cost = self.scenario.env.gpu_cost
        if cost and self.sim is not None and self.sim.autoscaler is not None:
            spent = self.sim.autoscaler.gpu_seconds(tick)
            self._reward -= cost * (spent - self._gpu_paid)
            self._gpu_paid = spent

    def _act(self, decision: Decision, action) -> None:
        targets = [int(action)] if np.ndim(action) == 0 else [int(x) for x in np.asarray(action).ravel()]
        now = self.wanted()
        deltas = {kind: t - n for kind, t, n in zip(self.kinds, targets, now) if t != n}
        self._info["deltas"] = {f"{g}/tp{t}": d for (g, t), d in deltas.items()}
        self.sim.scale(decision, deltas)

    def _settle(self) -> None:
        super()._settle()
        metrics = self._info["metrics"]
        cost = self.result.cost
        if cost is not None:
            metrics["gpu_seconds"] = cost.gpu_seconds
        slo = self.scenario.env.slo_ttft_ms
        if slo > 0:
            # Over every request of the episode: rejected or unfinished ones miss it.
            met = sum(1 for v in self.result.aggregate.ttfts.values() if v <= slo * 1000)
            metrics["slo_attainment"] = met / max(len(self.arrivals), 1)
