"""``blis run``'s options as one frozen record, named and defaulted as BLIS names its flags.

:class:`RunOptions` is what the CLI parses, what scenarios and policy bundles
set, and what :func:`blis_gym.plan.resolve` turns into a validated run.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Optional

from ..config.schema import MAX_INT64


@dataclass(frozen=True)
class RunOptions:
    """Every ``blis run`` flag, named and defaulted as in BLIS (``None`` = not given)."""

    model: str = ""
    hardware: str = ""
    tp: int = 0
    vllm_version: str = ""
    seed: int = 42
    horizon: int = MAX_INT64
    log: str = "warn"
    defaults_filepath: Optional[str] = None
    model_config_folder: str = ""
    hardware_config: str = ""
    latency_model: str = "auto"  # ours: auto (BLIS's rule), blackbox or roofline
    ep: int = 1  # ours: expert-parallel degree (roofline, mixture-of-experts models)
    results_path: str = ""
    # workload
    workload: str = "distribution"
    workload_spec: str = ""
    workload_traces_filepath: str = ""
    rate: float = 1.0
    num_requests: int = 100
    prefix_tokens: int = 0
    prefix_groups: int = 1  # ours: distinct shared prefixes (BLIS has one)
    prompt_tokens: int = 512
    prompt_tokens_stdev: int = 256
    prompt_tokens_min: int = 2
    prompt_tokens_max: int = 7000
    output_tokens: int = 512
    output_tokens_stdev: int = 256
    output_tokens_min: int = 2
    output_tokens_max: int = 7000
    # cluster and policies
    num_instances: int = 1
    instance_pool: str = ""  # ours: a heterogeneous fleet, GPU:TP[:xCOUNT],...
    routing_policy: str = "round-robin"
    routing_scorers: str = ""
    admission_policy: str = "always-admit"
    routing_model: str = ""  # ours: a trained model for --routing-policy rl
    admission_model: str = ""  # ours: a trained model for --admission-policy rl
    token_bucket_capacity: float = 10000.0
    token_bucket_refill_rate: float = 1000.0
    priority_policy: str = "constant"
    scheduler: str = "fcfs"
    admission_latency: int = 0
    routing_latency: int = 0
    policy_config: str = ""
    snapshot_refresh_interval: int = 0
    # ours: the lookahead routing oracle (--routing-policy lookahead)
    lookahead_rollout: str = "weighted"
    lookahead_horizon: str = "end"  # seconds, or "end"
    lookahead_objective: str = "ttft"
    lookahead_future: bool = False
    lookahead_candidates: int = 0  # 0 = every instance
    # observability
    trace_level: str = "none"
    counterfactual_k: int = 0
    summarize_trace: bool = False
    fitness_weights: str = ""
    # vLLM server
    total_kv_blocks: Optional[int] = None  # None: from the defaults file, else 1000000
    max_num_running_reqs: int = 256
    max_num_scheduled_tokens: int = 2048
    block_size_in_tokens: int = 16
    max_model_len: int = 2048  # accepted for compatibility; BLIS does not use it either
    long_prefill_token_threshold: int = 0
    alpha_coeffs: tuple[float, ...] = (0.0, 0.0, 0.0)
    beta_coeffs: tuple[float, ...] = (0.0, 0.0, 0.0)
    kv_cpu_blocks: int = 0
    kv_offload_threshold: float = 0.9
    kv_transfer_bandwidth: float = 100.0
    kv_transfer_base_latency: int = 0
    # ours: reproduce the reference's KV leak (differential tests only)
    reference_kv: bool = field(default=False, repr=False)
    # Option names the user gave on the command line; they beat --policy-config values,
    # and --seed/--horizon/--num-requests given so beat a workload spec's own.
    explicit: frozenset = field(default=frozenset(), repr=False, compare=False)

    def with_seed(self, seed: int) -> "RunOptions":
        """These options with workload seed ``seed``, given as ``--seed`` would be (so it also
        beats a workload spec's seed)."""
        return replace(self, seed=seed, explicit=self.explicit | {"seed"})


def cli_flags(o: RunOptions) -> list[str]:
    """``blis run`` arguments that give ``o``: every option that differs from its default or was
    given explicitly."""
    base = RunOptions()
    args: list[str] = []
    for f in fields(RunOptions):
        value = getattr(o, f.name)
        if f.name in ("explicit", "reference_kv"):
            continue
        if value == getattr(base, f.name) and (f.name not in o.explicit or isinstance(value, bool)):
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            args.append(flag)  # boolean flags default to off
        elif isinstance(value, tuple):
            args += [flag, ",".join(repr(float(v)) for v in value)]
        elif value is not None:
            args += [flag, str(value)]
    return args
