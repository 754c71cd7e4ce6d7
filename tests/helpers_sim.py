"""Building simulations directly (no CLI) for engine-level tests."""

from __future__ import annotations

from blis_gym.cluster.simulator import ClusterSimulator
from blis_gym.config.catalog import load_catalog
from blis_gym.config.schema import ClusterConfig, DistributionWorkload, EngineConfig
from blis_gym.workload import generate_distribution

# llama-3.1-8b on H100, TP=2: the shipped trained figures.
_ROW = load_catalog().find_coefficients("meta-llama/llama-3.1-8b-instruct", 2, "H100", "vllm/vllm-openai:v0.8.4")
ALPHA, BETA = _ROW.alpha, _ROW.beta


def config(total_kv_blocks=1_000_000, num_instances=1, reference_kv=False, **kw) -> ClusterConfig:
    engine_kw = {k: kw.pop(k) for k in ("block_size", "max_running", "max_scheduled_tokens",
                                        "long_prefill_threshold") if k in kw}
    engine = EngineConfig(total_kv_blocks=total_kv_blocks, alpha=ALPHA, beta=BETA, **engine_kw)
    return ClusterConfig(engine=engine, num_instances=num_instances, reference_kv=reference_kv, **kw)


def workload(rate=20.0, n=100, seed=42, **kw):
    return generate_distribution(DistributionWorkload(rate, n, **kw), seed)


def simulator(cfg: ClusterConfig, requests) -> ClusterSimulator:
    return ClusterSimulator.from_config(cfg, requests)
