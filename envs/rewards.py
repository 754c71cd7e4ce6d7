"""Reward bookkeeping: counterfactual regret and time in system.

Fitness needs no state: it is computed from the finished run's metrics
(``blis_gym.report.fitness``), exactly as ``--fitness-weights`` does.
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from itertools import accumulate
from typing import Sequence

from ..config.slo import SLOTargets
from ..engine.request import COMPLETED, Request
from ..policies.base import Snapshot
from ..policies.routing import WeightedScoring
from ..policies.scorers import ScorerConfig
from ..report.goodput import class_of, is_good


class RegretCritic:
    """Scores routing choices with a reference weighted profile, as ``--counterfactual-k`` does.

    The critic's own prefix index observes every routing decision actually
    made, whoever made it, so its scores are what the reference profile would
    have seen had it been routing this cluster.
    """

    def __init__(self, scorers: Sequence[ScorerConfig], block_size: int, prefix_index=None) -> None:
        # A shared prefix index is recorded by its owner; the critic then only reads it.
        self.profile = WeightedScoring(scorers, block_size, prefix_index)

    def regret(self, req: Request, snaps: Sequence[Snapshot], target: int) -> tuple[float, list]:
        """(regret of routing ``req`` to ``target``, per-instance scores); then records the choice."""
        scores = self.profile.scores(req, snaps)
        # counterfactual(target, scores, snaps, k)'s regret, without ranking the candidates.
        regret = max(scores) - scores[target]
        if regret < 0:
            regret = 0.0
        for observe in self.profile.observers:
            observe(req, target)
        return regret, scores


class LookaheadCritic:
    """Prices routing choices by simulation: each candidate's rollout cost (the ``lookahead``
    oracle's forks of the paused run), the chosen one's regret against the best.

    Privileged: the forks know true output lengths. A reward for training only; no
    observation ever sees it.
    """

    def __init__(self, oracle) -> None:
        self.oracle = oracle  # a policies.lookahead.Lookahead

    def start(self, sim) -> None:
        self.oracle.bind_simulator(sim)

    def regret(self, req: Request, state, target: int) -> tuple[int, list[int]]:
        """(request-ticks lost by routing ``req`` to ``target`` rather than the best, every cost)."""
        costs = self.oracle.candidate_costs(req, state, also=target)
        return costs[target] - min(c for c in costs if c is not None), costs


class TimeInSystem:
    """Request-ticks spent in the system (arrival to departure), integrated up to any time.

    Arrivals are known in advance; departures (completion, rejection, drop)
    are reported as they are decided, possibly for a later tick, and count
    only once the clock passes them.
    """

    def __init__(self, arrivals: Sequence[int]) -> None:
        self.arrivals = sorted(arrivals)
        self.prefix = [0, *accumulate(self.arrivals)]
        self._future: list[int] = []  # departure ticks not yet reached
        self.n_departed = 0
        self.sum_departed = 0

    def attach(self, sim) -> None:
        """Follow ``sim``'s departures (a ClusterSimulator, before it runs)."""
        sim.set_departure_hook(self.depart)

    def depart(self, req: Request, tick: int) -> None:
        heapq.heappush(self._future, tick)

    def end_tick(self, clock: int) -> int:
        """When the last request leaves: ``clock``, or a departure already decided for later."""
        return max([clock, *self._future])

    def area(self, t: int) -> int:
        """Sum over requests of the ticks each spent in the system up to tick ``t``."""
        future = self._future
        while future and future[0] <= t:
            self.sum_departed += heapq.heappop(future)
            self.n_departed += 1
        n = bisect_right(self.arrivals, t)
        return (n * t - self.prefix[n]) - (self.n_departed * t - self.sum_departed)


class WaitingForFirstToken(TimeInSystem):
    """Request-ticks spent waiting for a first token (arrival to first token, rejection or drop).

    Fed with first tokens (``first_token``) and with every departure (``depart``):
    a departure counts only for a request that never got a first token.
    """

    def __init__(self, arrivals: Sequence[int]) -> None:
        super().__init__(arrivals)
        self._started: set[str] = set()

    def attach(self, sim) -> None:
        super().attach(sim)
        sim.set_first_token_hook(self.first_token)

    def first_token(self, req: Request, tick: int) -> None:
        self._started.add(req.id)
        super().depart(req, tick)

    def depart(self, req: Request, tick: int) -> None:
        if req.id not in self._started:
            super().depart(req, tick)


# Rewards paid as time accrued between decisions: reward name -> its tracker.
TIME_REWARDS = {"time-in-system": TimeInSystem, "ttft": WaitingForFirstToken}


class GoodputCredit:
    """Good requests (every SLO dimension its class gates met, as ``--slo-*`` counts them),
    credited once the clock passes their completion. A request's mean ITL here is
    (E2E - TTFT) / (output tokens - 1); drops and rejections earn nothing."""

    def __init__(self, targets: SLOTargets) -> None:
        self.targets = targets
        self._future: list[int] = []  # completion ticks of good requests not yet reached
        self.good = 0  # credited so far

    def attach(self, sim) -> None:
        sim.set_departure_hook(self.depart)

    def depart(self, req: Request, tick: int) -> None:
        if req.state != COMPLETED:
            return
        target = self.targets.get(class_of(req.slo_class))
        if target is None:
            return
        e2e = tick - req.arrival
        ttft = req.first_token_time if req.ttft_set else None
        itl = (e2e - req.first_token_time) / max(req.n_out - 1, 1) if req.ttft_set and req.n_out > 0 else None
        if is_good(ttft, itl, e2e, target):
            heapq.heappush(self._future, tick)

    def collect(self, t: int) -> int:
        """Good completions reached by tick ``t`` since the last call."""
        future = self._future
        n = 0
        while future and future[0] <= t:
            heapq.heappop(future)
            n += 1
        self.good += n
        return n

    def rest(self) -> int:
        """Every good completion not yet credited (the episode's end)."""
        n = len(self._future)
        self._future.clear()
        self.good += n
        return n
