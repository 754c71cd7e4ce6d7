"""``blis serve``'s simulator side, without a server: the open simulation (requests injected
while it runs), token counting and the serve plan's checks."""

from __future__ import annotations

import pytest

from blis_gym.cluster.simulator import ClusterSimulator
from blis_gym.engine.request import Request
from blis_gym.errors import ConfigError
from blis_gym.plan import RunOptions, resolve
from blis_gym.serve.plan import plan_serve
from blis_gym.serve.tokens import FRESH_BASE, TokenIds, filler_text, token_count_prompt, word_ids

MODEL = "meta-llama/llama-3.1-8b-instruct"


def _config(**kw):
    return resolve(RunOptions(model=MODEL, **kw)).config


# --- the open simulation ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw",
    [
        dict(num_instances=3, routing_policy="least-loaded"),
        dict(
            num_instances=2,
            routing_policy="weighted",
            admission_policy="token-bucket",
            token_bucket_capacity=3000,
            token_bucket_refill_rate=20000,
        ),
        dict(num_instances=1, total_kv_blocks=120, max_num_running_reqs=8),
    ],
)
def test_injected_run_equals_the_workload_run(kw):
    """Requests injected one by one into an open run (advance_until between them, lazy decoding
    off) give exactly the metrics of the same requests given as a workload up front."""
    opts = RunOptions(
        model=MODEL, num_requests=60, rate=40, prompt_tokens=300, output_tokens=80, prefix_tokens=64, **kw
    )
    plan = resolve(opts)
    offline = ClusterSimulator.from_config(plan.config, plan.requests).run()

    fresh = resolve(opts).requests
    sim = ClusterSimulator.from_config(plan.config, [])
    for inst in sim.instances:
        inst.lazy_enabled = False
    for req in fresh:
        sim.advance_until(req.arrival - 1)
        assert sim.next_event_time() >= req.arrival
        sim.inject(req)
    while sim.next_event_time() < 1 << 64:
        sim.advance_until(sim.next_event_time())
    agg, want = sim.instances, offline.aggregate
    ttfts = {k: v for inst in agg for k, v in inst.metrics.ttfts.items()}
    e2es = {k: v for inst in agg for k, v in inst.metrics.e2es.items()}
    assert ttfts == want.ttfts and e2es == want.e2es
    assert sum(i.metrics.completed for i in agg) == want.completed
    assert sim.rejected == offline.rejected


def test_inject_refuses_the_past():
    sim = ClusterSimulator.from_config(_config(), [])
    sim.advance_until(1000)
    with pytest.raises(ValueError):
        sim.inject(Request("r", 0, 999, [1, 2], [3]))
    with pytest.raises(RuntimeError):
        ClusterSimulator(_config(), []).advance_until(5)  # no policies: decisions would pause


# --- token counting ----------------------------------------------------------------------------
def test_token_counting():
    assert token_count_prompt("Token count: 512") == 512
    assert token_count_prompt("  Token count:7\n") == 7
    assert token_count_prompt("Token count: 5 please") is None
    assert len(word_ids("the  cat\nsat ")) == 3
    assert word_ids("a b a") == word_ids("a b a") and word_ids("a")[0] == word_ids("x a")[1]
    ids = TokenIds()
    a, b = ids.text("Token count: 4"), ids.fresh(3)
    assert len(a) == 4 and len(b) == 3 and len(set(a.tolist()) | set(b.tolist())) == 7
    assert min(a) >= FRESH_BASE > max(ids.text("hello world"))
    assert filler_text(0, 3) == " the cat sat" and filler_text(9, 2) == " ran the"


def test_plan_errors():
    with pytest.raises(ConfigError, match="--horizon"):
        plan_serve(RunOptions(model=MODEL, horizon=5, explicit=frozenset({"horizon"})))
    with pytest.raises(ConfigError, match="--num-instances"):
        plan_serve(RunOptions(model=MODEL, num_instances=3, explicit=frozenset({"num_instances"})), fleet=2)
    fleet = plan_serve(RunOptions(model=MODEL), fleet=3)
    assert len(fleet.configs) == 3 and fleet.configs[0].num_instances == 1
