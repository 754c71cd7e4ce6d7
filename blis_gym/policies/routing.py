"""Routing policies: choose an instance for each admitted request.

Loads are effective loads (queue depth + batch size + pending requests).
Ties always go to the lowest instance index.
"""

from __future__ import annotations

from typing import Callable, Sequence

from ..engine.request import Request
from .base import RouterState, RoutingDecision, Snapshot
from .prefix_index import PrefixCacheIndex
from .registry import Registry
from .scorers import CACHE_SCORERS, DEFAULT_SCORERS, ScorerConfig, make_scorer, normalized_weights

ROUTING: Registry = Registry("routing policy", "--routing-policy")
# profile -> (request, snapshots, prefix index, its recordings, scores) of the last scoring
_LAST_SCORES: dict = {}


def least_loaded_index(snaps: Sequence[Snapshot]) -> tuple[int, int]:
    """(index, load) of the least loaded instance; the first one on ties."""
    loads = [s.effective_load for s in snaps]
    best = min(range(len(loads)), key=loads.__getitem__)  # min keeps the first of equals
    return best, loads[best]


@ROUTING.register("round-robin")
class RoundRobin:
    """Cycle through instances in index order."""

    def __init__(self) -> None:
        self.counter = 0

    def route(self, req: Request, state: RouterState) -> RoutingDecision:
        n = len(state.snapshots)
        target = self.counter % n
        self.counter += 1
        return RoutingDecision(target, "round-robin")


@ROUTING.register("least-loaded")
class LeastLoaded:
    """The instance with the smallest effective load.

    Pending requests count, so a burst decided in one tick spreads out
    instead of piling onto the instance that looked idle.
    """

    def route(self, req: Request, state: RouterState) -> RoutingDecision:
        target, _ = least_loaded_index(state.snapshots)
        return RoutingDecision(target, "least-loaded")


@ROUTING.register("always-busiest")
class AlwaysBusiest:
    """The instance with the largest effective load (a pathological template)."""

    def route(self, req: Request, state: RouterState) -> RoutingDecision:
        loads = [s.effective_load for s in state.snapshots]
        return RoutingDecision(max(range(len(loads)), key=loads.__getitem__), "always-busiest")


@ROUTING.register("prefix-affinity")
class PrefixAffinity:
    """Requests with the same block-aligned prefix go where the first such request went.

    The affinity key is the identity of the request's whole run of full input
    blocks (the whole input when shorter than a block). A new key goes to the
    least loaded instance and is remembered; the map is never evicted.
    """

    def __init__(self, block_size: int = 16) -> None:
        self.block_size = block_size
        self.owner: dict = {}

    def route(self, req: Request, state: RouterState) -> RoutingDecision:
        keys = req.input_keys(self.block_size)
        key = keys[-1] if keys else req.input.tobytes()
        target = self.owner.get(key)
        if target is not None and target < len(state.snapshots):
            return RoutingDecision(target, "prefix-affinity (cache-hit)")
        target, _ = least_loaded_index(state.snapshots)
        self.owner[key] = target
        return RoutingDecision(target, "prefix-affinity (cache-miss, fallback to least-loaded)")


@ROUTING.register("weighted")
class WeightedScoring:
    """Argmax of a weighted sum of scorers (``--routing-scorers``).

    Each scorer's value is clamped to [0, 1]; weights are normalized to sum
    to 1; ties go to the lowest index. Stateful scorers observe each choice.
    The decision carries every instance's composite score. Scorers that read
    the instances' caches see them once a simulator binds the policy.
    """

    def __init__(self, scorers: Sequence[ScorerConfig] = (), block_size: int = 16, prefix_index=None) -> None:
        profile = tuple(scorers) or DEFAULT_SCORERS
        self.profile = profile
        self.weights = normalized_weights(profile)
        # The profile as plain values: a memo key hashed in C (the dataclasses hash in Python).
        self._memo_key = tuple((c.name, c.weight) for c in profile)
        # Called with (request, chosen index) after each decision.
        self.observers: list[Callable[[Request, int], None]] = []
        if prefix_index is None and any(c.name == "prefix-affinity" for c in profile):
            # No shared index: keep our own, recording our own decisions.
            own = prefix_index = PrefixCacheIndex(block_size)
            self.observers.append(own.observe)
        self._index = prefix_index
        self.scorers = [make_scorer(cfg.name, block_size, prefix_index) for cfg in profile]
        self._cache_scorers = [fn for cfg, fn in zip(profile, self.scorers) if cfg.name in CACHE_SCORERS]
        self.observers += [fn.observe for fn in self.scorers if hasattr(fn, "observe")]

    @property
    def reads_caches(self) -> bool:
        """True when a scorer asks the instances' caches (it needs ``bind_views``)."""
        return bool(self._cache_scorers)

    def bind_views(self, views) -> None:
        """Give the cache-reading scorers one cache view per instance, in instance order."""
        for fn in self._cache_scorers:
            fn.views = views

    def bind_simulator(self, sim) -> None:
        if self._cache_scorers:
            self.bind_views(sim.snapshots.cache_views())

    def scores(self, req: Request, snaps: Sequence[Snapshot]) -> list:
        """Composite score of every instance, in snapshot order (no side effects).

        The scores depend only on the request, the snapshots and the prefix index, so
        the last result per profile is kept: an agent and a critic scoring the same
        decision with the same profile and index compute it once.
        """
        if self._cache_scorers:  # caches change under the same snapshots; no-hit-lru has state
            return self._scores(req, snaps)
        index = self._index
        version = index.recordings if index is not None else 0  # what prefix-affinity reads
        last = _LAST_SCORES.get(self._memo_key)
        if last is not None and last[0] is req and last[1] is snaps and last[2] is index and last[3] == version:
            return list(last[4])
        total = self._scores(req, snaps)
        _LAST_SCORES[self._memo_key] = (req, snaps, index, version, total)
        return list(total)

    def _scores(self, req: Request, snaps: Sequence[Snapshot]) -> list:
        total = [0.0] * len(snaps)
        for fn, w in zip(self.scorers, self.weights):
            for i, s in enumerate(fn(req, snaps)):
                if s < 0.0:
                    s = 0.0
                elif s > 1.0:
                    s = 1.0
                total[i] += s * w
        return total

    def route(self, req: Request, state: RouterState) -> RoutingDecision:
        total = self.scores(req, state.snapshots)
        best, best_score = 0, -1.0
        for i, s in enumerate(total):
            if s > best_score:
                best, best_score = i, s
        for observe in self.observers:
            observe(req, best)
        return RoutingDecision(best, "weighted-scoring", total)
