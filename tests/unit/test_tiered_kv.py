"""The two-tier (GPU + CPU) KV cache, ``--kv-cpu-blocks``.

The first tests pin each behavioural contract of BLIS's tiered cache (its
``sim/kv/tiered_test.go`` names them BC-2, -6, -9, -10, -11, -12) on small
caches of block size 2, plus the reload and retry rules. Then the books
(GPU and CPU) at every step of whole runs, determinism, an unused tier being
no tier at all, and the runs on which BLIS's tiered mode crashes or hangs:
ours finishes them with every request and block accounted for.
``tests/data/reference`` holds the differential cases (names ``tiered_*``).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from test_fork import answers, finish, paused_sim
from testkit.sim import config, simulator, workload

import blis_gym.cluster.simulator as cluster_sim
from blis_gym.config.schema import CPUTierConfig
from blis_gym.engine.blockhash import unshared_prefixes
from blis_gym.engine.kvcache import KVCache, mark_private_decodes
from blis_gym.engine.request import Request
from blis_gym.engine.tiered_kv import TieredKVCache
from blis_gym.errors import ConfigError
from blis_gym.report.summary import result_metrics


def tiered(gpu=10, cpu=10, threshold=0.5, bandwidth=100.0, base=0, bs=2, reference=False) -> TieredKVCache:
    return TieredKVCache(gpu, bs, cpu, threshold, bandwidth, base, reference_rollback=reference)


def req(rid: str, tokens, out=()) -> Request:
    return Request(rid, 0, 0, list(tokens), list(out))


def admit(kv: KVCache, r: Request) -> bool:
    """Prefill all of ``r`` in one go, from its cached prefix (batch formation's phase 2)."""
    cached = kv.cached_blocks(r)
    start = len(cached) * kv.block_size
    return kv.allocate(r, start, r.n_in, cached)


def held(kv, tokens, rid="held"):
    r = req(rid, tokens)
    assert admit(kv, r)
    return r


# --- BLIS's behavioural contracts ---------------------------------------------------------


def test_offload_needs_use_above_threshold_after_the_release():  # BC-2
    kv = tiered(threshold=0.5)
    kv.release(held(kv, range(1, 13), "r1"))  # 6 blocks
    assert kv.used == 0 and kv.offloads == 0  # use fell to 0: nothing moves
    kv = tiered(threshold=0.5)
    held(kv, range(100, 112))  # 6 blocks stay in use: 0.6 > 0.5
    r2 = held(kv, [1, 2, 3, 4], "r2")
    kv.release(r2)
    assert kv.offloads == 2 and kv.cpu_used == 2
    assert kv.used == 6  # offloading moves free blocks: it frees nothing
    assert kv.cached_blocks(req("again", [1, 2, 3, 4])) == []  # the prefix left the GPU
    kv.check()


def test_offload_stops_when_the_cpu_tier_is_full():  # BC-10
    kv = tiered(cpu=2, threshold=0.3)
    held(kv, range(100, 108))  # 4 blocks: 0.4 > 0.3
    kv.release(held(kv, range(1, 9), "r1"))  # 4 prefix blocks free up
    assert kv.offloads == 2 and kv.cpu_used == kv.cpu_capacity == 2
    # A request frees its last block first, so its two deepest prefixes left; the rest stay.
    assert len(kv.cached_blocks(req("again", range(1, 9)))) == 2
    assert kv.total == 10
    kv.check()


def test_blocks_are_conserved_over_cycles():  # BC-9
    kv = tiered(cpu=5, threshold=0.5)
    for i in range(5):
        r = held(kv, [i * 2 + 1, i * 2 + 2, i * 2 + 3, i * 2 + 4], f"r{i}")
        kv.release(r)
        kv.check()
    assert kv.used == 0 and kv.total == 10


def offload_target_then_fill(kv, offload_at: int, reload_at: int) -> Request:
    """BLIS's thrashing scenario: a 2-block prefix is offloaded at ``offload_at``; at
    ``reload_at`` the GPU has one free block, so the same prefix must come back from the CPU."""
    kv.clock = offload_at
    target = held(kv, [1, 2, 3, 4], "target")
    for i in range(3):
        held(kv, [i * 4 + 10, i * 4 + 11, i * 4 + 12, i * 4 + 13], f"o{i}")
    kv.release(target)  # 6 of 10 in use > 0.3: the target's 2 blocks go to the CPU
    assert kv.offloads == 2
    kv.clock = reload_at
    for i in range(3):
        held(kv, [i * 2 + 100, i * 2 + 101], f"f{i}")
    again = req("retry", [1, 2, 3, 4])
    admit(kv, again)  # needs 2 blocks, 1 is free: fails, reloads, retries
    return again


def test_transfer_latency_accumulates_and_is_taken_once():  # BC-2 (transfers)
    kv = tiered(threshold=0.3, base=10)
    offload_target_then_fill(kv, 100, 2000)
    assert kv.cpu_hits == 2
    assert kv.take_transfer_latency() == 2 * (10 + math.ceil(2 / 100.0))
    assert kv.take_transfer_latency() == 0


@pytest.mark.parametrize("reload_at, thrashing", [(600, 1.0), (1099, 1.0), (1100, 0.0), (2000, 0.0)])
def test_thrashing_counts_reloads_within_1000_ticks(reload_at, thrashing):  # BC-6
    kv = tiered(threshold=0.3)
    offload_target_then_fill(kv, 100, reload_at)
    assert kv.thrashing_rate() == thrashing


@pytest.mark.parametrize("bandwidth", [0.0, -1.0, math.inf, math.nan])
def test_bandwidth_must_be_finite_and_positive(bandwidth):  # BC-11, BC-12
    with pytest.raises(ValueError, match="bandwidth"):
        tiered(bandwidth=bandwidth)
    with pytest.raises(ConfigError, match="--kv-transfer-bandwidth"):
        CPUTierConfig(10, bandwidth=bandwidth)


def test_lookups_leave_the_hit_rate_alone():
    kv = tiered(gpu=4, bandwidth=1.0, base=100)
    kv.release(held(kv, [1, 2, 3, 4], "r1"))
    before = kv.hit_rate()
    for _ in range(2):
        kv.cached_blocks(req("q", [1, 2, 3, 4]))
    assert kv.hit_rate() == before


# --- reload and retry ------------------------------------------------------------------


def test_reloads_go_in_block_order_into_the_head_free_block():
    """Each reload takes the head free block and rejoins the tail: with one free block the
    copies overwrite each other, and the copy of the highest block id is the one left."""
    kv = tiered(gpu=5, threshold=0.0)
    held(kv, [90, 91])  # block 0 stays in use, so use stays above 0
    a, b = held(kv, [1, 2], "a"), held(kv, [3, 4], "b")  # blocks 1 and 2
    kv.release(b)
    kv.release(a)
    assert kv.cpu_used == 2
    for i in range(3):
        held(kv, [50 + i, 60 + i], f"x{i}")  # 4 in use, 1 free
    assert not admit(kv, req("c", [1, 2, 3, 4]))  # 2 blocks: fails, reloads both, still fails
    assert kv.cpu_hits == 2 and kv.cpu_used == 0 and kv.thrashing == 2
    assert kv.cached_blocks(req("b?", [3, 4])) != []  # block 2's copy went last
    assert kv.cached_blocks(req("a?", [1, 2])) == []  # block 1's was overwritten
    kv.check()


def test_a_reload_skips_prefixes_already_on_the_gpu():
    kv = tiered(gpu=6, threshold=0.0)
    held(kv, [90, 91])
    kv.release(held(kv, [1, 2], "a"))
    assert kv.cpu_used == 1
    held(kv, [1, 2], "a2")  # computed afresh: the prefix is on the GPU again
    assert not admit(kv, req("big", range(200, 212)))  # fails; the copy's prefix is on the GPU
    assert kv.cpu_hits == 0 and kv.cpu_misses == 1 and kv.cpu_used == 1


def test_the_retry_starts_after_the_reloaded_prefix(monkeypatch):
    kv = tiered(gpu=8, threshold=0.0)
    held(kv, [90, 91])
    kv.release(held(kv, [1, 2, 3, 4], "a"))  # a's 2 blocks go to the CPU
    for i in range(5):
        held(kv, [60 + i, 70 + i], f"f{i}")  # 6 in use, 2 free
    calls = []
    allocate = KVCache.allocate
    monkeypatch.setattr(
        KVCache,
        "allocate",
        lambda self, r, start, end, cached: (
            calls.append((start, end, list(cached))),
            allocate(self, r, start, end, cached),
        )[1],
    )
    r = req("b", [1, 2, 3, 4, 5, 6])
    assert not admit(kv, r)  # 3 blocks, 2 free: fails; a's blocks come back
    assert kv.cpu_hits == 2
    back = kv.cached_blocks(r)
    assert len(back) == 2
    assert calls == [(0, 6, []), (4, 6, back)]  # retried after them (and failed: they are free)
    assert r.kv_blocks == []
    kv.check()


# --- reference defects, default fixes ------------------------------------------------------


def reoffload_same_block(kv):
    """Offload block 1, then reuse it and offload it again while the first copy is on the CPU."""
    held(kv, [90, 91])  # block 0
    kv.release(held(kv, [1, 2], "a"))  # block 1 -> CPU
    b = held(kv, [3, 4, 5, 6, 7, 8], "b")  # blocks 2, 3 and 1 again
    assert 1 in b.kv_blocks
    kv.release(b)  # all three go to the CPU, block 1's first


def test_reference_loses_a_cpu_block_when_a_gpu_block_is_offloaded_twice():
    kv = tiered(gpu=4, cpu=10, threshold=0.0, reference=True)
    reoffload_same_block(kv)
    assert kv.offloads == 4 and kv.cpu_used == 4
    assert len(kv._cpu) == 3  # block 1's first copy was replaced, its CPU block never freed
    assert kv.quirks == {"cpu_copy_replaced": 1}


def test_default_keeps_both_copies_and_counts_each_once():
    kv = tiered(gpu=4, cpu=10, threshold=0.0)
    reoffload_same_block(kv)
    assert kv.offloads == 4 and kv.cpu_used == len(kv._cpu) == 4
    assert not kv.quirks
    kv.check()


def holder_retry(reference):
    """A running request mid-prefill fails its next chunk; the reload brings back a longer
    copy of its prefix than it has computed."""
    kv = tiered(gpu=6, threshold=0.0, reference=reference)
    held(kv, [90, 91])  # block 0
    kv.release(held(kv, [1, 2, 3, 4, 5, 6], "d"))  # its 3 prefixes go to the CPU
    h = req("h", range(1, 9))
    assert kv.allocate(h, 0, 2, [])  # the first chunk: 1 block
    h.progress = h.computed = 2
    held(kv, [50, 51, 52, 53])  # 2 free blocks left
    return kv, h, kv.allocate(h, 2, 8, [])  # 3 blocks: fails, reloads 2 copies, retries


def test_reference_skips_a_holders_tokens_after_a_reload():
    kv, h, ok = holder_retry(reference=True)
    assert ok and len(h.kv_blocks) == 2  # 8 tokens in 2 blocks: tokens 2-5 have no KV
    assert kv.quirks == {"retry_skips_tokens": 1}


def test_default_does_not_retry_a_holder():
    kv, h, ok = holder_retry(reference=False)
    assert not ok and len(h.kv_blocks) == 1 and kv.cpu_hits == 2
    assert not kv.quirks
    kv.check()


def ragged(kv, rid):
    """A request holding blocks prefills again from 0 (a reference path): after its partial
    block fills, each new full block ends off a block boundary of the input."""
    r = req(rid, range(1, 8))
    assert kv.allocate(r, 0, 3, [])  # [1 2] [3 _]
    assert kv.allocate(r, 0, 7, [])  # [3 1] then [2 3] [4 5] [6 7]: input prefixes of 3, 5, 7
    return r


def test_off_boundary_prefixes_are_keyed_by_their_tokens():
    kv = KVCache(20, 2, reference_rollback=True)
    a, b = ragged(kv, "a"), ragged(kv, "b")
    ka, kb = [kv.hash[x] for x in a.kv_blocks[2:]], [kv.hash[x] for x in b.kv_blocks[2:]]
    assert ka == kb and len(set(ka)) == 3  # BLIS hashes the input's first 3, 5 and 7 tokens
    assert all(kv.hash_to_block[k] == x for k, x in zip(kb, b.kv_blocks[2:]))
    assert not set(ka) & {kv.hash[x] for x in a.kv_blocks[:2]}
    assert kv.cached_blocks(req("c", range(1, 8))) == [b.kv_blocks[0]]  # no lookup meets them


def test_a_reload_skips_off_boundary_prefixes_back_on_the_gpu():
    """Copies of a request's off-boundary blocks stay on the CPU once the same prefixes are on
    the GPU again: BLIS keys them by their tokens, so they are found there."""
    kv = tiered(gpu=8, threshold=0.0, reference=True)
    held(kv, [90, 91])
    kv.release(ragged(kv, "a"))
    assert kv.cpu_used == 5
    ragged(kv, "b")  # the same five prefixes, on the GPU: 2 blocks left free
    assert not admit(kv, req("big", range(200, 206)))
    assert kv.cpu_hits == 0 and kv.cpu_misses == 1 and kv.cpu_used == 5


# --- whole runs ------------------------------------------------------------------------


def tiered_config(cpu_tier: CPUTierConfig, fast=False, **kw):
    """``testkit.sim.config`` with a CPU tier; ``fast``: steps well under 1000 ticks, so reloads
    of blocks offloaded a step earlier count as thrashing."""
    cfg = config(**kw)
    engine = replace(cfg.engine, cpu_tier=cpu_tier)
    if fast:
        engine = replace(engine, alpha=(100.0, 1.0, 1.0), beta=(300.0, 0.5, 2.0))
    return replace(cfg, engine=engine)


# Prefix-heavy, KV-starved: offloads, reloads, preemptions.
BUSY = dict(
    rate=300.0,
    n=200,
    prefix_tokens=256,
    prompt_mean=200,
    prompt_stdev=50,
    prompt_min=100,
    prompt_max=300,
    output_mean=40,
    output_stdev=20,
    output_min=1,
    output_max=80,
)
# With fast steps and short outputs: thrashing, and no preemption.
THRASH = (
    dict(total_kv_blocks=60, max_scheduled_tokens=100000),
    CPUTierConfig(8, offload_threshold=0.5, bandwidth=1.0),
    dict(
        rate=10000.0,
        n=200,
        prefix_tokens=64,
        prompt_mean=128,
        prompt_stdev=0,
        prompt_min=0,
        output_mean=8,
        output_stdev=0,
        output_min=0,
    ),
)
# One that BLIS's leak does not livelock, with two of its tiered defects.
REFERENCE = (
    dict(total_kv_blocks=120, long_prefill_threshold=128, max_scheduled_tokens=512),
    CPUTierConfig(8, offload_threshold=0.8, base_latency=100),
    dict(
        rate=100.0,
        n=200,
        prefix_tokens=256,
        prompt_mean=300,
        prompt_stdev=0,
        prompt_min=0,
        output_mean=4,
        output_stdev=0,
        output_min=0,
    ),
)


def checked_at_every_step(sim, leaks=False):
    """After every step the books balance (GPU used + free == total; in our default, CPU used ==
    copies held <= capacity) and, unless BLIS's leak is on, live requests hold every reference."""
    for inst in sim.instances:
        original = inst.step

        def step(now, inst=inst, original=original):
            original(now)
            kv = inst.kv
            kv.check()
            if not leaks:
                holders = list(inst.running) + list(inst.waitq)
                assert sum(len(r.kv_blocks) for r in holders) == sum(kv.ref_count)

        inst.step = step


@pytest.mark.parametrize("reference", [False, True])
def test_books_balance_at_every_step(reference):
    if reference:
        cfg_kw, tier, wl = REFERENCE
        cfg = tiered_config(tier, reference_kv=True, **cfg_kw)
    else:
        wl = BUSY
        cfg = tiered_config(
            CPUTierConfig(30, offload_threshold=0.5, base_latency=50),
            total_kv_blocks=150,
            num_instances=2,
            max_scheduled_tokens=100000,
        )
    requests = workload(**wl)
    sim = simulator(cfg, requests)
    checked_at_every_step(sim, leaks=reference)
    result = sim.run()
    assert result.accounted == len(requests)
    kvs = [inst.kv for inst in sim.instances]
    assert sum(kv.offloads for kv in kvs) > 0 and sum(kv.cpu_hits for kv in kvs) > 0
    assert result.aggregate.preemptions > 0
    if reference:  # BLIS's CPU leak and token skip, reproduced
        assert set(kvs[0].quirks) == {"cpu_copy_replaced", "retry_skips_tokens"}
        assert kvs[0].cpu_used > len(kvs[0]._cpu)


def run_metrics(cfg, requests):
    """The printed metrics and each instance's (cache hit rate, thrashing rate)."""
    sim = simulator(cfg, requests)
    result = sim.run()
    return result_metrics(result), [(m.cache_hit_rate, m.kv_thrashing_rate) for m in result.instances], sim


def test_runs_are_deterministic():
    cfg_kw, tier, wl = THRASH
    cfg = tiered_config(tier, fast=True, **cfg_kw)
    first = run_metrics(cfg, workload(**wl))
    second = run_metrics(cfg, workload(**wl))
    assert first[:2] == second[:2]
    assert first[1][0][1] > 0.9  # nearly every offloaded block came back a step later


def test_a_tier_that_never_offloads_changes_nothing():
    """Threshold 1: use never exceeds it. With no failed allocation the run is the single-tier
    run, hit rate included; under pressure only the hit rate differs (BLIS counts each failed
    allocation as a CPU miss)."""
    never = CPUTierConfig(100, offload_threshold=1.0)
    light = dict(rate=20.0, n=100, prefix_tokens=128)
    single = run_metrics(config(num_instances=2), workload(**light))
    assert run_metrics(tiered_config(never, num_instances=2), workload(**light))[:2] == single[:2]
    single = run_metrics(config(total_kv_blocks=150, num_instances=2), workload(**BUSY))
    tier = run_metrics(tiered_config(never, total_kv_blocks=150, num_instances=2), workload(**BUSY))
    assert tier[0] == single[0]
    assert [r[0] for r in tier[1]] != [r[0] for r in single[1]]
    assert all(inst.kv.cpu_misses and not inst.kv.offloads for inst in tier[2].instances)


def test_private_decoding_changes_nothing(monkeypatch):
    """Private decoders key their decode blocks at release rather than as each fills, and claim
    them out of batch order only when that cannot change which block goes to whom: the run must
    be the run in which every request keys its blocks as BLIS does."""
    cfg = tiered_config(CPUTierConfig(20, offload_threshold=0.3, base_latency=20), total_kv_blocks=300, num_instances=2)
    wl = dict(BUSY, output_mean=120, output_stdev=60, output_max=240, prefix_groups=4)
    requests = workload(**wl)
    simulator(cfg, requests)  # marks them
    assert sum(r.private_decode for r in requests) > len(requests) // 2
    fast = run_metrics(cfg, workload(**wl))
    assert fast[0]["cluster"]["preemption_count"] > 0
    assert all(inst.kv.cpu_hits for inst in fast[2].instances)
    monkeypatch.setattr(cluster_sim, "mark_private_decodes", lambda reqs, bs, unique=False: None)
    plain = run_metrics(cfg, workload(**wl))
    assert fast[:2] == plain[:2]


def privates(requests, unique) -> list[bool]:
    mark_private_decodes(requests, 4, unique=unique)
    return [r.private_decode for r in requests]


def test_with_a_cpu_tier_private_decoders_own_their_decode_prefixes():
    """With a tier, a private decoder's decode blocks must be the only blocks that ever hold their
    prefixes (block size 4: the first decode block of a 10-token input ends at 12 tokens)."""
    same = [req("p", range(10), [1, 2]), req("q", range(10), [1, 2, 3])]  # equal first 12 tokens
    assert privates(same, unique=False) == [True, True]  # no lookup reaches them
    assert privates(same, unique=True) == [False, False]  # but they share a prefix
    apart = [req("p", range(10), [1, 2]), req("q", range(10), [5, 6])]
    assert privates(apart, unique=True) == [True, True]
    through = [req("x", range(10), [50, 51]), req("y", [*range(10), 50, 51, 60, 61], [9])]
    assert privates(through, unique=False) == privates(through, unique=True) == [False, True]
    short = [req("s", [7], [8, 9, 10]), req("t", [7, 8, 9, 10, 11], [1])]  # t's input holds s's block
    assert privates(short, unique=True) == [False, True]


def test_unshared_prefixes_reads_its_arrays_in_chunks():
    rng = np.random.default_rng(3)
    base = rng.integers(0, 50, 40)
    arrays = [
        np.concatenate((base[: rng.integers(0, 40)], rng.integers(0, 3, rng.integers(0, 12)))) for _ in range(60)
    ]  # many share a prefix, some fully
    depths = [int(d) for d in rng.integers(0, 12, 60)]

    def alone(i):
        end = (depths[i] + 1) * 4
        a = arrays[i]
        return len(a) < end or not any(
            len(b) >= end and (b[:end] == a[:end]).all() for j, b in enumerate(arrays) if j != i
        )

    want = [alone(i) for i in range(60)]
    assert False in want and True in want
    for chunk in (1, 7, 512):
        assert unshared_prefixes(iter(arrays), 4, depths, chunk) == want


def test_a_fork_of_a_tiered_run_continues_identically():
    cfg_kw, tier, wl = THRASH
    cfg = tiered_config(tier, fast=True, num_instances=2, **cfg_kw)
    plan = answers(400)
    unforked = finish(paused_sim(cfg, workload(**wl), plan, 60), plan, 60)
    sim = paused_sim(cfg, workload(**wl), plan, 60)
    fork = sim.fork()
    assert finish(fork, plan, 60) == unforked
    assert finish(sim, plan, 60) == unforked


# --- where BLIS's tiered mode fails ------------------------------------------------------------

# BLIS panics ("slice bounds out of range [256:128]"): a reload makes a running request's
# lookup reach past the chunk it is allocating, and BLIS slices from there.
CRASH = (
    dict(total_kv_blocks=150, long_prefill_threshold=128),
    CPUTierConfig(50, offload_threshold=0.5, base_latency=30),
    dict(
        rate=300.0,
        n=300,
        prefix_tokens=256,
        prompt_mean=200,
        prompt_stdev=0,
        prompt_min=0,
        output_mean=8,
        output_stdev=0,
        output_min=0,
    ),
)
# BLIS loops for ever: a final-token allocation fails, its blocks leak, the cache shrinks.
HANG = (
    dict(total_kv_blocks=60, num_instances=2, max_scheduled_tokens=100000),
    CPUTierConfig(8, offload_threshold=0.0, base_latency=10),
    dict(
        rate=10000.0,
        n=100,
        prefix_tokens=256,
        prompt_mean=300,
        prompt_stdev=75,
        prompt_min=0,
        output_mean=2,
        output_stdev=0,
        output_min=0,
    ),
)


@pytest.mark.parametrize("cfg_kw, tier, wl", [CRASH, HANG], ids=["blis-crash", "blis-hang"])
def test_runs_blis_cannot_finish_end_with_everything_accounted(cfg_kw, tier, wl):
    requests = workload(**wl)
    sim = simulator(tiered_config(tier, **cfg_kw), requests)
    checked_at_every_step(sim)
    result = sim.run()
    a = result.aggregate
    assert a.completed + a.still_queued + a.still_running + a.dropped_unservable == len(requests)
    assert a.completed == len(requests)
    for inst in sim.instances:
        assert inst.kv.used == 0 and inst.kv.cpu_used == len(inst.kv._cpu)


def test_reference_mode_reaches_the_spot_where_blis_crashes():
    cfg_kw, tier, wl = CRASH
    sim = simulator(tiered_config(tier, reference_kv=True, **cfg_kw), workload(**wl))
    sim.run()
    assert sim.instances[0].kv.quirks.get("retry_past_end")
