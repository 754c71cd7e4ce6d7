"""Building simulations directly (no CLI) for engine-level tests."""

from __future__ import annotations

from blis_gym.cluster.simulator import ClusterSimulator
from blis_gym.config.catalog import load_catalog
from blis_gym.config.schema import ClusterConfig, DistributionWorkload, EngineConfig
from blis_gym.workload import generate_distribution

# llama-3.1-8b on H100, TP=2: the shipped trained figures.
_ROW = load_catalog().find_coefficients("meta-llama/llama-3.1-8b-instruct", 2, "H100", "vllm/vllm-openai:v0.8.4")
ALPHA, BETA = _ROW.alpha, _ROW.beta


def roofline_spec(model="llama-3.1-8b-instruct", gpu="H100", tp=1, ep=1):
    """Roofline for a shipped model on a shipped GPU."""
    from blis_gym.config.model_facts import load_model_facts
    from blis_gym.engine.roofline import RooflineSpec
    from blis_gym.plan.latency import arch_from_facts

    return RooflineSpec(arch_from_facts(load_model_facts(model)), load_catalog().gpus[gpu], tp, ep, gpu)


def config(total_kv_blocks=1_000_000, num_instances=1, reference_kv=False, **kw) -> ClusterConfig:
    """A cluster of llama-3.1-8b instances (``roofline=`` a spec for roofline step times)."""
    engine_kw = {
        k: kw.pop(k)
        for k in ("block_size", "max_running", "max_scheduled_tokens", "long_prefill_threshold", "roofline")
        if k in kw
    }
    engine = EngineConfig(total_kv_blocks=total_kv_blocks, alpha=ALPHA, beta=BETA, **engine_kw)
    return ClusterConfig(engine=engine, num_instances=num_instances, reference_kv=reference_kv, **kw)


def workload(rate=20.0, n=100, seed=42, **kw):
    return generate_distribution(DistributionWorkload(rate, n, **kw), seed)


def simulator(cfg: ClusterConfig, requests) -> ClusterSimulator:
    return ClusterSimulator.from_config(cfg, requests)


# --- randomized whole runs (roofline, tiered KV, tight caches) ---------------------------

ROOFLINE_MODELS = (
    "meta-llama/llama-3.1-8b-instruct",
    "qwen/qwen2.5-1.5b-instruct",
    "qwen/qwen3-14b",
    "codellama/codellama-34b-instruct-hf",
    "mistralai/mixtral-8x7b-instruct-v0.1",
    "qwen/qwen1.5-moe-a2.7b-chat",
)


def random_run_options(trial: int):
    """A random ``blis run`` configuration for trial ``trial``: roofline on a random shipped
    model, GPU and TP (3 included: the request-by-request path) in about half, a CPU KV tier in
    about two thirds, often a KV cache too small for the load, chunked prefill, shared prefixes."""
    import random

    from blis_gym.plan import RunOptions

    rnd = random.Random(f"run-{trial}")
    pm, om = rnd.randint(16, 1500), rnd.randint(1, 500)
    kw = dict(
        model="meta-llama/llama-3.1-8b-instruct",
        log="error",
        seed=trial,
        num_instances=rnd.choice([1, 1, 2, 3]),
        num_requests=rnd.choice([20, 40, 80]),
        rate=rnd.choice([5.0, 50.0, 500.0]),
        routing_policy=rnd.choice(["round-robin", "least-loaded", "weighted", "prefix-affinity"]),
        prompt_tokens=pm,
        prompt_tokens_stdev=min(pm, 300),
        prompt_tokens_min=1,
        prompt_tokens_max=2 * pm,
        output_tokens=om,
        output_tokens_stdev=min(om, 150),
        output_tokens_min=1,
        output_tokens_max=2 * om,
        prefix_tokens=rnd.choice([0, 0, 64, 512]),
        prefix_groups=rnd.choice([1, 3]),
        block_size_in_tokens=rnd.choice([4, 16, 16]),
        long_prefill_token_threshold=rnd.choice([0, 0, 32, 256]),
        max_num_scheduled_tokens=rnd.choice([128, 2048]),
        max_num_running_reqs=rnd.choice([4, 256]),
    )
    # Sized against the longest request: below 1 some requests can never fit (dropped), just
    # above it the cache holds one or two at a time (preemption at every step).
    longest = (kw["prefix_tokens"] + 2 * pm + 2 * om) // kw["block_size_in_tokens"] + 1
    kw["total_kv_blocks"] = max(4, int(longest * rnd.choice([0.7, 1.05, 1.5, 3.0, 30.0])))
    if rnd.random() < 0.5:
        kw.update(
            model=rnd.choice(ROOFLINE_MODELS),
            latency_model="roofline",
            hardware=rnd.choice(["H100", "A100-SXM", "L40S"]),
            tp=rnd.choice([1, 2, 3, 4]),
            ep=rnd.choice([1, 2]),
        )
    if rnd.random() < 0.67:
        kw.update(
            kv_cpu_blocks=rnd.choice([1, 8, 50, 400]),
            kv_offload_threshold=rnd.choice([0.0, 0.3, 0.6, 0.9]),
            kv_transfer_bandwidth=rnd.choice([0.5, 4.0, 100.0]),
            kv_transfer_base_latency=rnd.choice([0, 10, 500]),
        )
    return RunOptions(**kw, explicit=frozenset(kw))


def run_and_check(opts) -> None:
    """Run ``opts`` to the end and check conservation: every request is completed, dropped or
    still in the system (none, without a horizon); every instance's KV books balance and no
    block stays referenced once its requests are gone."""
    from blis_gym.plan import resolve

    plan = resolve(opts)
    sim = ClusterSimulator.from_config(plan.config, plan.requests)
    result = sim.run()
    n = len(plan.requests)
    agg = result.aggregate
    assert result.accounted == n
    assert agg.completed + agg.dropped_unservable == n, (agg.completed, agg.dropped_unservable, n)
    for inst in sim.instances:
        inst.kv.check()
        assert inst.kv.used == 0, f"{inst.id}: {inst.kv.used} blocks still held after every request left"
