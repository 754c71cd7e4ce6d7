"""--preemption-policy: which running request a full KV cache evicts (hand-built batches)."""

from __future__ import annotations

from collections import deque

import pytest

from blis_gym.engine.batching import VLLMBatchFormation, priority_victim
from blis_gym.engine.kvcache import KVCache
from blis_gym.engine.request import RUNNING, Request
from blis_gym.plan import RunOptions, resolve, simulate
from blis_gym.report.render import stdout_text

BS = 4


def running(kv: KVCache, *specs) -> list[Request]:
    """Running requests in batch order, each with its whole prompt computed and held in ``kv``:
    specs are (class, arrival, prompt length)."""
    out = []
    for i, (cls, arrival, n_in) in enumerate(specs):
        r = Request(f"r{i}", i, arrival, [1000 * (i + 1) + t for t in range(n_in)], [7] * 8, slo_class=cls)
        assert kv.allocate(r, 0, n_in, [])
        r.progress = r.computed = n_in
        r.state = RUNNING
        out.append(r)
    return out


def form(policy: str, kv: KVCache, batch: list[Request], max_tokens: int = 64):
    waitq: deque = deque()
    res = VLLMBatchFormation(16, max_tokens, 0, preemption=policy).form(batch, waitq, kv)
    return res, list(waitq)


@pytest.mark.parametrize("policy, victim", [("fcfs", "r2"), ("priority", "r1")])
def test_the_tail_or_the_least_urgent_class_is_evicted(policy, victim):
    kv = KVCache(6, BS)
    batch = running(kv, ("critical", 0, 8), ("batch", 10, 8), ("standard", 20, 8))  # full; all need a block
    res, waitq = form(policy, kv, batch)
    assert [r.id for r in res.preempted] == [victim] and [r.id for r in waitq] == [victim]
    assert victim not in [r.id for r in batch]
    assert all(r.num_new == 1 for r in batch)
    kv.check()


def test_among_equal_classes_the_latest_arrival_goes_then_the_one_nearest_the_tail():
    kv = KVCache(100, BS)
    batch = running(kv, ("", 30, 4), ("standard", 50, 4), ("interactive", 50, 4), ("", 40, 4))
    assert batch[priority_victim(batch)].id == "r2"  # arrival 50 twice: the later in the batch
    batch = running(KVCache(100, BS), ("realtime", 90, 4), ("", 10, 4))
    assert batch[priority_victim(batch)].id == "r1"  # realtime ranks as critical


def test_a_victim_already_served_gives_back_its_tokens_and_the_walk_does_not_skip():
    """r0 (batch) decodes into its partial block, then r1 (critical) needs a new block and evicts
    r0: r0's token returns to the budget, so r2 still gets its token (budget 2)."""
    kv = KVCache(6, BS)
    batch = running(kv, ("batch", 0, 6), ("critical", 5, 8), ("standard", 9, 6))
    res, waitq = form("priority", kv, batch, max_tokens=2)
    assert [r.id for r in res.preempted] == ["r0"] and [r.id for r in waitq] == ["r0"]
    assert [r.id for r in batch] == ["r1", "r2"]
    assert [r.num_new for r in batch] == [1, 1]
    assert waitq[0].num_new == 0 and waitq[0].progress == 0
    kv.check()


def test_the_request_itself_is_evicted_when_it_is_the_least_urgent():
    kv = KVCache(4, BS)
    batch = running(kv, ("batch", 0, 8), ("critical", 5, 8))
    res, waitq = form("priority", kv, batch)
    assert [r.id for r in res.preempted] == ["r0"]
    assert [r.id for r in batch] == ["r1"]


def test_priority_runs_end_with_every_request_accounted_and_differ_from_fcfs():
    model = "meta-llama/llama-3.1-8b-instruct"
    spec = dict(model=model, num_requests=200, rate=60.0, total_kv_blocks=1200, log="error")
    out = {}
    for policy in ("fcfs", "priority"):
        plan = resolve(RunOptions(workload_spec="mixed-slo", preemption_policy=policy, **spec))
        result = simulate(plan)
        assert result.accounted == len(plan.requests)
        assert result.aggregate.preemptions > 0
        out[policy] = stdout_text(result)
    assert out["fcfs"] != out["priority"]
