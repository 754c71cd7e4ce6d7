"""``blis run`` options, resolved into a simulator plan the way BLIS resolves its flags.

:class:`RunOptions` holds every flag with BLIS's name and default; ``resolve``
applies the defaults file (per-model GPU/TP/vLLM version, coefficients, KV
blocks), picks the workload and validates everything, raising a
:class:`~blis_gym.errors.BlisError` with one clear line on bad input.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field, fields, replace
from typing import Optional

from ..config.bundle import (BUNDLE_OPTIONS, BUNDLE_SCORERS_KEY, apply_bundle, effective_scorers,
                             load_policy_bundle)
from ..config.catalog import Catalog, load_catalog
from ..config.schema import MAX_INT64, ClusterConfig, DistributionWorkload, EngineConfig
from ..engine.latency import BlackboxLatency
from ..engine.request import Request
from ..errors import ConfigError, UnsupportedFeatureError, WorkloadError
from ..policies import ADMISSION, PRIORITY, ROUTING, SCHEDULER
from ..report.fitness import parse_fitness_weights
from ..workload import generate_distribution, load_trace

log = logging.getLogger("blis_gym")

WORKLOAD_TYPES = ("chatbot", "summarization", "contentgen", "multidoc", "distribution", "traces")
LOG_LEVELS = ("trace", "debug", "info", "warn", "warning", "error", "fatal", "panic")


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
    # Option names the user gave on the command line; they beat --policy-config values.
    explicit: frozenset = field(default=frozenset(), repr=False, compare=False)


@dataclass(frozen=True)
class RunPlan:
    """A validated run: the cluster config, the requests and the output settings."""

    config: ClusterConfig
    requests: list[Request]
    results_path: str
    model: str
    fitness_weights: Optional[dict] = None  # key -> weight; None: no fitness section
    summarize_trace: bool = False


DEFAULT_TOTAL_KV_BLOCKS = 1000000


def _all_zero(values: tuple[float, ...]) -> bool:
    return all(v == 0 for v in values)


def _finite_positive(flag: str, value: float) -> None:
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"{flag} must be a finite value > 0, got {value}")


def _check_unsupported(o: RunOptions) -> None:
    """Flags for features not built yet fail loudly rather than doing nothing."""
    if o.workload_spec:
        raise UnsupportedFeatureError("--workload-spec is not supported yet")
    if o.trace_level not in ("none", "decisions"):
        raise ConfigError(f"--trace-level: unknown trace level {o.trace_level!r} (valid: none, decisions)")
    if o.kv_cpu_blocks > 0:
        raise UnsupportedFeatureError("--kv-cpu-blocks (tiered GPU+CPU KV cache) is not supported yet")
    if o.model_config_folder or o.hardware_config:
        raise UnsupportedFeatureError(
            "roofline mode (--model-config-folder/--hardware-config) is not supported yet; "
            "use trained coefficients (the defaults file) or --alpha-coeffs/--beta-coeffs")


def _validate_flags(o: RunOptions) -> None:
    if not o.model:
        raise ConfigError("--model is required (e.g. --model meta-llama/llama-3.1-8b-instruct)")
    if o.log.lower() not in LOG_LEVELS:
        raise ConfigError(f"--log: unknown level {o.log!r} (valid: trace, debug, info, warn, error, fatal, panic)")
    if o.workload not in WORKLOAD_TYPES:
        raise WorkloadError(f"--workload: unknown workload {o.workload!r} (valid: {', '.join(WORKLOAD_TYPES)})")
    if o.horizon < 0:
        raise ConfigError(f"--horizon must be >= 0 ticks, got {o.horizon}")
    if o.tp < 0:
        raise ConfigError(f"--tp must be >= 0, got {o.tp}")
    if o.counterfactual_k < 0:
        raise ConfigError(f"--counterfactual-k must be >= 0, got {o.counterfactual_k}")
    if o.kv_cpu_blocks < 0:
        raise ConfigError(f"--kv-cpu-blocks must be >= 0, got {o.kv_cpu_blocks}")
    if not (0 <= o.kv_offload_threshold <= 1):
        raise ConfigError(f"--kv-offload-threshold must be a finite value in [0, 1], got {o.kv_offload_threshold}")
    if o.kv_transfer_base_latency < 0:
        raise ConfigError(f"--kv-transfer-base-latency must be >= 0, got {o.kv_transfer_base_latency}")
    if o.admission_policy == "token-bucket":
        _finite_positive("--token-bucket-capacity", o.token_bucket_capacity)
        _finite_positive("--token-bucket-refill-rate", o.token_bucket_refill_rate)
    ADMISSION.validate(o.admission_policy)
    ROUTING.validate(o.routing_policy)
    _check_model("--routing-policy", o.routing_policy, "--routing-model", o.routing_model)
    _check_model("--admission-policy", o.admission_policy, "--admission-model", o.admission_model)
    PRIORITY.validate(o.priority_policy)
    SCHEDULER.validate(o.scheduler)
    _check_unsupported(o)
    if o.trace_level == "none" and o.counterfactual_k > 0:
        log.warning("--counterfactual-k=%d has no effect without --trace-level decisions", o.counterfactual_k)
    if o.trace_level == "none" and o.summarize_trace:
        log.warning("--summarize-trace has no effect without --trace-level decisions")
    if o.routing_policy != "weighted" and o.routing_scorers:
        log.warning("--routing-scorers has no effect when routing policy is %r (only applies to 'weighted')",
                    o.routing_policy)
    if o.results_path:
        parent = os.path.dirname(os.path.abspath(o.results_path))
        if not os.path.isdir(parent):
            raise ConfigError(f"--results-path {o.results_path}: directory {parent} does not exist")
        if os.path.isdir(o.results_path):
            raise ConfigError(f"--results-path {o.results_path}: is a directory; give a file name")
        if not os.access(parent, os.W_OK):
            raise ConfigError(f"--results-path {o.results_path}: directory {parent} is not writable")


def _check_model(policy_flag: str, policy: str, model_flag: str, path: str) -> None:
    """A learned policy needs its model file, and a model file needs a learned policy."""
    if policy == "rl":
        if not path:
            raise ConfigError(f"{policy_flag} rl needs {model_flag} (a model.zip written by blis train)")
        if not os.path.exists(path):
            raise ConfigError(f"{model_flag} {path}: no such file")
    elif path:
        raise ConfigError(f"{model_flag} is used only with {policy_flag} rl, not {policy!r}")


def _coefficients(o: RunOptions, catalog_loader) -> tuple[str, tuple, tuple, int]:
    """Model name, alpha, beta and KV blocks, from the flags or the defaults file."""
    alpha, beta = tuple(o.alpha_coeffs), tuple(o.beta_coeffs)
    kv_blocks = o.total_kv_blocks if o.total_kv_blocks is not None else DEFAULT_TOTAL_KV_BLOCKS
    model = o.model
    if not (_all_zero(alpha) and _all_zero(beta)):
        return model, alpha, beta, kv_blocks
    catalog: Catalog = catalog_loader()
    model = model.lower()
    gpu, tp, version = o.hardware, o.tp, o.vllm_version
    defaults = catalog.defaults_for(model)
    if defaults is not None:
        if tp == 0 and defaults.tp > 0:
            log.warning("no --tp given for model=%s; using default tp=%d", model, defaults.tp)
            tp = defaults.tp
        if not gpu and defaults.gpu:
            log.warning("no --hardware given for model=%s; using default GPU=%s", model, defaults.gpu)
            gpu = defaults.gpu
        if not version and defaults.vllm_version:
            log.warning("no --vllm-version given for model=%s; using default vLLM version=%s",
                        model, defaults.vllm_version)
            version = defaults.vllm_version
    entry = catalog.find_coefficients(model, tp, gpu, version)
    if entry is None:
        known = sorted({e.model for e in catalog.coefficients})
        rows = [f"{e.gpu}/tp{e.tp}/{e.vllm_version}" for e in catalog.coefficients if e.model == model]
        if rows:
            hint = f"available for this model: {', '.join(rows)}"
        else:
            close = [k for k in known if model.split('/')[-1][:6] in k][:5] or known[:5]
            hint = f"unknown model; known models include {', '.join(close)} ({len(known)} in all)"
        raise ConfigError(
            f"--model {model}: no trained coefficients for GPU={gpu or '?'}, TP={tp}, "
            f"vLLM={version or '?'} in {catalog.source} ({hint}); pass --alpha-coeffs and --beta-coeffs "
            f"to use your own")
    if o.total_kv_blocks is None:
        kv_blocks = entry.total_kv_blocks
    return model, tuple(entry.alpha), tuple(entry.beta), kv_blocks


def _requests(o: RunOptions, catalog_loader, horizon: int) -> list[Request]:
    if o.workload == "traces":
        if not o.workload_traces_filepath:
            raise WorkloadError("--workload-traces-filepath is required when using --workload traces")
        if o.prefix_groups != 1:
            raise WorkloadError("--prefix-groups applies to generated workloads, not --workload traces")
        return load_trace(o.workload_traces_filepath, horizon)
    if not (o.rate > 0 and math.isfinite(o.rate)):
        raise WorkloadError(f"--rate must be a finite value > 0, got {o.rate}")
    if o.workload == "distribution":
        spec = DistributionWorkload(
            o.rate, o.num_requests, o.prefix_tokens, o.prompt_tokens, o.prompt_tokens_stdev,
            o.prompt_tokens_min, o.prompt_tokens_max, o.output_tokens, o.output_tokens_stdev,
            o.output_tokens_min, o.output_tokens_max, prefix_groups=o.prefix_groups)
        spec.check_flag_ranges()
    else:
        preset = catalog_loader().preset(o.workload)
        if preset is None:
            raise WorkloadError(f"--workload {o.workload}: preset not found in the defaults file")
        spec = DistributionWorkload(
            o.rate, o.num_requests, preset.prefix_tokens, preset.prompt_mean, preset.prompt_stdev,
            preset.prompt_min, preset.prompt_max, preset.output_mean, preset.output_stdev,
            preset.output_min, preset.output_max, name=o.workload, prefix_groups=o.prefix_groups)
    return generate_distribution(spec, o.seed, horizon)


def cli_flags(o: RunOptions) -> list[str]:
    """``blis run`` arguments that give ``o`` (every option that differs from its default)."""
    base = RunOptions()
    args: list[str] = []
    for f in fields(RunOptions):
        value = getattr(o, f.name)
        if f.name in ("explicit", "reference_kv") or value == getattr(base, f.name):
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            args.append(flag)  # boolean flags default to off
        elif isinstance(value, tuple):
            args += [flag, ",".join(repr(float(v)) for v in value)]
        else:
            args += [flag, str(value)]
    return args


def generate_requests(o: RunOptions) -> list[Request]:
    """The workload of ``o`` (for its seed), as ``resolve`` builds it; options assumed valid."""
    return _requests(o, lambda: load_catalog(o.defaults_filepath), o.horizon)


def _with_policy_config(o: RunOptions) -> tuple[RunOptions, tuple]:
    """Apply --policy-config values the command line did not set; returns (options, bundle scorers)."""
    if not o.policy_config:
        return o, ()
    bundle = load_policy_bundle(o.policy_config)
    merged = apply_bundle(bundle, {k: getattr(o, k) for k in BUNDLE_OPTIONS}, set(o.explicit))
    scorers = merged.pop(BUNDLE_SCORERS_KEY)
    return replace(o, **merged), tuple(scorers)


def resolve(o: RunOptions) -> RunPlan:
    """Validate ``o`` and build the run; raises BlisError on bad input."""
    o, bundle_scorers = _with_policy_config(o)
    _validate_flags(o)
    # Only weighted routing reads a profile; () means the default one.
    scorers = effective_scorers(o.routing_scorers, bundle_scorers) if o.routing_policy == "weighted" else ()
    fitness = parse_fitness_weights(o.fitness_weights) if o.fitness_weights else None
    cache: list[Catalog] = []

    def catalog_loader() -> Catalog:
        if not cache:
            cache.append(load_catalog(o.defaults_filepath))
        return cache[0]

    model, alpha, beta, kv_blocks = _coefficients(o, catalog_loader)
    engine = EngineConfig(
        total_kv_blocks=kv_blocks, alpha=alpha, beta=beta, block_size=o.block_size_in_tokens,
        max_running=o.max_num_running_reqs, max_scheduled_tokens=o.max_num_scheduled_tokens,
        long_prefill_threshold=o.long_prefill_token_threshold)
    BlackboxLatency(alpha, beta)  # validates the coefficients
    config = ClusterConfig(
        engine=engine, num_instances=o.num_instances, horizon=o.horizon, seed=o.seed,
        admission_latency=o.admission_latency, routing_latency=o.routing_latency,
        snapshot_refresh_interval=o.snapshot_refresh_interval, admission_policy=o.admission_policy,
        routing_policy=o.routing_policy, priority_policy=o.priority_policy, scheduler=o.scheduler,
        routing_model=o.routing_model, admission_model=o.admission_model,
        routing_scorers=scorers, token_bucket_capacity=o.token_bucket_capacity,
        token_bucket_refill_rate=o.token_bucket_refill_rate, trace_level=o.trace_level,
        counterfactual_k=o.counterfactual_k, reference_kv=o.reference_kv)
    requests = _requests(o, catalog_loader, o.horizon)
    return RunPlan(config, requests, o.results_path, model, fitness,
                   o.summarize_trace and o.trace_level == "decisions")
