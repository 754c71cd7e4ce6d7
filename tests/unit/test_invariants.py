"""Named invariants: request conservation, KV block conservation, termination, determinism."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from test_disaggregation import SHARED_POOL_TIGHT
from testkit import metric_blocks
from testkit.sim import config, random_run_options, roofline_spec, run_and_check, simulator, workload

from blis_gym.engine.blockhash import prefix_keys, prefix_keys_many
from blis_gym.engine.request import Request

# A KV-starved shape: many preemptions, and the reference's block leak.
PRESSURE = dict(
    prompt_mean=550,
    prompt_stdev=300,
    prompt_min=300,
    prompt_max=800,
    output_mean=400,
    output_stdev=200,
    output_min=200,
    output_max=600,
)


def balanced_books(sim):
    """After every step: the cache's books balance and every reference is held by a live request."""
    for inst in sim.instances:
        original = inst.step

        def checked(now, inst=inst, original=original):
            original(now)
            inst.kv.check()
            holders = list(inst.running) + list(inst.waitq)
            assert sum(len(r.kv_blocks) for r in holders) == sum(inst.kv.ref_count), "leaked block references"

        inst.step = checked


@pytest.mark.parametrize(
    "cfg_kw,wl_kw",
    [
        ({}, dict(rate=20, n=200)),
        ({"num_instances": 3, "horizon": 2_000_000}, dict(rate=80, n=300)),
        ({"total_kv_blocks": 4000, "num_instances": 2}, dict(rate=80, n=200, **PRESSURE)),
        (
            {"total_kv_blocks": 60},
            dict(
                rate=5,
                n=40,
                prompt_mean=600,
                prompt_stdev=400,
                prompt_min=50,
                prompt_max=1500,
                output_mean=5,
                output_stdev=3,
                output_min=2,
                output_max=10,
            ),
        ),
    ],
)
def test_request_conservation(cfg_kw, wl_kw):
    requests = workload(**wl_kw)
    result = simulator(config(**cfg_kw), requests).run()
    agg = result.aggregate
    assert result.accounted == len(requests)
    if "horizon" not in cfg_kw:  # nothing is cut short: every request completes or is dropped
        assert agg.completed + agg.dropped_unservable == len(requests)
        assert agg.still_queued == agg.still_running == 0
    # Each instance accounts for the requests routed to it, but those still in transit.
    routed = [sum(1 for r in requests if r.assigned == iid) for iid in result.instance_ids]
    injected = [m.injected for m in result.instances]
    assert all(i <= r for i, r in zip(injected, routed))
    assert sum(routed) - sum(injected) == result.in_transit
    if "horizon" not in cfg_kw:
        assert injected == routed


def test_kv_books_balance_at_every_step_under_pressure():
    sim = simulator(config(total_kv_blocks=4000, num_instances=2), workload(rate=80, n=200, **PRESSURE))
    balanced_books(sim)
    result = sim.run()
    assert result.aggregate.preemptions > 20
    assert result.aggregate.completed == 200
    for inst in sim.instances:
        assert inst.kv.used == 0, "blocks still held after every request finished"


def test_reference_mode_leaks_blocks_where_ours_does_not():
    """The reference loses the blocks of a request whose decode allocation fails (a bug we repair)."""
    reqs = lambda: workload(rate=40, n=100, **PRESSURE)  # noqa: E731
    leaky = simulator(config(total_kv_blocks=4000, reference_kv=True), reqs())
    leaky.run()
    ours = simulator(config(total_kv_blocks=4000), reqs())
    ours.run()
    assert leaky.instances[0].kv.used > 0
    assert ours.instances[0].kv.used == 0


def test_reference_livelock_case_terminates():
    """BLIS livelocks here ("KV cache full: cannot allocate 1 new blocks" forever); we finish."""
    reqs = workload(rate=30, n=400, prompt_mean=700, output_mean=600)
    sim = simulator(config(total_kv_blocks=900), reqs)
    balanced_books(sim)
    result = sim.run()
    assert result.aggregate.completed == 400
    assert sim.instances[0].kv.used == 0


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_request_that_can_never_fit_is_dropped_with_a_warning():
    # 64 blocks of 16 tokens = 1024 tokens; request_1 needs 900 + 300 - 1 tokens at once.
    reqs = [
        Request("request_0", 0, 0, list(range(100)), list(range(50))),
        Request("request_1", 1, 10, list(range(900)), list(range(300))),
        Request("request_2", 2, 20, list(range(200)), list(range(40))),
    ]
    logger = logging.getLogger("blis_gym")
    collect = _Collect()
    logger.addHandler(collect)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        result = simulator(config(total_kv_blocks=64), reqs).run()
    finally:
        logger.removeHandler(collect)
        logger.setLevel(level)
    assert result.aggregate.dropped_unservable == 1
    assert result.aggregate.completed == 2
    assert "request_1" not in result.aggregate.requests
    assert any("request_1" in m for m in collect.messages)


def test_request_with_no_tokens_is_dropped_and_the_run_ends():
    """BLIS crashes on a request with neither input nor output tokens (a trace row "[]","[]" or a
    0-token empirical bin); we drop it at its instance. One side empty is a normal request."""
    reqs = [
        Request("request_0", 0, 0, list(range(100)), list(range(50))),
        Request("request_1", 1, 10, [], []),
        Request("request_2", 2, 20, [], list(range(7))),
        Request("request_3", 3, 30, list(range(40)), []),
    ]
    result = simulator(config(num_instances=2), reqs).run()
    assert result.aggregate.dropped_unservable == 1
    assert result.aggregate.completed == 3
    assert "request_1" not in result.aggregate.requests


def test_same_seed_same_bytes(blis, tmp_path):
    args = [
        "run",
        "--model",
        "meta-llama/llama-3.1-8b-instruct",
        "--num-instances",
        "2",
        "--rate",
        "40",
        "--num-requests",
        "150",
        "--log",
        "error",
    ]
    outs = []
    for i in range(2):
        path = tmp_path / f"r{i}.json"
        code, out, _ = blis(*args, "--results-path", str(path))
        assert code == 0
        outs.append((out, path.read_bytes()))
    assert outs[0] == outs[1]
    code, other, _ = blis(*args, "--seed", "43")
    assert code == 0
    assert metric_blocks(other) != metric_blocks(outs[0][0])  # another workload, other figures


def test_preempted_requests_do_not_starve_the_batch():
    """BLIS lets a request preempted mid-step reserve KV while it waits; here that starved
    request_0 (which needs 72 of 80 blocks) for ever. We finish, every block returned."""
    reqs = workload(
        rate=100,
        n=60,
        seed=0,
        prompt_mean=533,
        prompt_stdev=200,
        prompt_min=2,
        prompt_max=1066,
        output_mean=460,
        output_stdev=100,
        output_min=1,
        output_max=920,
    )
    sim = simulator(config(total_kv_blocks=80, max_scheduled_tokens=512), reqs)
    balanced_books(sim)
    result = sim.run()
    assert result.aggregate.completed + result.aggregate.dropped_unservable == 60
    assert sim.instances[0].kv.used == 0


@pytest.mark.parametrize("trial", range(12))
def test_random_tight_configurations_terminate_with_balanced_books(trial):
    import random

    rnd = random.Random(trial)
    pm, om = rnd.randint(20, 600), rnd.randint(1, 400)
    cfg = config(
        total_kv_blocks=rnd.choice([40, 80, 150, 300]),
        num_instances=rnd.choice([1, 2]),
        long_prefill_threshold=rnd.choice([0, 16, 128]),
        max_scheduled_tokens=rnd.choice([64, 512, 2048]),
        max_running=rnd.choice([2, 256]),
        block_size=rnd.choice([4, 16]),
    )
    reqs = workload(
        rate=rnd.choice([10, 100, 1000]),
        n=30,
        seed=trial,
        prefix_tokens=rnd.choice([0, 64]),
        prompt_mean=pm,
        prompt_stdev=min(pm, 200),
        prompt_min=1,
        prompt_max=2 * pm,
        output_mean=om,
        output_stdev=min(om, 100),
        output_min=0,
        output_max=2 * om,
    )
    sim = simulator(cfg, reqs)
    balanced_books(sim)
    result = sim.run()
    assert result.accounted == 30
    assert result.aggregate.completed + result.aggregate.dropped_unservable == 30
    assert all(inst.kv.used == 0 for inst in sim.instances)


def test_empty_batch_stall_drops_the_head_instead_of_spinning():
    """Safety net: if a request that cannot fit reaches the queue head anyway, it is dropped."""
    sim = simulator(config(total_kv_blocks=4), [])
    inst = sim.instances[0]
    big = Request("request_0", 0, 0, list(range(200)), list(range(5)))
    small = Request("request_1", 1, 0, list(range(20)), list(range(5)))
    inst.metrics.register(big)
    inst.metrics.register(small)
    inst.waitq.extend([big, small])  # bypasses enqueue's size check on purpose
    inst.step(0)
    assert inst.metrics.dropped_unservable == 1 and "request_0" not in inst.metrics.requests
    assert list(inst.waitq) == [small] and inst.step_pending
    while inst.has_events():
        inst.process_next()
    assert inst.metrics.completed == 1 and inst.kv.used == 0


def _no_private_decodes(monkeypatch):
    """Every request keeps keying and registering its decode blocks (privacy off)."""
    import blis_gym.cluster.simulator as simulator_module

    monkeypatch.setattr(simulator_module, "mark_private_decodes", lambda requests, block_size: None)


def _multi_turn(n=40, seed=3):
    """Each request after the first repeats an earlier request's input and output as its prefix:
    their decode blocks can be hit by later lookups, so they must not be private."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        if i and rng.random() < 0.6:
            base = out[int(rng.integers(0, i))]
            tokens = np.concatenate((base.input, base.output, rng.integers(0, 128000, 20)))
        else:
            tokens = rng.integers(0, 128000, int(rng.integers(20, 200)))
        out.append(Request(f"request_{i}", i, i * 30_000, tokens, rng.integers(0, 128000, int(rng.integers(1, 90)))))
    return out


LAZY_CASES = [
    ({"num_instances": 2}, {"rate": 40, "n": 150}),
    ({"total_kv_blocks": 900, "max_running": 24}, {"rate": 30, "n": 120, "prompt_mean": 500, "output_mean": 300}),
    ({"long_prefill_threshold": 96, "max_scheduled_tokens": 256}, {"rate": 25, "n": 100}),
    ({"num_instances": 3, "horizon": 2_000_000}, {"rate": 200, "n": 400}),
    ({"block_size": 1}, {"rate": 20, "n": 40, "prompt_mean": 40, "output_mean": 20}),
    # A shared prefix (prefix hits) under KV pressure: bulk block claims, fallbacks, preemptions.
    ({"total_kv_blocks": 3000, "num_instances": 2}, dict(rate=80, n=200, prefix_tokens=96, **PRESSURE)),
    ({"num_instances": 2, "block_size": 8}, dict(rate=300, n=300, prefix_tokens=64)),
]


@pytest.mark.parametrize("step_model", ["blackbox", "roofline"])
@pytest.mark.parametrize("cfg_kw, wl_kw", LAZY_CASES)
def test_lazy_decoding_changes_nothing(cfg_kw, wl_kw, step_model, monkeypatch):
    """Lazy decoding (mid-block steps in bulk, private decoders' blocks claimed in bulk) and
    skipping private decode blocks' keys give exactly what stepping every request and keying
    every block gives. Roofline step times, which read each decoder's context, included."""
    from blis_gym.report.render import results_json, stdout_text

    if step_model == "roofline":
        cfg_kw = {**cfg_kw, "roofline": roofline_spec(tp=2)}
    texts = []
    for private, lazy in ((True, True), (True, False), (False, False)):
        if not private:
            _no_private_decodes(monkeypatch)
        sim = simulator(config(**cfg_kw), workload(**wl_kw))
        for inst in sim.instances:
            inst.lazy_enabled = lazy
        result = sim.run()
        texts.append((stdout_text(result), results_json(result)))
    assert texts[0] == texts[1] == texts[2]


def test_multi_turn_decode_blocks_are_not_private_and_their_hits_count(monkeypatch):
    """A request whose input holds another's input and output reaches that one's decode blocks
    through the prefix cache. The earlier request is not private and the run matches the one
    with privacy off (every decode block keyed); wrongly making everyone private would lose
    those cache hits."""
    import blis_gym.cluster.simulator as simulator_module
    from blis_gym.engine.kvcache import mark_private_decodes
    from blis_gym.report.render import stdout_text

    reqs = _multi_turn()
    mark_private_decodes(reqs, 16)
    reused = [
        r
        for r in reqs
        if any(
            b is not r and len(b.input) >= len(r.input) + 16 and (b.input[: len(r.input)] == r.input).all()
            for b in reqs
        )
    ]
    assert reused and not any(r.private_decode for r in reused)
    assert any(r.private_decode for r in reqs)

    def run(mark):
        monkeypatch.setattr(simulator_module, "mark_private_decodes", mark)
        result = simulator(config(total_kv_blocks=400), _multi_turn()).run()
        return stdout_text(result), result.instances[0].cache_hit_rate

    def everyone_private(requests, block_size):
        for r in requests:
            r.private_decode = True

    computed, hits = run(mark_private_decodes)
    keyed, keyed_hits = run(lambda requests, block_size: None)
    wrong, wrong_hits = run(everyone_private)
    assert computed == keyed and hits == keyed_hits
    assert wrong_hits < hits


def test_the_hot_loop_leaves_no_cyclic_garbage():
    """The garbage collector is paused in the event loop (blis_gym.gcpause): that is only
    sound while the loop makes no reference cycles, which this checks."""
    import gc

    while gc.collect():  # earlier tests' garbage (a freed chart's callbacks free more on a second pass)
        pass
    gc.disable()
    try:
        sim = simulator(config(total_kv_blocks=4000, num_instances=2), workload(rate=80, n=200, **PRESSURE))
        sim.run()
        del sim
        found = gc.collect()
    finally:
        gc.enable()
    assert found == 0


def test_free_list_keeps_lru_order_with_prefix_hits_and_stays_compact():
    """Freed blocks queue at the back; a prefix hit takes a free block out of the middle. The
    cache's free list must read as one ordered LRU list would, step by step, and lazily removed
    entries must not pile up."""
    from collections import OrderedDict

    import numpy as np

    from blis_gym.engine.kvcache import KVCache

    kv = KVCache(total_blocks=64, block_size=4)
    model = OrderedDict.fromkeys(range(64))  # head first
    rng = np.random.default_rng(5)
    prompts = [rng.integers(0, 1000, 4 * int(rng.integers(1, 5))) for _ in range(8)]
    live: list[Request] = []
    held: dict[str, list[int]] = {}
    for i in range(4000):
        if live and (len(live) > 6 or rng.random() < 0.5):
            req = live.pop(int(rng.integers(0, len(live))))
            before = list(kv.ref_count)
            kv.release(req)
            model.update((b, None) for b in reversed(held.pop(req.id)) if before[b] == 1)
        else:
            req = Request(f"r{i}", i, 0, prompts[int(rng.integers(0, 8))], [1])
            cached = kv.cached_blocks(req)
            if len(cached) * 4 == req.n_in:
                cached = cached[:-1]  # leave one block to compute, so the prefix is attached
            if not kv.allocate(req, len(cached) * 4, req.n_in, cached):
                continue
            for b in cached:
                model.pop(b, None)  # a hit on a free block takes it out of the middle
            new = req.kv_blocks[len(cached) :]
            assert new == list(model)[: len(new)]  # claims take the head
            for b in new:
                del model[b]
            held[req.id] = list(req.kv_blocks)
            live.append(req)
        assert kv.free_list() == list(model)
    kv.check()
    # A large cache never reuses freed blocks, while hits keep taking them back: the queue
    # of lazily removed entries is compacted instead of growing with every hit.
    kv = KVCache(total_blocks=100_000, block_size=4)
    prompt = max(prompts, key=len)  # several blocks: most of each release comes back as a hit
    for i in range(5000):
        req = Request(f"s{i}", i, 0, prompt, [1])
        cached = kv.cached_blocks(req)[: len(prompt) // 4 - 1]
        assert kv.allocate(req, len(cached) * 4, req.n_in, cached)
        kv.release(req)
        live = kv.hw - kv.used - len(kv.front)  # free blocks that were used once
        assert len(kv.back) <= 2 * live + 1025
    assert len(kv.free_list()) == kv.total
    kv.check()


def test_bulk_prefix_keys_equal_one_by_one_keys_and_share_the_common_head():
    """prefix_keys_many gives each input exactly prefix_keys' lists, whatever prefix the
    inputs share with the first (none, part of a block, some blocks, all of it, more)."""
    rng = np.random.default_rng(5)
    for _ in range(300):
        bs = int(rng.integers(1, 6))
        head = rng.integers(0, 4, int(rng.integers(0, 30)))
        arrays = [
            np.concatenate(
                (head[: int(rng.integers(0, len(head) + 1))], rng.integers(0, 4, int(rng.integers(0, 20))))
            ).astype(np.int64)
            for _ in range(int(rng.integers(1, 8)))
        ]
        for a, got in zip(arrays, prefix_keys_many(arrays, bs)):
            assert got == prefix_keys(a, bs)
    # A shared system prompt's keys are the same int objects in every list.
    head = np.arange(64, dtype=np.int64)
    many = prefix_keys_many([np.concatenate((head, np.full(k, k, dtype=np.int64))) for k in (5, 16, 40)], 16)
    assert all(keys[:4] == many[0][0][:4] and all(x is y for x, y in zip(keys[:4], many[0][0])) for keys, _ in many)


@pytest.mark.parametrize("trial", range(12))
def test_random_roofline_and_tiered_runs_terminate_with_everything_accounted(trial):
    """The first 12 of the randomized sweep (``tests/bench/fuzz_runs.py`` runs 200+): roofline
    on random models, GPUs and TPs, CPU KV tiers, caches sized near the longest request."""
    run_and_check(random_run_options(trial))


def test_written_out_block_multipliers_are_the_generators():
    """The first 64 block-key multipliers are a table (no random generator at start-up); they are
    the generator's own, and a longer draw starts with them."""
    import numpy as np

    from blis_gym.engine import blockhash

    def drawn(n):
        return np.random.default_rng(0xB10C).integers(0, 1 << 63, n, dtype=np.uint64) * np.uint64(2) + np.uint64(1)

    for n in (1, 4, 16, 63, 64):
        assert np.array_equal(blockhash._multipliers(n), drawn(n))
    assert np.array_equal(blockhash._multipliers(100)[:64], blockhash._FIRST_MULTIPLIERS)


@pytest.mark.parametrize("views", [False, True])
def test_bulk_claims_of_freed_blocks_equal_the_block_loop(views):
    """A cache small enough to recycle blocks all run: the bulk path for freed blocks gives the
    very results (and block ids) of the block-by-block loop; with stale cache views read (their
    tables journaled), the same."""
    from blis_gym.cluster.simulator import ClusterSimulator
    from blis_gym.plan import RunOptions, resolve
    from blis_gym.report.render import stdout_text

    def run(bulk: bool):
        o = RunOptions(
            model="meta-llama/llama-3.1-8b-instruct",
            num_instances=2,
            num_requests=400,
            rate=30.0,
            total_kv_blocks=3000,
            prefix_tokens=200,
            prefix_groups=3,
            log="error",
            routing_policy="weighted" if views else "round-robin",
            routing_scorers="precise-prefix-cache:2,queue-depth:1" if views else "",
        )
        plan = resolve(o)
        sim = ClusterSimulator.from_config(plan.config, plan.requests)
        for inst in sim.instances:
            inst.kv.bulk_recycle = bulk
        r = sim.run()
        tables = [dict(inst.kv.hash_to_block) for inst in sim.instances]
        return stdout_text(r), tables, [list(inst.kv.back) for inst in sim.instances]

    fast, slow = run(True), run(False)
    assert fast == slow


def test_journaled_table_answers_as_a_copy_taken_at_the_mark():
    """Random writes (one at a time and in bulk, with repeated keys) between marks: ``had`` agrees
    with a copy of the table taken at the last mark, for every key ever used."""
    from blis_gym.engine.kvcache import JournaledTable

    rng = np.random.default_rng(7)
    table, plain = JournaledTable(), {}
    at_mark = {}
    for _ in range(300):
        op = rng.integers(5)
        keys = [int(k) for k in rng.integers(0, 40, size=rng.integers(1, 8))]
        if op == 0:
            table.update(zip(keys, range(len(keys))))
            plain.update(zip(keys, range(len(keys))))
        elif op == 1:
            table.record(keys)
            for k in keys:
                dict.pop(table, k, None)
                plain.pop(k, None)
        elif op == 2:
            table[keys[0]] = 1
            plain[keys[0]] = 1
        elif op == 3:
            table.pop(keys[0], None)
            plain.pop(keys[0], None)
        else:
            table.mark()
            at_mark = dict(plain)
        assert dict(table) == plain
        assert all(table.had(k) == (k in at_mark) for k in range(40))


def _runs_with_and_without_deferral(monkeypatch, opts):
    """stdout of ``opts`` with unshared prompts' registration deferred, and with every prompt
    registered as it is filled (the reference's way)."""
    from blis_gym.cluster import simulator as simulator_module
    from blis_gym.plan import resolve, simulate
    from blis_gym.report.render import stdout_text

    out = []
    for defer in (True, False):
        with monkeypatch.context() as m:
            if not defer:
                m.setattr(simulator_module, "mark_unshared_prompts", lambda requests, block_size: None)
            plan = resolve(opts)
            result = simulate(plan)
            assert result.accounted == len(plan.requests)
            out.append(stdout_text(result))
    return out


@pytest.mark.parametrize("trial", range(24))
def test_deferring_unshared_prompts_changes_nothing(trial, monkeypatch):
    """Random clusters (tight caches that preempt, chunked prefill, shared prefixes in some,
    random routing) with and without deferred registration print the same bytes."""
    from dataclasses import replace

    opts = random_run_options(trial)
    opts = replace(opts, kv_cpu_blocks=0)  # deferral is off with a CPU tier
    if trial % 3 == 0:
        opts = replace(opts, preemption_policy="priority")
    deferred, registered = _runs_with_and_without_deferral(monkeypatch, opts)
    assert deferred == registered


@pytest.mark.parametrize(
    "kw",
    [
        dict(workload_spec="chat-sessions", num_requests=120, num_instances=2, total_kv_blocks=2500),
        dict(workload_spec="mixed-slo", num_requests=150, num_instances=2, total_kv_blocks=600),
        dict(
            num_instances=4,
            prefill_instances=2,
            decode_instances=2,
            pd_decider="prefix-threshold",
            num_requests=120,
            rate=40.0,
            prompt_tokens=1500,
            prompt_tokens_stdev=500,
            prompt_tokens_min=16,
            prompt_tokens_max=3000,
            total_kv_blocks=700,
            routing_policy="weighted",
            routing_scorers="precise-prefix-cache:2,queue-depth:1",
            cache_signal_delay=20000,
        ),
        SHARED_POOL_TIGHT,
    ],
    ids=["sessions", "tight-slo-classes", "pd-stale-views", "pd-shared-pool"],
)
def test_deferring_unshared_prompts_changes_nothing_with_sessions_and_pools(kw, monkeypatch):
    from blis_gym.plan import RunOptions

    opts = RunOptions(model="meta-llama/llama-3.1-8b-instruct", log="error", seed=5, **kw)
    deferred, registered = _runs_with_and_without_deferral(monkeypatch, replace_explicit(opts))
    assert deferred == registered


def replace_explicit(opts):
    from dataclasses import fields, replace

    return replace(opts, explicit=frozenset(f.name for f in fields(opts)) - {"explicit"})
