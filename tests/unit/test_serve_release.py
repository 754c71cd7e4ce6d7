"""``blis serve``'s engine without HTTP: nothing of a finished request is kept (the simulator's
per-request tables emptied, its step ITL series rebased) while every token still comes at the
simulator's time, and a cancelled request leaves the simulation with its KV blocks freed,
wherever it is (queued, running, or still on its way to an instance).

The engine runs in real time, in an asyncio loop of this process; each test is bounded."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from blis_gym.cluster.simulator import ClusterSimulator
from blis_gym.engine.request import Request
from blis_gym.plan import RunOptions, resolve
from blis_gym.serve import realtime
from blis_gym.serve.realtime import Cancelled, RealtimeEngine

MODEL = "meta-llama/llama-3.1-8b-instruct"
pytestmark = pytest.mark.timeout(120)


def _tables(engine: RealtimeEngine) -> list[int]:
    """Sizes of every instance's per-request metric tables."""
    return [len(t) for inst in engine.sim.instances for t in realtime._instance_metrics_tables(inst.metrics)]


async def _one(engine: RealtimeEngine, n_in: int, n_out: int, delay_s: float):
    await asyncio.sleep(delay_s)
    stream = engine.submit(engine.ids.text(f"Token count: {n_in}"), n_out)
    await stream.ready()
    got = 0
    while n := await stream.tokens():
        got += n
    await stream.finished()
    assert got == n_out
    return stream


def _expected_ticks(req: Request, metrics) -> list[int]:
    """Release ticks of each token of ``req`` after an offline run (uncompacted series)."""
    steps = req.itl_steps
    idx = [i for a, b in zip(steps[::2], steps[1::2]) for i in range(a, b)]
    t = req.arrival + req.first_token_time
    out = [t]
    for i in idx[: req.n_out - 1]:
        t += metrics.step_itl(i)
        out.append(t)
    return out


def test_finished_requests_are_released_and_tokens_keep_their_times(monkeypatch):
    """160 requests (a small KV cache preempts some mid-decode) with the ITL series rebased
    every 8 steps: afterwards the engine holds no record of any of them, the series is a short
    window of the steps run, and every token was released at the tick an offline run of the
    same arrivals gives."""
    monkeypatch.setattr(realtime, "COMPACT_STEPS", 8)
    opts = RunOptions(model=MODEL, num_instances=2, routing_policy="least-loaded", total_kv_blocks=60)
    config = resolve(opts).config
    shapes = [(200 + 37 * (i % 9), 12 + 3 * (i % 7)) for i in range(160)]

    async def main():
        engine = RealtimeEngine(config)
        engine.start()
        try:
            streams = []
            for w in range(0, len(shapes), 20):  # waves of 20, a few ms apart within a wave
                wave = shapes[w : w + 20]
                streams += await asyncio.gather(*(_one(engine, a, b, 0.002 * i) for i, (a, b) in enumerate(wave)))
            return engine, streams
        finally:
            await engine.close()

    engine, streams = asyncio.run(asyncio.wait_for(main(), 90))
    insts = engine.sim.instances
    assert sum(i.metrics.preemptions for i in insts) > 0
    assert engine.in_flight == 0 and not engine._doomed and engine.cancelled == 0
    assert _tables(engine) == [0] * len(_tables(engine))  # no per-request record left
    for inst in insts:
        m = inst.metrics
        assert inst.step_count > 200
        assert len(m._itl_prefix) < inst.step_count / 4 and len(m._itl_prefix) == len(m._itl_count_diff)
        assert len(m.batch_sizes) <= 8 and len(m.waitq_depths) <= 8

    # The same arrivals offline (no compaction, lazy decoding on): the same token times.
    reqs = sorted((s.request for s in streams), key=lambda r: (r.arrival, r.index))
    twins = [Request(r.id, r.index, r.arrival, r.input, r.output) for r in reqs]
    sim = ClusterSimulator.from_config(config, twins)
    result = sim.run()
    metrics = dict(zip(result.instance_ids, result.instances))
    by_id = {t.id: t for t in twins}
    restarted = 0
    for s in streams:
        twin = by_id[s.request.id]
        want = _expected_ticks(twin, metrics[twin.assigned])
        assert s.end == twin.arrival + result.aggregate.e2es[twin.id], s.request.id
        # Token gaps are the steps' ITLs, read through the rebased series.
        assert np.diff(s.ticks).tolist() == np.diff(want).tolist(), s.request.id
        # The first token too, but where a preemption had the prompt computed again: the run
        # then records its second first token, the client got the first.
        restarted += s.ticks[0] != want[0]
        assert s.ticks[0] <= want[0]
    assert restarted <= sum(i.metrics.preemptions for i in insts)


def test_cancel_takes_a_request_out_wherever_it_is():
    """One instance running one request at a time: cancelling the queued one, the running one
    (its reader wakes mid-sleep) and one not yet at the instance frees everything; the next
    request is served as usual."""
    config = resolve(RunOptions(model=MODEL, max_num_running_reqs=1)).config

    async def main():
        engine = RealtimeEngine(config)
        engine.start()
        try:
            inst = engine.sim.instances[0]
            running = engine.submit(engine.ids.text("Token count: 400"), 5000)
            await running.ready()
            queued = engine.submit(engine.ids.text("Token count: 300"), 8)
            for _ in range(200):  # until it reaches the instance's queue
                if queued.request in inst.waitq:
                    break
                await asyncio.sleep(0.005)
            assert queued.request in inst.waitq and running.request in inst.running and inst.kv.used > 0

            reader = asyncio.ensure_future(running.tokens())
            while running.sent == 0:  # the reader hands out the first token, then sleeps for the next
                await asyncio.sleep(0)
                if reader.done():
                    reader = asyncio.ensure_future(running.tokens())
            assert engine.cancel(queued)
            assert queued.request not in inst.waitq
            with pytest.raises(Cancelled):
                await queued.ready()
            assert engine.cancel(running)
            with pytest.raises(Cancelled):
                await asyncio.wait_for(reader, 1.0)  # woken at once, not at its next token
            assert not inst.running and not inst.waitq and inst.kv.used == 0

            transit = engine.submit(engine.ids.text("Token count: 100"), 4)  # not simulated yet
            assert engine.cancel(transit) and transit.request.index in engine._doomed
            assert not engine.cancel(transit)  # once only
            for _ in range(200):
                if not engine._doomed:
                    break
                await asyncio.sleep(0.005)
            assert not engine._doomed and not inst.running and not inst.waitq and inst.kv.used == 0

            after = await asyncio.wait_for(_one(engine, 300, 6, 0), 10)
            stats = engine.stats()
            return engine, after, stats
        finally:
            await engine.close()

    engine, after, stats = asyncio.run(asyncio.wait_for(main(), 60))
    assert after.end is not None and len(after.ticks) == 6
    assert stats["cancelled"] == 3 and stats["in_flight"] == 0 and stats["kv_blocks_used"] == 0
    assert _tables(engine) == [0] * len(_tables(engine))


def test_cancel_after_the_simulation_finished_stops_the_reader():
    """A request the simulation is done with but whose last tokens are not due yet: cancelling
    it counts it and stops its reader; the simulation is not touched."""
    config = resolve(RunOptions(model=MODEL)).config

    async def main():
        engine = RealtimeEngine(config)
        engine.start()
        try:
            stream = engine.submit(engine.ids.text("Token count: 64"), 3)
            while stream.end is None:
                await asyncio.sleep(0.001)
            assert stream.sent == 0 and engine.in_flight == 0
            assert not engine.cancel(stream)
            with pytest.raises(Cancelled):
                await stream.tokens()
            return engine.stats()
        finally:
            await engine.close()

    stats = asyncio.run(asyncio.wait_for(main(), 30))
    assert stats["cancelled"] == 1 and stats["in_flight"] == 0


def test_compaction_keeps_what_requests_refer_to():
    """compact_step_itls drops only steps before the oldest range a request in the instance
    still holds, and rebases those ranges."""
    config = resolve(RunOptions(model=MODEL)).config
    sim = ClusterSimulator.from_config(config, [])
    inst = sim.instances[0]
    inst.lazy_enabled = False
    reqs = [
        Request(f"request_{i}", i, 10 * i, np.arange(100) + 1000 * i, np.arange(50) + 10**6 * (i + 1)) for i in range(3)
    ]
    for r in reqs:
        sim.inject(r)
    sim.advance_until(40_000)
    m = inst.metrics
    holders = [r for r in inst.running if r.itl_steps]
    assert holders
    before = {
        r.id: [m.step_itl(i) for a, b in zip(r.itl_steps[::2], r.itl_steps[1::2]) for i in range(a, b)] for r in holders
    }
    low = min(r.itl_steps[0] for r in holders)
    assert realtime.compact_step_itls(inst, {}) == low
    assert min(r.itl_steps[0] for r in holders) == 0
    after = {
        r.id: [m.step_itl(i) for a, b in zip(r.itl_steps[::2], r.itl_steps[1::2]) for i in range(a, b)] for r in holders
    }
    assert after == before
    sim.advance_until(400_000)  # runs on after the rebase
    assert inst.metrics.completed == 3 and not inst.running
