"""Unit tests for every policy family: scorer maths, parsing, token bucket, orderings, regret.

Expected figures are worked out by hand from each policy's definition.
"""

from __future__ import annotations

import math

import pytest

from blis_gym.cluster.trace import DecisionTrace, counterfactual, summarize, summary_lines
from blis_gym.engine.request import Request
from blis_gym.errors import ConfigError
from blis_gym.policies import ADMISSION, PRIORITY, ROUTING, SCHEDULER, RouterState, Snapshot
from blis_gym.policies.prefix_index import PrefixCacheIndex
from blis_gym.policies.scorers import (
    DEFAULT_SCORERS,
    SCORER_NAMES,
    ScorerConfig,
    normalized_weights,
    parse_scorers,
    score_kv_utilization,
    score_load_balance,
    score_queue_depth,
)

REFERENCE_NAMES = {
    ADMISSION: {"always-admit", "token-bucket", "reject-all", "gaie-legacy"},  # gaie-legacy: upstream's newer
    ROUTING: {"round-robin", "least-loaded", "weighted", "prefix-affinity", "always-busiest"},
    PRIORITY: {"constant", "slo-based", "inverted-slo"},
    SCHEDULER: {"fcfs", "priority-fcfs", "sjf", "reverse-priority"},
}


def req(rid="r", n_in=32, arrival=0, tokens=None, priority=0.0) -> Request:
    tokens = list(range(n_in)) if tokens is None else tokens
    r = Request(rid, 0, arrival, tokens, [1, 2])
    r.priority = priority
    return r


def snaps(*loads, kv=None):
    """Snapshots with (queue, batch, pending) loads and optional KV utilizations."""
    out = []
    for i, (q, b, p) in enumerate(loads):
        s = Snapshot(f"instance_{i}", i, q, b, kv[i] if kv else 0.0, 100, 0.0, p)
        out.append(s)
    return out


def state(snapshots, clock=0):
    return RouterState(snapshots, clock)


# --- registries ---------------------------------------------------------------------------


@pytest.mark.parametrize("registry", list(REFERENCE_NAMES), ids=lambda r: r.family)
def test_every_reference_policy_is_registered_by_name(registry):
    assert set(registry.names()) == REFERENCE_NAMES[registry]
    for name in registry.names():
        registry.make(name, block_size=16, scorers=(), token_bucket_capacity=5.0, token_bucket_refill_rate=1.0)


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ConfigError, match="--routing-policy: unknown routing policy 'x'.*least-loaded"):
        ROUTING.make("x")


# --- scorers ------------------------------------------------------------------------------


def test_queue_depth_is_min_max_normalized_and_inverted():
    s = snaps((4, 0, 0), (1, 1, 0), (0, 0, 0), (2, 2, 2))  # loads 4, 2, 0, 6
    assert score_queue_depth(None, s) == [2 / 6, 4 / 6, 1.0, 0.0]


def test_queue_depth_all_equal_scores_one():
    assert score_queue_depth(None, snaps((1, 1, 1), (0, 3, 0))) == [1.0, 1.0]


def test_load_balance_and_kv_utilization():
    s = snaps((0, 0, 0), (1, 2, 1), kv=[0.25, 1.0])
    assert score_load_balance(None, s) == [1.0, 0.2]
    assert score_kv_utilization(None, s) == [0.75, 0.0]


def test_weights_normalize_to_one():
    assert normalized_weights(DEFAULT_SCORERS) == [3 / 7, 2 / 7, 2 / 7]
    assert math.isclose(sum(normalized_weights(parse_scorers("queue-depth:0.1,load-balance:7"))), 1.0)


def test_weighted_composite_and_argmax_ties_to_lowest_index():
    policy = ROUTING.make("weighted", scorers=parse_scorers("queue-depth:1,load-balance:1"))
    s = snaps((1, 0, 0), (0, 0, 0), (0, 0, 0))
    d = policy.route(req(), state(s))
    # queue-depth [0, 1, 1], load-balance [0.5, 1, 1]: composite 0.25, 1, 1
    assert d.scores == [0.25, 1.0, 1.0]
    assert d.target == 1


def test_weighted_clamps_scores_into_unit_interval():
    policy = ROUTING.make("weighted", scorers=parse_scorers("kv-utilization:1"))
    s = snaps((0, 0, 0), (0, 0, 0), kv=[1.5, -0.5])  # impossible utilizations, scores -0.5 and 1.5
    assert policy.route(req(), state(s)).scores == [0.0, 1.0]


def test_weighted_default_profile_is_prefix_queue_kv():
    assert ROUTING.make("weighted").profile == DEFAULT_SCORERS
    assert [c.name for c in DEFAULT_SCORERS] == ["prefix-affinity", "queue-depth", "kv-utilization"]


def test_prefix_affinity_scorer_follows_recorded_routing():
    policy = ROUTING.make("weighted", scorers=parse_scorers("prefix-affinity:1"), block_size=4)
    s = snaps((0, 0, 0), (0, 0, 0))
    a = req("a", tokens=list(range(12)))  # 3 full blocks
    assert policy.route(a, state(s)).target == 0  # nothing known: tie -> index 0, recorded there
    b = req("b", tokens=list(range(8)) + [99, 98, 97, 96, 95])  # shares 2 of its 3 full blocks
    d = policy.route(b, state(s))
    assert d.scores == [2 / 3, 0.0] and d.target == 0
    short = req("c", tokens=[1, 2, 3])  # no full block: scores 0 everywhere
    assert policy.route(short, state(s)).scores == [0.0, 0.0]


# --- scorer profile parsing ----------------------------------------------------------------


def test_parse_scorers_accepts_spaces_and_keeps_order():
    assert parse_scorers(" queue-depth : 2 , load-balance:1.5") == (
        ScorerConfig("queue-depth", 2.0),
        ScorerConfig("load-balance", 1.5),
    )
    assert parse_scorers("") == ()
    # the reference's four, and upstream's newer six (tested in test_cache_scorers.py)
    assert {"prefix-affinity", "queue-depth", "kv-utilization", "load-balance"} < set(SCORER_NAMES)
    assert len(SCORER_NAMES) == 10


@pytest.mark.parametrize(
    "text, message",
    [
        ("queue-depth", "is not name:weight"),
        ("nosuch:1", "unknown scorer 'nosuch'"),
        ("queue-depth:1,queue-depth:2", "duplicate scorer 'queue-depth'"),
        ("queue-depth:abc", "invalid weight"),
        ("queue-depth:0", "finite positive"),
        ("queue-depth:-1", "finite positive"),
        ("queue-depth:nan", "finite positive"),
        ("queue-depth:inf", "finite positive"),
    ],
)
def test_parse_scorers_rejects(text, message):
    with pytest.raises(ConfigError, match=message) as err:
        parse_scorers(text)
    assert str(err.value).startswith("--routing-scorers")


# --- load-based routers ------------------------------------------------------------------


def test_least_loaded_counts_pending_and_ties_to_first():
    s = snaps((1, 1, 0), (0, 0, 2), (1, 0, 1), (3, 0, 0))
    assert ROUTING.make("least-loaded").route(req(), state(s)).target == 0
    s = snaps((1, 1, 1), (0, 0, 2), (0, 1, 0))
    assert ROUTING.make("least-loaded").route(req(), state(s)).target == 2


def test_always_busiest_picks_max_and_ties_to_first():
    s = snaps((1, 1, 0), (0, 0, 2), (5, 0, 0))
    assert ROUTING.make("always-busiest").route(req(), state(s)).target == 2
    s = snaps((1, 1, 0), (0, 0, 2))
    assert ROUTING.make("always-busiest").route(req(), state(s)).target == 0


def test_round_robin_cycles():
    rr = ROUTING.make("round-robin")
    s = snaps((0, 0, 0), (9, 9, 9), (0, 0, 0))
    assert [rr.route(req(), state(s)).target for _ in range(5)] == [0, 1, 2, 0, 1]


def test_prefix_affinity_policy_sticks_to_first_choice_and_falls_back_to_least_loaded():
    pa = ROUTING.make("prefix-affinity", block_size=4)
    prompt = list(range(10))
    d = pa.route(req("a", tokens=prompt), state(snaps((3, 0, 0), (0, 0, 1), (2, 0, 0))))
    assert d.target == 1 and "miss" in d.reason
    # The same full-block prefix goes back to instance 1 even though it is now the busiest.
    same_blocks = prompt[:8] + [77, 78]
    d = pa.route(req("b", tokens=same_blocks), state(snaps((0, 0, 0), (9, 9, 9), (0, 0, 0))))
    assert d.target == 1 and "hit" in d.reason
    # A prompt shorter than a block keys on its whole input.
    short = [5, 6]
    assert pa.route(req("c", tokens=short), state(snaps((1, 0, 0), (1, 0, 0), (0, 0, 0)))).target == 2
    assert pa.route(req("d", tokens=short), state(snaps((0, 0, 0), (0, 0, 0), (9, 0, 0)))).target == 2
    assert pa.route(req("e", tokens=[5, 7]), state(snaps((0, 0, 0), (0, 0, 0), (9, 0, 0)))).target == 0


# --- router-side prefix index ---------------------------------------------------------------


def test_prefix_index_matches_only_leading_blocks():
    idx = PrefixCacheIndex(16)
    idx.record([1, 2, 3], 0)
    assert idx.match_length([1, 2, 3, 4], 0) == 3
    assert idx.match_length([9, 2, 3], 0) == 0  # consecutive from the start only
    assert idx.match_length([1, 2], 1) == 0  # another instance knows nothing


def test_prefix_index_evicts_least_recently_recorded():
    idx = PrefixCacheIndex(16, capacity=3)
    idx.record([1, 2, 3], 0)
    idx.record([1], 0)  # refresh 1: now 2 is the oldest
    idx.record([4], 0)
    assert idx.block_count(0) == 3
    assert idx.match_length([1], 0) == 1
    assert idx.match_length([2], 0) == 0
    assert idx.match_length([3], 0) == 1 and idx.match_length([4], 0) == 1


# --- admission -------------------------------------------------------------------------------


def test_token_bucket_refills_by_elapsed_time_up_to_capacity():
    tb = ADMISSION.make("token-bucket", token_bucket_capacity=100.0, token_bucket_refill_rate=1000.0)
    assert tb.admit(req(n_in=60), state([], 0)) == (True, "")
    assert tb.tokens == 40.0
    assert tb.admit(req(n_in=50), state([], 0)) == (False, "insufficient tokens")
    assert tb.tokens == 40.0  # a rejection costs nothing
    # 10 ms at 1000 tokens/s refills 10 tokens.
    assert tb.admit(req(n_in=50), state([], 10_000)) == (True, "")
    assert tb.tokens == 0.0
    # A long idle period refills only to capacity.
    tb.admit(req(n_in=1), state([], 10_000_000))
    assert tb.tokens == 99.0


@pytest.mark.parametrize("cap, rate", [(0.0, 1.0), (-1.0, 1.0), (1.0, 0.0), (float("nan"), 1.0), (1.0, math.inf)])
def test_token_bucket_rejects_bad_parameters(cap, rate):
    with pytest.raises(ConfigError, match="--token-bucket"):
        ADMISSION.make("token-bucket", token_bucket_capacity=cap, token_bucket_refill_rate=rate)


def test_reject_all_and_always_admit():
    assert ADMISSION.make("reject-all").admit(req(), state([])) == (False, "reject-all")
    assert ADMISSION.make("always-admit").admit(req(), state([])) == (True, "")


# --- priority and schedulers --------------------------------------------------------------------


def test_priority_policies_age_in_seconds():
    r = req(arrival=1_000_000)
    assert PRIORITY.make("constant").compute(r, 5_000_000) == 0.0
    assert PRIORITY.make("slo-based").compute(r, 3_500_000) == pytest.approx(2.5)
    assert PRIORITY.make("inverted-slo").compute(r, 3_500_000) == pytest.approx(-2.5)


def _queue():
    return [
        req("c", n_in=50, arrival=5, priority=1.0),
        req("a", n_in=10, arrival=7, priority=2.0),
        req("b", n_in=10, arrival=5, priority=1.0),
        req("d", n_in=10, arrival=5, priority=2.0),
    ]


@pytest.mark.parametrize(
    "name, expected",
    [
        ("priority-fcfs", ["d", "a", "b", "c"]),  # priority desc, arrival, id
        ("sjf", ["b", "d", "a", "c"]),  # input length, arrival, id
        ("reverse-priority", ["b", "c", "d", "a"]),  # priority asc, arrival, id
    ],
)
def test_scheduler_orderings(name, expected):
    q = _queue()
    SCHEDULER.make(name).order(q, 0)
    assert [r.id for r in q] == expected


def test_fcfs_builds_no_scheduler_so_the_engine_never_reorders():
    assert SCHEDULER.make("fcfs") is None


# --- counterfactual regret and the trace summary ----------------------------------------------


def test_regret_uses_policy_scores_and_ranks_ties_by_instance_id():
    s = snaps((0, 0, 0), (0, 0, 0), (0, 0, 0))
    top, regret = counterfactual(2, [0.5, 0.9, 0.9], s, k=2)
    assert [c.instance_id for c in top] == ["instance_1", "instance_2"]
    assert regret == 0.0
    top, regret = counterfactual(0, [0.5, 0.9, 0.9], s, k=5)
    assert len(top) == 3 and regret == pytest.approx(0.4)


def test_regret_without_scores_is_load_difference():
    s = snaps((3, 1, 0), (0, 0, 1), (2, 0, 0))  # loads 4, 1, 2
    top, regret = counterfactual(0, None, s, k=3)
    assert [c.score for c in top] == [-1.0, -2.0, -4.0]
    assert regret == 3.0
    assert counterfactual(0, None, s, k=0) == ((), 0.0)


def test_instance_ids_sort_as_strings_like_the_reference():
    s = [Snapshot(f"instance_{i}", i) for i in range(12)]
    top, _ = counterfactual(0, [1.0] * 12, s, k=3)
    assert [c.instance_id for c in top] == ["instance_0", "instance_1", "instance_10"]


def test_trace_summary_counts_and_regret_mean():
    t = DecisionTrace(counterfactual_k=2)
    s = snaps((2, 0, 0), (0, 0, 0))
    t.record_admission("a", 0, True, "")
    t.record_admission("b", 1, False, "insufficient tokens")
    t.record_admission("c", 2, True, "")
    t.record_routing("a", 0, 0, "rr", None, s)  # regret 2
    t.record_routing("c", 2, 1, "rr", None, s)  # regret 0
    summary = summarize(t)
    assert (summary.total_decisions, summary.admitted, summary.rejected) == (3, 2, 1)
    assert summary.mean_regret == 1.0 and summary.max_regret == 2.0
    assert summary_lines(summary) == [
        "=== Trace Summary ===",
        "Total Decisions: 3",
        "  Admitted: 2",
        "  Rejected: 1",
        "Unique Targets: 2",
        "Target Distribution:",
        "  instance_0: 1",
        "  instance_1: 1",
        "Mean Regret: 1.000000",
        "Max Regret: 2.000000",
    ]


def test_prefix_index_is_an_exact_lru():
    """Random recordings (shared prefixes, repeats, a small capacity): the index holds and
    matches exactly what a plain ordered LRU, touched key by key, would."""
    import random
    from collections import OrderedDict

    rng = random.Random(7)
    for cap in (1, 5, 40):
        idx = PrefixCacheIndex(16, capacity=cap)
        model: dict[int, OrderedDict] = {}
        for _ in range(400):
            inst = rng.randrange(3)
            keys = [rng.randrange(12) for _ in range(rng.randrange(0, 8))]
            keys = list(dict.fromkeys(keys))  # chained keys never repeat within a request
            idx.record(keys, inst)
            lru = model.setdefault(inst, OrderedDict())
            for k in keys:
                if k in lru:
                    lru.move_to_end(k)
                else:
                    if len(lru) >= cap:
                        lru.popitem(last=False)
                    lru[k] = None
            probe = [rng.randrange(12) for _ in range(5)]
            for i in range(3):
                expected = 0
                for k in probe:
                    if k not in model.get(i, {}):
                        break
                    expected += 1
                assert idx.match_length(probe, i) == expected
                assert idx.block_count(i) == len(model.get(i, {}))


def test_weighted_scores_are_shared_per_decision_but_never_stale():
    """Two weighted policies with one profile and one prefix index score a decision once; a new
    recording in the index, other snapshots or another request are scored afresh, and callers
    get their own copies."""
    from blis_gym.policies.routing import WeightedScoring

    index = PrefixCacheIndex(4)
    agent, critic = WeightedScoring((), 4, index), WeightedScoring((), 4, index)
    req = Request("r", 0, 0, list(range(12)), [1])
    view = snaps((0, 0, 0), (1, 0, 0))
    first = agent.scores(req, view)
    again = critic.scores(req, view)
    assert again == first and again is not first
    again[0] = -1.0
    assert critic.scores(req, view) == first
    index.record(req.input_keys(4), 1)  # instance 1 now holds the whole prefix
    moved = critic.scores(req, view)
    assert moved[1] > first[1] and moved[0] == first[0]
    other = Request("o", 1, 0, list(range(100, 112)), [1])
    assert critic.scores(other, view)[1] == first[1]
    assert critic.scores(req, snaps((1, 0, 0), (0, 0, 0))) != moved


def test_gaie_legacy_sheds_only_sheddable_classes_while_the_pool_is_saturated():
    """Saturation is the mean over instances of max(queue depth / 5, KV utilization / 0.8)."""
    policy = ADMISSION.make("gaie-legacy")
    calm = [Snapshot("a", 0, queue_depth=2, kv_utilization=0.4), Snapshot("b", 1, queue_depth=4, kv_utilization=0.6)]
    busy = [Snapshot("a", 0, queue_depth=5, kv_utilization=0.1), Snapshot("b", 1, queue_depth=0, kv_utilization=0.8)]
    for cls in ("batch", "sheddable", "background"):
        r = req()
        r.slo_class = cls
        assert policy.admit(r, state(calm))[0]  # (0.4 + 0.8) / 2 = 0.6 < 1
        assert not policy.admit(r, state(busy))[0]  # (1.0 + 1.0) / 2 = 1.0
    for cls in ("", "critical", "standard", "realtime", "interactive"):
        r = req()
        r.slo_class = cls
        assert policy.admit(r, state(busy))[0]
