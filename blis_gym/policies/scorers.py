"""Scorers for weighted routing: each rates every instance in [0, 1], higher is better.

A profile is a list of ``name:weight`` pairs; weights are normalized to sum
to 1 and the composite score of an instance is the weighted sum of its
clamped scores. Stateless scorers are plain functions (``make_scorer`` maps
names to them); ``prefix-affinity`` reads a prefix index (see ``prefix_index``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

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


def score_queue_depth(req: Request, snaps: Sequence[Snapshot]) -> list:
    """Min-max normalized effective load, inverted: least loaded 1, most loaded 0; all equal 1."""
    loads = [s.effective_load for s in snaps]
    lo, hi = min(loads), max(loads)
    if hi == lo:
        return [1.0] * len(loads)
    span = float(hi - lo)
    return [float(hi - x) / span for x in loads]


def score_kv_utilization(req: Request, snaps: Sequence[Snapshot]) -> list:
    """1 - KV utilization (may be stale under --snapshot-refresh-interval)."""
    return [1.0 - s.kv_utilization for s in snaps]


def score_load_balance(req: Request, snaps: Sequence[Snapshot]) -> list:
    """1 / (1 + effective load): keeps absolute load differences."""
    return [1.0 / (1.0 + float(s.effective_load)) for s in snaps]


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
}
SCORER_NAMES: tuple[str, ...] = tuple(sorted((*_STATELESS, "prefix-affinity")))


def make_scorer(name: str, block_size: int, prefix_index: PrefixCacheIndex | None = None) -> ScoreFn:
    """The scoring function for ``name``; ``prefix-affinity`` reads ``prefix_index``."""
    if name == "prefix-affinity":
        if prefix_index is None:
            raise ValueError("the prefix-affinity scorer needs a prefix index")
        return PrefixAffinityScorer(block_size, prefix_index)
    if name in _STATELESS:
        return _STATELESS[name]
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
