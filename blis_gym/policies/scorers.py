"""Scorers for weighted routing: each rates every instance in [0, 1], higher is better.

A profile is a list of ``name:weight`` pairs; weights are normalized to sum
to 1 and the composite score of an instance is the weighted sum of its
clamped scores. Stateless scorers are plain functions (``make_scorer`` maps
names to them); ``prefix-affinity`` reads a prefix index (see ``prefix_index``);
``precise-prefix-cache`` and ``no-hit-lru`` ask each instance's KV cache through
:class:`CacheView` objects the cluster lends them (``bind_views``), as fresh as
``--cache-signal-delay`` allows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Optional, Protocol, Sequence

from ..engine.request import Request
from ..errors import ConfigError
from ..goparse import name_value_pairs, parse_float
from .base import Snapshot
from .prefix_index import PrefixCacheIndex

# fn(request, snapshots) -> one score per snapshot, in snapshot order.
ScoreFn = Callable[[Request, Sequence[Snapshot]], list]


@dataclass(frozen=True)
class ScorerConfig:
    """One scorer of a weighted profile; ``weight`` is relative (any finite positive)."""

    name: str
    weight: float


DEFAULT_SCORERS: tuple[ScorerConfig, ...] = (
    ScorerConfig("prefix-affinity", 3.0),
    ScorerConfig("queue-depth", 2.0),
    ScorerConfig("kv-utilization", 2.0),
)
# Upstream BLIS's default profile since (llm-d's); ours stays the reference's above.
UPSTREAM_DEFAULT_SCORERS: tuple[ScorerConfig, ...] = (
    ScorerConfig("precise-prefix-cache", 2.0),
    ScorerConfig("queue-depth", 1.0),
    ScorerConfig("kv-utilization", 1.0),
)


def _inverted_min_max(raw: Sequence[int]) -> list:
    """Lowest raw value 1, highest 0, linear between; all equal: all 1."""
    lo, hi = min(raw), max(raw)
    if hi == lo:
        return [1.0] * len(raw)
    span = float(hi - lo)
    return [float(hi - x) / span for x in raw]


def score_queue_depth(req: Request, snaps: Sequence[Snapshot]) -> list:
    """Min-max normalized effective load, inverted: least loaded 1, most loaded 0; all equal 1."""
    return _inverted_min_max([s.effective_load for s in snaps])


def score_kv_utilization(req: Request, snaps: Sequence[Snapshot]) -> list:
    """1 - KV utilization (may be stale under --snapshot-refresh-interval)."""
    return [1.0 - s.kv_utilization for s in snaps]


def score_load_balance(req: Request, snaps: Sequence[Snapshot]) -> list:
    """1 / (1 + effective load): keeps absolute load differences."""
    return [1.0 / (1.0 + float(s.effective_load)) for s in snaps]


def score_active_requests(req: Request, snaps: Sequence[Snapshot]) -> list:
    """Requests in flight (routed, not finished: pending + queued + running), max-normalized:
    ``(max - n) / max``; an idle instance scores 1 and, unlike the min-max scorers, equal
    non-zero counts all score 0 (llm-d's active-request scorer)."""
    counts = [s.effective_load for s in snaps]
    top = max(counts)
    return [1.0 if n == 0 else float(top - n) / top for n in counts]


def score_running_requests(req: Request, snaps: Sequence[Snapshot]) -> list:
    """Running batch size, inverted min-max (GIE's running-requests-size scorer)."""
    return _inverted_min_max([s.batch_size for s in snaps])


LOAD_AWARE_QUEUE_THRESHOLD = 128  # waiting requests at which load-aware scores 0 (llm-d's default)


def score_load_aware(req: Request, snaps: Sequence[Snapshot]) -> list:
    """Waiting queue, linear and capped, in [0, 0.5]: an empty queue 0.5, a queue of
    ``LOAD_AWARE_QUEUE_THRESHOLD`` or more 0 (llm-d's load-aware scorer)."""
    cap = LOAD_AWARE_QUEUE_THRESHOLD
    return [0.5 if s.queue_depth == 0 else 0.5 * (1.0 - min(s.queue_depth, cap) / cap) for s in snaps]


def score_vllm_dp(req: Request, snaps: Sequence[Snapshot]) -> list:
    """vLLM's data-parallel balancer: ``4 * waiting + running``, inverted min-max."""
    return _inverted_min_max([4 * s.queue_depth + s.batch_size for s in snaps])


class CacheView(Protocol):
    """One instance's prefix cache as the router may see it (live, or as of a recent refresh)."""

    def cached_prefix_blocks(self, req: Request) -> int:
        """How many of ``req``'s leading full input blocks the instance holds."""
        ...


class PrecisePrefixCacheScorer:
    """Each instance's cached prefix of the request, asked of its KV cache (not guessed at the
    router), min-max normalized: the longest 1, the shortest 0; all equal (none cached
    included) all 1. Without views (a policy no cluster bound) every instance scores 1."""

    __slots__ = ("views",)

    def __init__(self) -> None:
        self.views: Optional[Sequence[CacheView]] = None

    def __call__(self, req: Request, snaps: Sequence[Snapshot]) -> list:
        views = self.views
        if views is None:
            return [1.0] * len(snaps)
        hits = [views[s.index].cached_prefix_blocks(req) for s in snaps]
        lo, hi = min(hits), max(hits)
        if hi == lo:
            return [1.0] * len(hits)
        span = float(hi - lo)
        return [(h - lo) / span for h in hits]


class NoHitLRUScorer:
    """Spreads cold requests (cached nowhere) over the instances least recently given one:
    never-used first, then oldest to newest, scored 1 down to 0 by rank. A warm request (or
    no views) scores 0.5 everywhere and leaves the order alone. ``observe`` moves the
    instance that got a cold request to the front (llm-d's no-hit-lru scorer)."""

    __slots__ = ("views", "order", "_cold")

    def __init__(self) -> None:
        self.views: Optional[Sequence[CacheView]] = None
        self.order: list[int] = []  # instance indexes given a cold request, most recent first
        self._cold: Optional[Request] = None  # the request last scored cold

    def __call__(self, req: Request, snaps: Sequence[Snapshot]) -> list:
        views = self.views
        self._cold = None
        if views is None or any(views[s.index].cached_prefix_blocks(req) > 0 for s in snaps):
            return [0.5] * len(snaps)
        n = len(snaps)
        self._cold = req
        if n <= 1:
            return [1.0] * n
        present = {s.index for s in snaps}
        self.order = [i for i in self.order if i in present]
        used = set(self.order)
        ranked = [s.index for s in snaps if s.index not in used] + self.order[::-1]
        rank = {i: r for r, i in enumerate(ranked)}
        return [1.0 - rank[s.index] / (n - 1) for s in snaps]

    def observe(self, req: Request, target: int) -> None:
        if req is not self._cold:
            return
        self._cold = None
        if target in self.order:
            self.order.remove(target)
        self.order.insert(0, target)


class PrefixAffinityScorer:
    """Fraction of the request's full input blocks each instance was last routed (router-side
    LRU ``index``, kept up to date by its owner). An object, not a closure, so that a fork or a
    pickle of its owner carries its own index along."""

    __slots__ = ("block_size", "index")

    def __init__(self, block_size: int, index: PrefixCacheIndex) -> None:
        self.block_size = block_size
        self.index = index

    def __call__(self, req: Request, snaps: Sequence[Snapshot]) -> list:
        keys = req.input_keys(self.block_size)
        if not keys:
            return [0.0] * len(snaps)
        total = float(len(keys))
        lengths = self.index.match_lengths(keys, len(snaps))
        return [lengths[s.index] / total for s in snaps]


_STATELESS: dict[str, ScoreFn] = {
    "queue-depth": score_queue_depth,
    "kv-utilization": score_kv_utilization,
    "load-balance": score_load_balance,
    "active-requests": score_active_requests,
    "running-requests": score_running_requests,
    "load-aware": score_load_aware,
    "vllm-dp": score_vllm_dp,
}
# Scorers that ask the instances' caches (through views a cluster binds).
_CACHE_READERS: dict[str, Callable[[], ScoreFn]] = {
    "precise-prefix-cache": PrecisePrefixCacheScorer,
    "no-hit-lru": NoHitLRUScorer,
}
SCORER_NAMES: tuple[str, ...] = tuple(sorted((*_STATELESS, *_CACHE_READERS, "prefix-affinity")))
CACHE_SCORERS: frozenset = frozenset(_CACHE_READERS)


def make_scorer(name: str, block_size: int, prefix_index: PrefixCacheIndex | None = None) -> ScoreFn:
    """The scoring function for ``name``; ``prefix-affinity`` reads ``prefix_index``; a cache
    reader is a fresh object whose ``views`` its owner binds."""
    if name == "prefix-affinity":
        if prefix_index is None:
            raise ValueError("the prefix-affinity scorer needs a prefix index")
        return PrefixAffinityScorer(block_size, prefix_index)
    if name in _STATELESS:
        return _STATELESS[name]
    if name in _CACHE_READERS:
        return _CACHE_READERS[name]()
    raise ConfigError(f"unknown scorer {name!r} (valid: {', '.join(SCORER_NAMES)})")


def check_scorers(configs: Iterable[ScorerConfig], where: str) -> tuple[ScorerConfig, ...]:
    """Reject unknown, duplicate, and non-positive or non-finite weights; ``where`` prefixes errors."""
    seen: set[str] = set()
    out = []
    for c in configs:
        if c.name not in SCORER_NAMES:
            raise ConfigError(f"{where}: unknown scorer {c.name!r} (valid: {', '.join(SCORER_NAMES)})")
        if c.name in seen:
            raise ConfigError(f"{where}: duplicate scorer {c.name!r}; each scorer may appear at most once")
        seen.add(c.name)
        if (
            isinstance(c.weight, bool)
            or not isinstance(c.weight, (int, float))
            or not (c.weight > 0 and math.isfinite(c.weight))
        ):
            raise ConfigError(f"{where}: scorer {c.name!r} weight must be a finite positive number, got {c.weight!r}")
        out.append(ScorerConfig(c.name, float(c.weight)))
    return tuple(out)


def parse_scorers(text: str, flag: str = "--routing-scorers") -> tuple[ScorerConfig, ...]:
    """Parse ``"name:weight,..."``; empty text gives an empty profile (meaning: the default)."""
    if text == "":
        return ()
    configs = []
    for name, weight in name_value_pairs(text, flag, "name:weight", "queue-depth:2,kv-utilization:1"):
        if name not in SCORER_NAMES:
            raise ConfigError(f"{flag}: unknown scorer {name!r} (valid: {', '.join(SCORER_NAMES)})")
        if any(c.name == name for c in configs):
            raise ConfigError(f"{flag}: duplicate scorer {name!r}; each scorer may appear at most once")
        value = parse_float(weight)
        if value is None:
            raise ConfigError(f"{flag}: invalid weight {weight!r} for scorer {name!r} (expected a number)")
        configs.append(ScorerConfig(name, value))
    return check_scorers(configs, flag)


def normalized_weights(configs: Sequence[ScorerConfig]) -> list:
    total = 0.0
    for c in configs:
        total += c.weight
    return [c.weight / total for c in configs]
