"""``lookahead``: a clairvoyant routing oracle that simulates each choice before making it.

At every routing decision the oracle forks the paused simulation once per
instance, routes the request there, and lets a rollout policy (any routing
policy; the weighted default profile unless told otherwise) make every later
decision in the fork, to the end of the run or for ``horizon`` ticks. It then
routes to the instance whose fork had the least total time to first token (or
time in system). Ties go to the rollout policy's own choice, so with one
instance, or a horizon of 0, the oracle is its rollout policy. With
``candidates`` K > 0 only the K instances the rollout policy ranks best are
simulated (its scores, else the least effective load): K forks instead of N.
With a ``margin`` the oracle leaves the rollout policy's pick only for an instance
whose rollout is cheaper by more than the margin: a conservative teacher that
keeps the profile's cache locality unless a choice clearly pays.

It is not a router one could deploy: the forks know every request's true
output length and, with ``future``, the arrivals to come. It is an upper
reference for learned routers, and a teacher for imitation. By default the
rollouts leave out future arrivals (a greedy oracle): cheaper, and on
``default`` better than looking further.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..engine.request import Request
from ..errors import ConfigError
from .base import RouterState, RoutingDecision
from .prefix_index import PrefixCacheIndex
from .routing import ROUTING

LOOKAHEAD_OBJECTIVES = ("ttft", "time-in-system")


@dataclass(frozen=True)
class LookaheadConfig:
    """The ``lookahead`` routing oracle: how each candidate's future is simulated and scored.

    ``horizon`` is in ticks (None: to the end of the run); ``future`` keeps arrivals that
    have not happened yet in the rollouts (False: only the requests already in the system);
    ``candidates`` > 0 simulates only that many instances, those the rollout policy ranks
    best (0: every instance); ``margin`` (ticks of the objective, request-microseconds) is what
    another instance must save over the rollout policy's pick to be chosen instead.
    """

    rollout: str = "weighted"
    horizon: int | None = None
    objective: str = "ttft"
    future: bool = False
    candidates: int = 0
    margin: int = 0

    def __post_init__(self) -> None:
        if self.margin < 0:
            raise ConfigError(f"--lookahead-margin must be >= 0, got {self.margin / 1000:g} ms")
        if self.candidates < 0:
            raise ConfigError(f"--lookahead-candidates must be >= 0, got {self.candidates}")
        if self.horizon is not None and self.horizon < 0:
            raise ConfigError(f"--lookahead-horizon must be >= 0, got {self.horizon}")
        if self.objective not in LOOKAHEAD_OBJECTIVES:
            raise ConfigError(
                f"--lookahead-objective: unknown objective {self.objective!r} "
                f"(valid: {', '.join(LOOKAHEAD_OBJECTIVES)})"
            )
        if self.rollout == "lookahead":
            raise ConfigError("--lookahead-rollout: the rollout policy cannot be lookahead itself")


def rollout_cost(sim, objective: str) -> int:
    """Request-ticks of waiting (``ttft``) or of presence (``time-in-system``) of every request
    that reached an instance in a finished rollout ``sim``; unfinished ones count to its end."""
    end = sim.clock
    total = 0
    for inst in sim.instances:
        m = inst.metrics
        done = m.ttfts if objective == "ttft" else m.e2es
        for rid, record in m.requests.items():
            value = done.get(rid)
            # Records keep arrival in seconds; round back to the integer tick it came from.
            total += value if value is not None else max(end - int(round(record.arrived_at * 1e6)), 0)
    return total


@ROUTING.register("lookahead", oracle=True)
class Lookahead:
    """Route where a simulated future is best (see the module docstring)."""

    def __init__(
        self,
        lookahead: LookaheadConfig = LookaheadConfig(),
        block_size: int = 16,
        scorers: tuple = (),
        prefix_index: Optional[PrefixCacheIndex] = None,
    ) -> None:
        self.options = lookahead
        # The rollout policy's prefix index must follow the routes actually taken, not the
        # rollout's own picks: without a shared index (which its owner keeps), we keep one.
        self._own_index = PrefixCacheIndex(block_size) if prefix_index is None else None
        self.rollout = ROUTING.make(
            lookahead.rollout, block_size=block_size, scorers=scorers, prefix_index=prefix_index or self._own_index
        )
        self.sim = None

    def bind_simulator(self, sim) -> None:
        self.sim = sim
        bind = getattr(self.rollout, "bind_simulator", None)
        if bind is not None:  # a rollout profile that asks the caches (the forks copy its views)
            bind(sim)

    def on_workload(self, requests) -> None:
        hook = getattr(self.rollout, "on_workload", None)
        if hook is not None:
            hook(requests)

    def on_routed(self, req: Request, target: int) -> None:
        if self._own_index is not None:
            self._own_index.observe(req, target)

    def route(self, req: Request, state: RouterState) -> RoutingDecision:
        base = self.rollout.route(req, state)
        n = len(state.snapshots)
        opts = self.options
        if n == 1 or opts.horizon == 0 or self.sim is None:
            return RoutingDecision(base.target, "lookahead: rollout policy", base.scores)
        costs = self.candidate_costs(req, state, base)
        best = min(c for c in costs if c is not None)
        target = base.target if costs[base.target] - best <= opts.margin else costs.index(best)
        return RoutingDecision(target, "lookahead", [float(-c) if c is not None else float("-inf") for c in costs])

    def candidates(self, req: Request, state: RouterState, base: Optional[RoutingDecision] = None) -> list[int]:
        """The instances worth simulating: all, or the ``candidates`` the rollout policy ranks best
        by its scores (without side effects; else by least effective load), ``base.target`` (its
        pick) always among them."""
        snaps = state.snapshots
        n = len(snaps)
        k = self.options.candidates
        if not k or k >= n:
            return list(range(n))
        scores = base.scores if base is not None and base.scores else None
        if scores is None and hasattr(self.rollout, "scores"):
            scores = self.rollout.scores(req, snaps)
        if scores:
            order = sorted(range(n), key=lambda i: (-scores[i], i))
        else:
            order = sorted(range(n), key=lambda i: (snaps[i].effective_load, i))
        keep = order[:k]
        if base is not None and base.target not in keep:
            keep[-1] = base.target
        return sorted(keep)

    def candidate_costs(
        self, req: Request, state: RouterState, base: Optional[RoutingDecision] = None, also: Optional[int] = None
    ) -> list[Optional[int]]:
        """The rollout cost (request-ticks) of routing ``req`` to each candidate instance now
        (``None`` for instances not simulated); ``also`` is simulated whatever the ranking."""
        costs: list[Optional[int]] = [None] * len(state.snapshots)
        wanted = self.candidates(req, state, base)
        if also is not None and also not in wanted:
            wanted.append(also)
        for target in wanted:
            costs[target] = self._cost(req, state, target)
        return costs

    def _cost(self, req: Request, state: RouterState, target: int) -> int:
        """The rollout cost of routing ``req`` to ``target`` now."""
        sim, opts = self.sim, self.options
        fork, f_req, f_state, f_self = sim.fork(req, state, self, drop_arrivals=not opts.future)
        fork.routing = f_self.rollout  # the fork's copy of our rollout policy decides from now on
        if f_self.on_routed not in fork.routing_observers:  # we were asked from outside the loop
            fork.routing_observers.append(f_self.on_routed)
        if opts.horizon is not None:
            fork.stop_at = min(fork.stop_at, state.clock + opts.horizon)
        try:
            fork.route(fork.hold_routing(f_req, f_state), target)
            fork.advance()
            return rollout_cost(fork, opts.objective)
        finally:
            # The fork's copy of this oracle points back at the fork (which observes it): break
            # that cycle, so reference counting frees the fork now. The runs that fork pause the
            # cyclic collector (gcpause), and a long run's forks would pile up until it ends.
            f_self.sim = None
