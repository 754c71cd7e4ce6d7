"""Upstream BLIS's newer scorers (f90a1e3a) against hand-built states, and ``--cache-signal-delay``.

Each expected figure follows from the scorer's definition (see ``policies/scorers.py``); the
delay tests state what staleness may change (decisions of the cache-reading scorers) and what
it may not (everything else).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from blis_gym.cluster.simulator import ClusterSimulator
from blis_gym.cluster.snapshots import CacheView, SnapshotProvider
from blis_gym.engine.request import Request
from blis_gym.policies import ROUTING, RouterState, Snapshot
from blis_gym.policies.scorers import (
    SCORER_NAMES,
    NoHitLRUScorer,
    PrecisePrefixCacheScorer,
    parse_scorers,
    score_active_requests,
    score_load_aware,
    score_running_requests,
    score_vllm_dp,
)
from tests.testkit.sim import config as cluster_config


def requests_with_prefix(n: int, prefix: int, prompt: int, groups: int = 1, rate: float = 100.0) -> list[Request]:
    """``n`` requests, ``rate`` a second, each a prefix of ``prefix`` tokens shared by its group
    (request i is in group i % groups) and ``prompt`` tokens of its own."""
    out = []
    for i in range(n):
        g = i % groups
        tokens = [g * 1_000_000 + t for t in range(prefix)] + [50_000_000 + i * prompt + t for t in range(prompt)]
        out.append(Request(f"request_{i}", i, int(i * 1e6 / rate), tokens, list(range(8))))
    return out


def snaps(*loads):
    """Snapshots with (queue, batch, pending) loads."""
    return [Snapshot(f"instance_{i}", i, q, b, 0.0, 100, 0.0, p) for i, (q, b, p) in enumerate(loads)]


def req(rid="r", n_in=64, tokens=None) -> Request:
    return Request(rid, 0, 0, list(range(n_in)) if tokens is None else tokens, [1, 2])


class FixedView:
    """A cache view that answers a fixed number of cached blocks."""

    def __init__(self, blocks: int) -> None:
        self.blocks = blocks

    def cached_prefix_blocks(self, req: Request) -> int:
        return self.blocks


def test_the_upstream_scorer_names_are_known_and_parse():
    new = {"precise-prefix-cache", "no-hit-lru", "active-requests", "running-requests", "load-aware", "vllm-dp"}
    assert new <= set(SCORER_NAMES)
    profile = parse_scorers("precise-prefix-cache:2,queue-depth:1,kv-utilization:1")
    assert [c.name for c in profile] == ["precise-prefix-cache", "queue-depth", "kv-utilization"]


# --- stateless -----------------------------------------------------------------------------


def test_active_requests_counts_everything_in_flight_and_normalizes_by_the_maximum():
    # in flight: 0, 2 (one queued, one running), 4 (two pending, one queued, one running)
    assert score_active_requests(req(), snaps((0, 0, 0), (1, 1, 0), (1, 1, 2))) == [1.0, 0.5, 0.0]
    # equal non-zero counts all score 0 (max-only normalization), all idle all 1
    assert score_active_requests(req(), snaps((1, 0, 0), (0, 1, 0))) == [0.0, 0.0]
    assert score_active_requests(req(), snaps((0, 0, 0), (0, 0, 0))) == [1.0, 1.0]


def test_running_requests_is_the_batch_inverted_min_max():
    # queue and pending do not count
    assert score_running_requests(req(), snaps((9, 2, 0), (0, 4, 5), (0, 6, 0))) == [1.0, 0.5, 0.0]
    assert score_running_requests(req(), snaps((3, 2, 0), (0, 2, 0))) == [1.0, 1.0]


def test_load_aware_is_linear_in_the_waiting_queue_and_capped():
    assert score_load_aware(req(), snaps((0, 9, 9), (64, 0, 0), (128, 0, 0), (500, 0, 0))) == [0.5, 0.25, 0.0, 0.0]


def test_vllm_dp_weighs_waiting_four_times_running():
    # raw 4*waiting + running: 4, 3, 0
    assert score_vllm_dp(req(), snaps((1, 0, 0), (0, 3, 0), (0, 0, 7))) == [0.0, 0.25, 1.0]


# --- the cache readers ---------------------------------------------------------------------


def test_precise_prefix_cache_prefers_the_longest_cached_prefix():
    scorer = PrecisePrefixCacheScorer()
    three = snaps((0, 0, 0), (0, 0, 0), (0, 0, 0))
    assert scorer(req(), three) == [1.0, 1.0, 1.0]  # unbound: neutral
    scorer.views = [FixedView(2), FixedView(4), FixedView(0)]
    assert scorer(req(), three) == [0.5, 1.0, 0.0]
    scorer.views = [FixedView(0)] * 3
    assert scorer(req(), three) == [1.0, 1.0, 1.0]  # nothing cached anywhere: neutral
    # the views are indexed by instance, not by position in the snapshot list
    scorer.views = [FixedView(2), FixedView(4), FixedView(0)]
    assert scorer(req(), [three[2], three[0]]) == [0.0, 1.0]


def test_no_hit_lru_spreads_cold_requests_least_recently_used_first():
    scorer = NoHitLRUScorer()
    three = snaps((0, 0, 0), (0, 0, 0), (0, 0, 0))
    scorer.views = [FixedView(0)] * 3
    a, b, warm = req("a"), req("b"), req("w")
    assert scorer(a, three) == [1.0, 0.5, 0.0]  # never used: in snapshot order
    scorer.observe(a, 0)
    # never used (1, 2) first, then 0, the most recent
    assert scorer(b, three) == [0.0, 1.0, 0.5]
    scorer.observe(b, 2)
    assert scorer.order == [2, 0]
    # a warm request (cached somewhere) is neutral and does not move the order
    scorer.views = [FixedView(0), FixedView(3), FixedView(0)]
    assert scorer(warm, three) == [0.5, 0.5, 0.5]
    scorer.observe(warm, 1)
    assert scorer.order == [2, 0]


def test_weighted_routing_feeds_its_choices_to_no_hit_lru():
    policy = ROUTING.make("weighted", scorers=parse_scorers("no-hit-lru:1"), block_size=16)
    policy.bind_views([FixedView(0)] * 3)
    state = RouterState(snaps((0, 0, 0), (0, 0, 0), (0, 0, 0)), 0)
    targets = [policy.route(req(f"r{i}"), state).target for i in range(6)]
    assert targets == [0, 1, 2, 0, 1, 2]  # cold requests rotate


def test_cache_view_counts_the_leading_blocks_an_instance_caches():
    # A prompt no other request of the workload starts as is left unregistered (nobody can ask
    # for it): the workload holds it twice, apart, so both instances register it.
    config = cluster_config(num_instances=3, routing_policy="round-robin")
    (first,) = requests_with_prefix(1, prefix=64, prompt=16)
    twin = Request("twin", 1, 10**7, list(first.input), [1])
    lone = Request("lone", 2, 2 * 10**7, [t + 200_000 for t in first.input], [1])
    sim = ClusterSimulator.from_config(config, [first, twin, lone])
    sim.run()
    views = sim.snapshots.cache_views()
    same = Request("again", 1, 0, list(first.input), [1])
    other = Request("other", 2, 0, [t + 100_000 for t in first.input], [1])
    full_blocks = len(first.input) // config.engine.block_size
    assert views[0].cached_prefix_blocks(same) == full_blocks  # round-robin: first to instance 0
    assert views[1].cached_prefix_blocks(same) == full_blocks  # and its twin to instance 1
    assert views[2].cached_prefix_blocks(same) == 0
    assert views[0].cached_prefix_blocks(other) == 0
    assert views[2].cached_prefix_blocks(lone) == 0  # unshared: never registered


def test_a_delayed_view_changes_only_at_refreshes():
    config = cluster_config(num_instances=1)
    sim = ClusterSimulator.from_config(config, [])
    kv = sim.instances[0].kv
    provider = SnapshotProvider(sim.instances, cache_delay=1000)
    (view,) = provider.cache_views()
    kv.hash_to_block[b"k"] = 0  # the cache changes after the first copy
    assert not view.has(b"k")
    provider.all(999, [0])  # too soon: no refresh
    assert not view.has(b"k")
    provider.all(1000, [0])
    assert view.has(b"k")
    del kv.hash_to_block[b"k"]
    provider.all(1999, [0])
    assert view.has(b"k")  # stale until the next refresh
    kv.hash_to_block[b"k"] = 1  # back again: the view still shows what stood at the refresh
    kv.hash_to_block.pop(b"k")
    assert view.has(b"k")
    provider.all(2000, [0])
    assert not view.has(b"k")
    live = CacheView(kv)
    kv.hash_to_block[b"k"] = 0
    assert live.has(b"k")


def test_a_fork_sees_its_own_caches():
    config = cluster_config(
        num_instances=2, routing_policy="weighted", routing_scorers=parse_scorers("precise-prefix-cache:1")
    )
    reqs = requests_with_prefix(4, prefix=64, prompt=16)
    sim = ClusterSimulator.from_config(config, reqs)
    fork = sim.fork()
    for mine, theirs in zip(sim.snapshots.cache_views(), fork.snapshots.cache_views()):
        assert theirs.kv is not mine.kv
    assert fork.routing.scorers[0].views is fork.snapshots.cache_views()


# --- --cache-signal-delay ------------------------------------------------------------------


def routes(config) -> list[int]:
    """Each request's instance, in routing order (fresh requests: a run changes its requests)."""
    sim = ClusterSimulator.from_config(config, requests_with_prefix(120, prefix=256, prompt=64, groups=4, rate=200.0))
    targets = []
    sim.routing_observers.append(lambda r, t: targets.append(t))
    sim.run()
    return targets


@pytest.mark.parametrize("delay", [0, 50_000, 10**12])
def test_the_delay_does_not_touch_profiles_that_do_not_ask_the_caches(delay):
    base = cluster_config(num_instances=3, routing_policy="weighted")
    assert routes(replace(base, cache_signal_delay=delay)) == routes(replace(base, cache_signal_delay=0))


def test_a_delay_longer_than_the_run_blinds_precise_prefix_cache_and_none_does_not():
    load_only = cluster_config(
        num_instances=3, routing_policy="weighted", routing_scorers=parse_scorers("queue-depth:1")
    )
    precise = replace(load_only, routing_scorers=parse_scorers("precise-prefix-cache:1,queue-depth:1"))
    blind = routes(replace(precise, cache_signal_delay=10**12))
    assert blind == routes(load_only)  # every instance looks equally cold: load decides
    live = routes(replace(precise, cache_signal_delay=0))
    assert live != blind
