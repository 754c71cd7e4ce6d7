"""Frozen, validated configuration for the engine, the cluster and workloads.

Validation happens once, here, at construction; the simulator trusts these.
Every message names the CLI flag so users know what to change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

from ..errors import ConfigError, WorkloadError
from ..policies.lookahead import LookaheadConfig
from .autoscale import AutoscaleConfig
from .pd import PDConfig

if TYPE_CHECKING:
    from ..engine.roofline import RooflineSpec

MAX_INT64 = (1 << 63) - 1


def _positive(flag: str, value: int) -> None:
    if value <= 0:
        raise ConfigError(f"{flag} must be > 0, got {value}")


def _non_negative(flag: str, value: int) -> None:
    if value < 0:
        raise ConfigError(f"{flag} must be >= 0, got {value}")


@dataclass(frozen=True)
class CPUTierConfig:
    """The CPU tier of a two-tier KV cache (``--kv-cpu-blocks`` > 0)."""

    blocks: int
    offload_threshold: float = 0.9  # GPU use (0-1) above which free prefix blocks move to CPU
    bandwidth: float = 100.0  # transfer ticks per reloaded block: base + ceil(block size / this)
    base_latency: int = 0

    def __post_init__(self) -> None:
        _positive("--kv-cpu-blocks", self.blocks)
        if not (0 <= self.offload_threshold <= 1):
            raise ConfigError(f"--kv-offload-threshold must be a finite value in [0, 1], got {self.offload_threshold}")
        if not (self.bandwidth > 0 and math.isfinite(self.bandwidth)):
            raise ConfigError(
                f"--kv-transfer-bandwidth must be a finite value > 0 when --kv-cpu-blocks > 0, got {self.bandwidth}"
            )
        _non_negative("--kv-transfer-base-latency", self.base_latency)


@dataclass(frozen=True)
class EngineConfig:
    """One instance: KV cache, batch limits and its step-time model (blackbox coefficients, or
    ``roofline`` when set; ``alpha`` then still gives the queueing and output overheads)."""

    total_kv_blocks: int
    alpha: tuple[float, ...]
    beta: tuple[float, ...]
    block_size: int = 16
    max_running: int = 256
    max_scheduled_tokens: int = 2048
    long_prefill_threshold: int = 0
    roofline: Optional["RooflineSpec"] = None
    cpu_tier: Optional[CPUTierConfig] = None  # None: single-tier KV cache
    preemption_policy: str = "fcfs"  # which running request a full cache evicts (fcfs, priority)

    def __post_init__(self) -> None:
        _positive("--total-kv-blocks", self.total_kv_blocks)
        _positive("--block-size-in-tokens", self.block_size)
        _positive("--max-num-running-reqs", self.max_running)
        _positive("--max-num-scheduled-tokens", self.max_scheduled_tokens)
        _non_negative("--long-prefill-token-threshold", self.long_prefill_threshold)


@dataclass(frozen=True)
class InstanceClass:
    """One kind of instance in a heterogeneous pool: its hardware's coefficients and KV size.

    ``speed`` is the class's decode speed relative to the pool's fastest (1.0 = fastest),
    what snapshots and observations show routers.
    """

    name: str  # e.g. "H100/tp2"
    alpha: tuple[float, ...]
    beta: tuple[float, ...]
    total_kv_blocks: int
    speed: float = 1.0
    roofline: Optional["RooflineSpec"] = None  # set: roofline step times instead of beta

    def __post_init__(self) -> None:
        _positive(f"--instance-pool {self.name}: KV blocks", self.total_kv_blocks)

    @property
    def variant(self) -> tuple[str, int]:
        """(GPU, TP) of a pool's class, from its name ``GPU/tpN``."""
        gpu, _, tp = self.name.partition("/tp")
        return gpu, int(tp)


# The batch a class's speed is measured on: 32 requests decoding one token each.
SPEED_REFERENCE_DECODE = 32


def reference_step_time(beta: tuple[float, ...]) -> float:
    """Step time (µs) of the speed reference batch under step-time coefficients ``beta``."""
    return beta[0] + beta[2] * SPEED_REFERENCE_DECODE


CACHE_SIGNAL_DELAY = 50_000  # ticks (50 ms): upstream BLIS's default (llm-d's KV-event lag)


@dataclass(frozen=True)
class ClusterConfig:
    """The cluster: instances, the arrival -> admission -> routing pipeline, policies.

    Latencies and the horizon are in ticks (microseconds).
    """

    engine: EngineConfig
    num_instances: int = 1
    horizon: int = MAX_INT64
    seed: int = 42
    admission_latency: int = 0
    routing_latency: int = 0
    snapshot_refresh_interval: int = 0
    # How old (ticks) the caches that precise-prefix-cache and no-hit-lru ask may be.
    cache_signal_delay: int = CACHE_SIGNAL_DELAY
    admission_policy: str = "always-admit"
    routing_policy: str = "round-robin"
    priority_policy: str = "constant"
    scheduler: str = "fcfs"
    # Trained models (paths) for the learned "rl" policies.
    routing_model: str = ""
    admission_model: str = ""
    # Weighted routing profile (tuple of policies.scorers.ScorerConfig); empty = the default profile.
    routing_scorers: tuple = ()
    token_bucket_capacity: float = 10000.0  # tokens
    token_bucket_refill_rate: float = 1000.0  # tokens per second
    trace_level: str = "none"  # "none" or "decisions"
    counterfactual_k: int = 0  # candidates kept per routing decision when tracing
    lookahead: LookaheadConfig = field(default_factory=LookaheadConfig)
    # Heterogeneous fleets (ours): one class per instance, in instance order; () = all `engine`.
    pool: tuple[InstanceClass, ...] = ()
    # Prefill/decode pools (None: every instance serves whole requests).
    pd: Optional[PDConfig] = None
    # Node pools and the autoscaler (None: a fixed fleet on no modelled nodes). ``gpu``/``tp``
    # name a homogeneous fleet's hardware; ``scaling_classes`` what a new instance of each
    # node pool's GPU type runs: ((gpu, tp), InstanceClass) pairs.
    autoscale: Optional[AutoscaleConfig] = None
    gpu: str = ""
    tp: int = 0
    scaling_classes: tuple = ()
    # Reproduce the reference's KV leak (and livelocks); for differential tests only.
    reference_kv: bool = False

    def __post_init__(self) -> None:
        if self.num_instances < 1:
            raise ConfigError(f"--num-instances must be >= 1, got {self.num_instances}")
        _non_negative("--admission-latency", self.admission_latency)
        _non_negative("--routing-latency", self.routing_latency)
        _non_negative("--snapshot-refresh-interval", self.snapshot_refresh_interval)
        _non_negative("--cache-signal-delay", self.cache_signal_delay)
        _non_negative("--counterfactual-k", self.counterfactual_k)
        if self.trace_level not in ("none", "decisions"):
            raise ConfigError(f"--trace-level: unknown trace level {self.trace_level!r} (valid: none, decisions)")
        if self.pool and len(self.pool) != self.num_instances:
            raise ConfigError(
                f"--instance-pool has {len(self.pool)} instances but --num-instances is {self.num_instances}"
            )
        if self.pd is not None and self.pd.size > self.num_instances:
            raise ConfigError(
                f"the prefill/decode pools take {self.pd.size} instances but --num-instances is {self.num_instances}"
            )

    def instance_class(self, i: int) -> InstanceClass:
        """Instance ``i``'s coefficients and KV size (the engine's own in a homogeneous cluster)."""
        if self.pool:
            return self.pool[i]
        e = self.engine
        return InstanceClass("", tuple(e.alpha), tuple(e.beta), e.total_kv_blocks, roofline=e.roofline)

    def instance_variant(self, i: int) -> tuple[str, int]:
        """(GPU, TP) of starting instance ``i``."""
        if self.pool:
            return self.pool[i].variant
        return self.gpu, self.tp

    def scaling_class(self, gpu: str, tp: int) -> InstanceClass:
        """What a new (autoscaled) instance on ``gpu`` with ``tp`` runs."""
        for variant, cls in self.scaling_classes:
            if variant == (gpu, tp):
                return cls
        for i in range(self.num_instances):
            if self.instance_variant(i) == (gpu, tp):
                return self.instance_class(i)
        raise ConfigError(f"node_pools: no step-time model for {gpu} with TP {tp}")

    @property
    def max_kv_blocks(self) -> int:
        """The largest instance's KV blocks (the engine's in a homogeneous cluster)."""
        return max((c.total_kv_blocks for c in self.pool), default=self.engine.total_kv_blocks)

    def policy_options(self) -> dict:
        """What the policy factories may need; each registry passes a factory only what it takes."""
        e = self.engine
        return {
            "block_size": e.block_size,
            "scorers": self.routing_scorers,
            "token_bucket_capacity": self.token_bucket_capacity,
            "token_bucket_refill_rate": self.token_bucket_refill_rate,
            "routing_model": self.routing_model,
            "admission_model": self.admission_model,
            "num_instances": self.num_instances,
            "max_running": e.max_running,
            "total_kv_blocks": self.max_kv_blocks,
            "lookahead": self.lookahead,
        }


@dataclass(frozen=True)
class DistributionWorkload:
    """GuideLLM-style synthetic workload: Gaussian lengths clamped to [min, max].

    ``rate`` is requests per second; arrivals are evenly spaced at
    ``int(1e6 / rate)`` ticks, as in the reference.
    """

    rate: float
    num_requests: int
    prefix_tokens: int = 0
    prompt_mean: int = 512
    prompt_stdev: int = 256
    prompt_min: int = 2
    prompt_max: int = 7000
    output_mean: int = 512
    output_stdev: int = 256
    output_min: int = 2
    output_max: int = 7000
    name: str = field(default="distribution", compare=False)
    # Ours, not BLIS's: K > 1 distinct shared prefixes, one drawn per request.
    prefix_groups: int = 1

    def __post_init__(self) -> None:
        if not (self.rate > 0 and math.isfinite(self.rate)):
            raise WorkloadError(f"--rate must be a finite value > 0, got {self.rate}")
        if self.num_requests < 0:
            raise WorkloadError(f"--num-requests must be >= 0, got {self.num_requests}")
        if self.prefix_tokens < 0:
            raise WorkloadError(f"--prefix-tokens must be >= 0, got {self.prefix_tokens}")
        if self.prefix_groups < 1:
            raise WorkloadError(f"--prefix-groups must be >= 1, got {self.prefix_groups}")
        for kind in ("prompt", "output"):
            lo, hi = getattr(self, f"{kind}_min"), getattr(self, f"{kind}_max")
            if lo < 0 or lo > hi:
                raise WorkloadError(f"--{kind}-tokens-min/max must satisfy 0 <= min <= max, got [{lo}, {hi}]")

    def check_flag_ranges(self) -> None:
        """The reference's extra rule for ``--workload distribution``: mean and stdev inside [min, max]."""
        for kind in ("prompt", "output"):
            lo, hi = getattr(self, f"{kind}_min"), getattr(self, f"{kind}_max")
            mean, std = getattr(self, f"{kind}_mean"), getattr(self, f"{kind}_stdev")
            if not (lo <= mean <= hi and lo <= std <= hi):
                raise WorkloadError(
                    f"--{kind}-tokens ({mean}) and --{kind}-tokens-stdev ({std}) must lie in "
                    f"[--{kind}-tokens-min, --{kind}-tokens-max] = [{lo}, {hi}]"
                )
