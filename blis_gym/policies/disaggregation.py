"""Disaggregation deciders: serve a request on its decode instance alone, or split it.

With prefill and decode pools (``--prefill-instances``/``--decode-instances``) the
decode instance is chosen first; the decider then says whether the prompt is
prefilled on a prefill instance and its KV shipped over (a split) or the decode
instance serves the whole request (local). ``uncached`` is how many input tokens
the chosen decode instance does not hold, as the router's cache view shows it.
"""

from __future__ import annotations

from typing import Optional, Sequence

from ..engine.request import Request
from .base import PREFILL_ROUTER, RouterState, RoutingDecision, RoutingPolicy
from .registry import Registry

PD_DECIDER: Registry = Registry("disaggregation decider", "--pd-decider")

#: ``--pd-prefix-threshold``'s default (upstream BLIS's): split above 16 uncached tokens.
DEFAULT_PREFIX_THRESHOLD = 16


@PD_DECIDER.register("never")
class NeverSplit:
    """Every request is served whole on its decode instance."""

    reads_cache = False

    def split(self, n_in: int, uncached: int) -> bool:
        return False


@PD_DECIDER.register("always")
class AlwaysSplit:
    """Every request with a prompt is prefilled on the prefill pool."""

    reads_cache = False

    def split(self, n_in: int, uncached: int) -> bool:
        return n_in > 0


@PD_DECIDER.register("prefix-threshold")
class PrefixThreshold:
    """Split when the decode instance lacks more than ``threshold`` of the prompt's tokens
    (whole cached blocks count as held; the rest of the prompt does not)."""

    reads_cache = True

    def __init__(self, pd_prefix_threshold: int = DEFAULT_PREFIX_THRESHOLD) -> None:
        self.threshold = pd_prefix_threshold

    def split(self, n_in: int, uncached: int) -> bool:
        return n_in > 0 and uncached > self.threshold


class PoolRouter:
    """A routing policy confined to a pool: it sees the pool's snapshots numbered from 0 (and the
    pool's cache views), so every policy works unchanged on a subset of the instances."""

    def __init__(self, policy: RoutingPolicy, pool: Sequence[int]) -> None:
        self.policy = policy
        self.pool = tuple(pool)

    def bind_views(self, views: Sequence) -> None:
        """Give a cache-reading policy the pool's views (``views`` lists every instance's)."""
        if getattr(self.policy, "reads_caches", False):
            self.policy.bind_views([views[i] for i in self.pool])

    def route(self, req: Request, state: RouterState) -> int:
        """The chosen instance's index in the cluster."""
        snaps = state.snapshots
        sub = []
        for pos, i in enumerate(self.pool):
            s = snaps[i].copy()
            s.index = pos
            sub.append(s)
        return self.pool[self.policy.route(req, RouterState(sub, state.clock)).target]


class DisaggregatedRouter:
    """The built-in routing of prefill/decode pools, upstream BLIS's order: the decode pool's
    router picks the decode instance, then the decider (asking that instance's cache view, as
    stale as ``--cache-signal-delay``) says whether to split; a split's prefill instance is
    picked by the prefill pool's router when the prefill is routed (``PREFILL_ROUTER``), which
    the simulator keeps."""

    def __init__(self, decode: PoolRouter, decider, block_size: int) -> None:
        self.decode = decode
        self.decider = decider
        self.block_size = block_size
        self._views: Optional[Sequence] = None

    def bind_simulator(self, sim) -> None:
        if self.decider.reads_cache or getattr(self.decode.policy, "reads_caches", False):
            self.bind_views(sim.snapshots.cache_views(watch=self.decode.pool))

    def bind_views(self, views: Sequence) -> None:
        """Every instance's cache view, in instance order (the decider and the decode router ask)."""
        self._views = views
        self.decode.bind_views(views)

    def uncached_tokens(self, req: Request, instance: int) -> int:
        """Input tokens the instance's cache view does not hold (whole blocks from the start)."""
        if self._views is None:
            return req.n_in
        return req.n_in - self._views[instance].cached_prefix_blocks(req) * self.block_size

    def route(self, req: Request, state: RouterState) -> RoutingDecision:
        target = self.decode.route(req, state)
        uncached = self.uncached_tokens(req, target) if self.decider.reads_cache else req.n_in
        if self.decider.split(req.n_in, uncached):
            return RoutingDecision(target, "pd: split", split=PREFILL_ROUTER)
        return RoutingDecision(target, "pd: local")
