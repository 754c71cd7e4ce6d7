"""Prefill/decode disaggregation: pools, deciders, KV transfers and the parents' metrics."""

from __future__ import annotations

import math

import pytest

from blis_gym.cluster.simulator import ClusterSimulator
from blis_gym.config.pd import PDConfig, kv_bytes_per_token
from blis_gym.plan import RunOptions, resolve, simulate
from blis_gym.policies import ADMISSION
from blis_gym.report.render import results_json, stdout_text
from blis_gym.report.summary import metrics_block

MODEL = "meta-llama/llama-3.1-8b-instruct"
BASE = dict(model=MODEL, num_requests=120, rate=40.0, log="error")


def fixed(prompt: int, output: int) -> dict:
    """Every request with exactly these lengths."""
    out = {}
    for kind, n in (("prompt", prompt), ("output", output)):
        out.update({f"{kind}_tokens": n, f"{kind}_tokens_stdev": n, f"{kind}_tokens_min": n, f"{kind}_tokens_max": n})
    return out


def run(**kw):
    plan = resolve(RunOptions(**{**BASE, **kw}))
    return plan, simulate(plan)


@pytest.mark.parametrize("policy", ["round-robin", "least-loaded", "weighted", "prefix-affinity"])
def test_never_is_a_plain_cluster_of_the_decode_pool(policy):
    """Local requests go to the decode pool, routed as a cluster of that many instances."""
    _, plain = run(num_instances=3, routing_policy=policy, prefix_tokens=256)
    _, pd = run(num_instances=5, prefill_instances=2, decode_instances=3, routing_policy=policy, prefix_tokens=256)
    assert metrics_block("cluster", pd.aggregate) == metrics_block("cluster", plain.aggregate)
    assert pd.aggregate.ttfts == plain.aggregate.ttfts and pd.aggregate.e2es == plain.aggregate.e2es
    assert [m.completed for m in pd.instances[:2]] == [0, 0]
    assert pd.pd.disaggregated == 0 and "PD Metrics" not in stdout_text(pd)


def test_without_pd_flags_output_is_unchanged():
    """The PD machinery is absent from a run without pools (no report, no results key)."""
    _, r = run(num_instances=2)
    assert r.pd is None and "pd_metrics" not in results_json(r)


def test_kv_bytes_and_transfer_time_follow_their_formulas():
    # llama-3.1-8b: 32 layers, 8 KV heads of 128, bf16, over TP 2.
    per_token = kv_bytes_per_token(32, 32, 8, 4096, 0, 2.0, 2)
    assert per_token == 32 * 2 * 128 * 8 * 2 / 2
    cfg = PDConfig(1, 1, bandwidth=25_000.0, base_latency=50.0, kv_bytes_per_token=per_token)
    blocks = 32  # 512 tokens
    assert cfg.transfer_time(blocks, 16) == math.ceil(50.0 + blocks * 16 * per_token / 25_000.0)
    assert cfg.transfer_time(0, 16) == 50 and PDConfig(1, 1, base_latency=0.0).transfer_time(0, 16) == 1
    shared = PDConfig(1, 1, contention=True, bandwidth=25_000.0, base_latency=0.0, kv_bytes_per_token=per_token)
    assert shared.transfer_time(blocks, 16, active=4) == math.ceil(4 * blocks * 16 * per_token / 25_000.0)
    with pytest.raises(Exception, match="KV heads"):
        kv_bytes_per_token(32, 32, 6, 4096, 0, 2.0, 4)


def test_a_split_requests_ttft_is_prefill_then_transfer_then_its_first_decode_step():
    """Every step takes 1 ms here: the parent's TTFT is the prefill part's plus the transfer plus
    one decode-side step (the last prompt token, computed for the first output token)."""
    plan, r = run(
        num_instances=2,
        prefill_instances=1,
        decode_instances=1,
        pd_decider="always",
        num_requests=1,
        **fixed(500, 20),
        alpha_coeffs=(0.0, 0.0, 0.0),
        beta_coeffs=(1000.0, 0.0, 0.0),
        total_kv_blocks=1000,
    )
    (rid,) = r.aggregate.ttfts
    part = r.instances[0].ttfts[f"{rid}_prefill"]
    (dur,) = r.pd.transfer_durations
    cfg = plan.config.pd
    assert dur == cfg.transfer_time(math.ceil(500 / 16), 16)
    assert r.aggregate.ttfts[rid] == part + dur + 1000
    # 20 output tokens: the first with that step, 19 more decode steps of 1 ms each.
    assert r.aggregate.e2es[rid] == r.aggregate.ttfts[rid] + 19 * 1000 + 1000  # (BLIS counts the last ITL twice)
    assert r.aggregate.completed == 1 and r.instances[0].completed == 1 and r.instances[1].completed == 1
    assert r.aggregate.total_input_tokens == 500


def test_prefix_threshold_splits_only_what_the_decode_instance_lacks():
    """With live cache views: the first copy of a prompt is split; once the decode instance holds
    it (the transfer registers it there), the same prompt is served locally."""
    plan, r = run(
        num_instances=2,
        prefill_instances=1,
        decode_instances=1,
        pd_decider="prefix-threshold",
        cache_signal_delay=0,
        num_requests=6,
        rate=1.0,
        prefix_tokens=320,
        **fixed(4, 20),
        pd_prefix_threshold=8,
    )
    # Each request adds 4 own tokens to the shared 320: the first is split (nothing cached), the
    # rest find the prefix on the decode instance and lack only 4 (+ a partial block) tokens.
    assert r.pd.disaggregated == 1
    assert r.aggregate.completed == 6


def test_conservation_with_splits_cut_by_the_horizon_and_decode_drops():
    in_transfer = 0
    for horizon in (200_000, 400_000, 900_000, 1_300_000, 3_000_000):
        plan, r = run(
            num_instances=4, prefill_instances=2, decode_instances=2, pd_decider="always", horizon=horizon, rate=80.0
        )
        assert r.accounted == len(plan.requests) > 0, horizon
        in_transfer += r.in_transfer
    assert in_transfer > 0  # some horizon caught a transfer in flight
    # Prompts fit a prefill instance, but prompt + output never fit a decode instance.
    _, r = run(
        num_instances=2,
        prefill_instances=1,
        decode_instances=1,
        pd_decider="always",
        num_requests=10,
        total_kv_blocks=40,
        **fixed(500, 300),
    )
    assert r.pd.dropped_at_decode == 10 and r.aggregate.dropped_unservable == 10
    assert r.aggregate.completed == 0 and r.accounted == 10


def test_disaggregated_runs_are_deterministic():
    kw = dict(num_instances=4, prefill_instances=1, decode_instances=2, prefill_decode_instances=1)
    a = stdout_text(run(pd_decider="prefix-threshold", prefix_tokens=128, **kw)[1])
    b = stdout_text(run(pd_decider="prefix-threshold", prefix_tokens=128, **kw)[1])
    assert a == b and "=== PD Metrics ===" in a


def test_per_pool_hardware_becomes_the_fleet():
    plan, _ = run(
        num_instances=3,
        prefill_instances=1,
        decode_instances=2,
        pd_decider="always",
        prefill_hardware="A100-80",
        prefill_tp=1,
        decode_hardware="H100",
        decode_tp=2,
        num_requests=10,
    )
    assert [c.name for c in plan.config.pool] == ["A100-80/tp1", "H100/tp2", "H100/tp2"]


def test_an_agent_answers_decode_and_prefill_instances():
    plan = resolve(
        RunOptions(
            **{**BASE, "num_instances": 3, "prefill_instances": 1, "decode_instances": 2, "pd_decider": "always"}
        )
    )
    sim = ClusterSimulator(plan.config, plan.requests, ADMISSION.make("always-admit"), None)
    d = sim.advance()
    with pytest.raises(ValueError, match="decode pool"):
        sim.route(d, 0, split=0)
    with pytest.raises(ValueError, match="prefill pool"):
        sim.route(d, 1, split=2)
    n = 0
    while d is not None:
        sim.route(d, 1 + n % 2, split=0 if n % 3 else None)
        n += 1
        d = sim.advance()
    r = sim.result()
    assert r.aggregate.completed == 120 and r.pd.disaggregated == 80
    assert r.instances[0].completed == 80


def test_a_departure_hook_sees_each_request_once():
    plan = resolve(
        RunOptions(
            **{
                **BASE,
                "num_instances": 3,
                "prefill_instances": 1,
                "decode_instances": 1,
                "prefill_decode_instances": 1,
                "pd_decider": "always",
            }
        )
    )
    sim = ClusterSimulator.from_config(plan.config, plan.requests)
    seen: list[str] = []
    firsts: list[str] = []
    sim.set_departure_hook(lambda req, t: seen.append(req.id))
    sim.set_first_token_hook(lambda req, t: firsts.append(req.id))
    sim.run()
    assert sorted(seen) == sorted(r.id for r in plan.requests) == sorted(firsts)


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--prefill-instances", "3", "--decode-instances", "2"], ["--prefill-instances", "exceeds --num-instances"]),
        (["--prefill-instances", "2"], ["--decode-instances", "must both be > 0"]),
        (["--prefill-instances", "2", "--decode-instances", "-1"], ["--decode-instances", ">= 0"]),
        (
            ["--prefill-instances", "1", "--decode-instances", "1", "--pd-decider", "sometimes"],
            ["--pd-decider", "prefix-threshold"],
        ),
        (
            ["--prefill-instances", "1", "--decode-instances", "1", "--pd-transfer-bandwidth", "-1"],
            ["--pd-transfer-bandwidth", "> 0"],
        ),
        (
            ["--prefill-instances", "1", "--decode-instances", "1", "--pd-transfer-base-latency", "-2"],
            ["--pd-transfer-base-latency", ">= 0"],
        ),
        (
            ["--prefill-instances", "1", "--decode-instances", "1", "--pd-prefix-threshold", "-2"],
            ["--pd-prefix-threshold", ">= 0"],
        ),
        (
            ["--prefill-instances", "1", "--decode-instances", "1", "--routing-policy", "lookahead"],
            ["--routing-policy lookahead", "pools"],
        ),
        (
            ["--prefill-instances", "1", "--decode-instances", "1", "--kv-cpu-blocks", "100"],
            ["--kv-cpu-blocks", "pools"],
        ),
        (
            ["--prefill-instances", "1", "--decode-instances", "1", "--decode-routing-scorers", "nope:1"],
            ["--decode-routing-scorers", "nope"],
        ),
        (["--prefill-instances", "1", "--decode-instances", "1", "--prefill-hardware", "Z80"], ["Z80"]),
    ],
)
def test_bad_pd_flags_fail_clearly(blis, extra, words):
    code, out, err = blis("run", "--log", "error", "--model", MODEL, "--num-instances", "4", *extra)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: ")
    for w in words:
        assert w in err, err


# A shared-pool instance with a cache too small for the prompts it holds (it used to livelock).
SHARED_POOL_TIGHT = dict(
    num_instances=3,
    prefill_instances=1,
    decode_instances=1,
    prefill_decode_instances=1,
    pd_decider="always",
    num_requests=120,
    rate=40.0,
    prompt_tokens=1500,
    prompt_tokens_stdev=500,
    prompt_tokens_min=16,
    prompt_tokens_max=3000,
    total_kv_blocks=900,
)


def test_held_prompts_queued_behind_a_blocked_head_run_instead_of_livelocking():
    """A shared-pool instance with a tight cache: prompts shipped to it hold their KV while they
    queue behind a prefill that does not fit, and a running request then preempts itself every
    step (the cache is full of held prompts). Requests whose prompt KV is held are admitted past
    the blocked head, so the run ends with every request accounted."""
    from dataclasses import fields, replace

    from blis_gym.plan import RunOptions, resolve, simulate

    o = RunOptions(model="meta-llama/llama-3.1-8b-instruct", log="error", seed=5, **SHARED_POOL_TIGHT)
    o = replace(o, explicit=frozenset(f.name for f in fields(o)) - {"explicit"})
    plan = resolve(o)
    result = simulate(plan)
    assert result.accounted == len(plan.requests)
    assert result.aggregate.completed > 0 and result.aggregate.preemptions > 0
