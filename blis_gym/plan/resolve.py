"""``blis run`` options resolved into a validated run, the way BLIS resolves its flags.

``resolve`` applies a policy bundle, the defaults file (per-model GPU/TP/vLLM
version, coefficients, KV blocks) and the workload (:mod:`.workloads`), and
validates everything, raising a :class:`~blis_gym.errors.BlisError` with one
clear line on bad input. ``simulate`` runs the result. The CLI, the
environments, the baselines and the examples all build runs through here.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, replace
from typing import Callable, Optional

from ..cluster.sessions import SessionLoop
from ..cluster.simulator import ClusterResult, ClusterSimulator
from ..config.autoscale import AutoscaleConfig
from ..config.bundle import BUNDLE_OPTIONS, BUNDLE_SCORERS_KEY, apply_bundle, effective_scorers, load_policy_bundle
from ..config.catalog import Catalog, load_catalog
from ..config.fitness import parse_fitness_weights
from ..config.routers import model_location, shipped_models
from ..config.schema import ClusterConfig, CPUTierConfig, EngineConfig, InstanceClass
from ..config.slo import SLOTargets, flag_targets, merge_targets
from ..engine.batching import PREEMPTION_POLICIES
from ..engine.latency import BlackboxLatency
from ..engine.request import Request
from ..errors import ConfigError, WorkloadError
from ..goparse import parse_float
from ..policies import ADMISSION, PRIORITY, ROUTING, SCHEDULER
from ..policies.lookahead import LookaheadConfig
from .autoscale import resolve_autoscale
from .disaggregation import check_pd_flags, pd_config, pd_enabled, pd_pool_options
from .latency import LATENCY_MODELS, LatencyChoice, choose_latency
from .options import LOG_LEVELS, RunOptions
from .pool import resolve_pool
from .workloads import WORKLOAD_TYPES, build_workload

log = logging.getLogger("blis_gym")


@dataclass(frozen=True)
class RunPlan:
    """A validated run: the cluster config, the requests and the output settings."""

    config: ClusterConfig
    requests: list[Request]
    results_path: str
    model: str
    fitness_weights: Optional[dict] = None  # key -> weight; None: no fitness section
    summarize_trace: bool = False
    slo_targets: Optional[SLOTargets] = None  # goodput targets per SLO class; None: no goodput


def _finite_positive(flag: str, value: float) -> None:
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"{flag} must be a finite value > 0, got {value}")


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
    if o.ep < 1:
        raise ConfigError(f"--ep must be >= 1, got {o.ep}")
    if o.latency_model not in LATENCY_MODELS:
        raise ConfigError(f"--latency-model: unknown model {o.latency_model!r} (valid: {', '.join(LATENCY_MODELS)})")
    if o.counterfactual_k < 0:
        raise ConfigError(f"--counterfactual-k must be >= 0, got {o.counterfactual_k}")
    if o.kv_cpu_blocks < 0:
        raise ConfigError(f"--kv-cpu-blocks must be >= 0, got {o.kv_cpu_blocks}")
    if not (0 <= o.kv_offload_threshold <= 1):
        raise ConfigError(f"--kv-offload-threshold must be a finite value in [0, 1], got {o.kv_offload_threshold}")
    if o.kv_transfer_base_latency < 0:
        raise ConfigError(f"--kv-transfer-base-latency must be >= 0, got {o.kv_transfer_base_latency}")
    if o.kv_cpu_blocks > 0 and not (o.kv_transfer_bandwidth > 0 and math.isfinite(o.kv_transfer_bandwidth)):
        raise ConfigError(
            "--kv-transfer-bandwidth must be a finite value > 0 when --kv-cpu-blocks > 0, "
            f"got {o.kv_transfer_bandwidth}"
        )
    if o.admission_policy == "token-bucket":
        _finite_positive("--token-bucket-capacity", o.token_bucket_capacity)
        _finite_positive("--token-bucket-refill-rate", o.token_bucket_refill_rate)
    ADMISSION.validate(o.admission_policy)
    ROUTING.validate(o.routing_policy)
    check_pd_flags(o)
    _check_model("--routing-policy", o.routing_policy, "--routing-model", o.routing_model)
    _check_model("--admission-policy", o.admission_policy, "--admission-model", o.admission_model)
    PRIORITY.validate(o.priority_policy)
    SCHEDULER.validate(o.scheduler)
    if (o.trace_start, o.trace_duration, o.trace_speedup, o.trace_window_spans) != (0.0, 0.0, 1.0, ""):
        from ..workload.windows import TraceWindow  # lazy: only runs that cut a trace

        TraceWindow.from_flags(o.trace_start, o.trace_duration, o.trace_speedup, o.trace_window_spans)  # checks
        if o.workload != "traces" or o.workload_spec:
            log.warning("--trace-* options apply only to --workload traces; they have no effect here")
    if o.preemption_policy not in PREEMPTION_POLICIES:
        raise ConfigError(
            f"--preemption-policy: unknown policy {o.preemption_policy!r} (valid: {', '.join(PREEMPTION_POLICIES)})"
        )
    if o.preemption_policy != "fcfs" and o.reference_kv:
        raise ConfigError("--preemption-policy priority is upstream's newer option: not in --reference-kv mode")
    if o.trace_level not in ("none", "decisions"):
        raise ConfigError(f"--trace-level: unknown trace level {o.trace_level!r} (valid: none, decisions)")
    if o.trace_level == "none" and o.counterfactual_k > 0:
        log.warning("--counterfactual-k=%d has no effect without --trace-level decisions", o.counterfactual_k)
    if o.trace_level == "none" and o.summarize_trace:
        log.warning("--summarize-trace has no effect without --trace-level decisions")
    if o.routing_policy != "weighted" and o.routing_scorers:
        log.warning(
            "--routing-scorers has no effect when routing policy is %r (only applies to 'weighted')", o.routing_policy
        )
    if o.results_path:
        parent = os.path.dirname(os.path.abspath(o.results_path))
        if not os.path.isdir(parent):
            raise ConfigError(f"--results-path {o.results_path}: directory {parent} does not exist")
        if os.path.isdir(o.results_path):
            raise ConfigError(f"--results-path {o.results_path}: is a directory; give a file name")
        if not os.access(parent, os.W_OK):
            raise ConfigError(f"--results-path {o.results_path}: directory {parent} is not writable")
    if o.export_trace and os.path.exists(o.export_trace) and not os.path.isdir(o.export_trace):
        raise ConfigError(
            f"--export-trace {o.export_trace}: is a file; give a folder (it gets trace_header.yaml and trace_data.csv)"
        )


def _lookahead(o: RunOptions) -> LookaheadConfig:
    """The --lookahead-* flags as a config (validated there); they only matter to that policy."""
    if o.lookahead_rollout not in ROUTING.names():
        raise ConfigError(
            f"--lookahead-rollout: unknown routing policy {o.lookahead_rollout!r} (valid: {', '.join(ROUTING.names())})"
        )
    horizon = None
    if o.lookahead_horizon != "end":
        seconds = parse_float(o.lookahead_horizon.strip())
        if seconds is None or not (seconds >= 0 and math.isfinite(seconds)):
            raise ConfigError(
                f"--lookahead-horizon must be a number of seconds >= 0 or 'end', got {o.lookahead_horizon!r}"
            )
        horizon = int(seconds * 1e6)
    if not (o.lookahead_margin >= 0 and math.isfinite(o.lookahead_margin)):
        raise ConfigError(f"--lookahead-margin must be a number of milliseconds >= 0, got {o.lookahead_margin}")
    return LookaheadConfig(
        o.lookahead_rollout,
        horizon,
        o.lookahead_objective,
        o.lookahead_future,
        o.lookahead_candidates,
        int(round(o.lookahead_margin * 1000)),
    )


def _check_model(policy_flag: str, policy: str, model_flag: str, path: str) -> None:
    """A learned policy needs its model file, and a model file needs a learned policy."""
    if policy == "rl":
        if not path:
            raise ConfigError(f"{policy_flag} rl needs {model_flag} (a model.zip written by blis train)")
        if not os.path.exists(model_location(path)):
            shipped = ", ".join(shipped_models()) or "none"
            raise ConfigError(f"{model_flag} {path}: no such file or shipped model (shipped: {shipped})")
    elif path:
        raise ConfigError(f"{model_flag} is used only with {policy_flag} rl, not {policy!r}")


def _with_policy_config(o: RunOptions) -> tuple[RunOptions, tuple, Optional[AutoscaleConfig]]:
    """Apply --policy-config values the command line did not set; returns (options, bundle
    scorers, the bundle's autoscaling sections)."""
    if not o.policy_config:
        return o, (), None
    bundle = load_policy_bundle(o.policy_config)
    merged = apply_bundle(bundle, {k: getattr(o, k) for k in BUNDLE_OPTIONS}, set(o.explicit))
    scorers = merged.pop(BUNDLE_SCORERS_KEY)
    return replace(o, **merged), tuple(scorers), bundle.autoscale


def resolve(o: RunOptions) -> RunPlan:
    """Validate ``o`` and build the run; raises BlisError on bad input."""
    o, bundle_scorers, bundle_autoscale = _with_policy_config(o)
    _validate_flags(o)
    # Only weighted routing reads a profile; () means the default one.
    scorers = effective_scorers(o.routing_scorers, bundle_scorers) if o.routing_policy == "weighted" else ()
    fitness = parse_fitness_weights(o.fitness_weights) if o.fitness_weights else None
    slo_flags = flag_targets(o.slo_ttft, o.slo_itl, o.slo_e2e)
    cache: list[Catalog] = []

    def catalog_loader() -> Catalog:
        if not cache:
            cache.append(load_catalog(o.defaults_filepath))
        return cache[0]

    if pd_enabled(o):
        o = pd_pool_options(o, catalog_loader())
    pool = resolve_pool(o, catalog_loader)
    if pool:  # the engine keeps the shared settings; the first class stands for the rest
        first = pool[0]
        choice = LatencyChoice(o.model.lower(), first.alpha, first.beta, first.total_kv_blocks, first.roofline)
    else:
        choice = choose_latency(o, catalog_loader)
    model = choice.model
    engine = EngineConfig(
        total_kv_blocks=choice.total_kv_blocks,
        alpha=choice.alpha,
        beta=choice.beta,
        block_size=o.block_size_in_tokens,
        max_running=o.max_num_running_reqs,
        max_scheduled_tokens=o.max_num_scheduled_tokens,
        long_prefill_threshold=o.long_prefill_token_threshold,
        roofline=choice.roofline,
        preemption_policy=o.preemption_policy,
        cpu_tier=CPUTierConfig(
            o.kv_cpu_blocks, o.kv_offload_threshold, o.kv_transfer_bandwidth, o.kv_transfer_base_latency
        )
        if o.kv_cpu_blocks > 0
        else None,
    )
    if choice.roofline is None:
        BlackboxLatency(choice.alpha, choice.beta)  # validates the coefficients
    base = InstanceClass("", choice.alpha, choice.beta, choice.total_kv_blocks, roofline=choice.roofline)
    autoscale, gpu, tp, scaling_classes = resolve_autoscale(o, bundle_autoscale, pool, base, catalog_loader)
    workload = build_workload(o, catalog_loader)
    config = ClusterConfig(
        engine=engine,
        num_instances=len(pool) or o.num_instances,
        horizon=workload.horizon,
        seed=o.seed,
        admission_latency=o.admission_latency,
        routing_latency=o.routing_latency,
        snapshot_refresh_interval=o.snapshot_refresh_interval,
        cache_signal_delay=o.cache_signal_delay,
        admission_policy=o.admission_policy,
        routing_policy=o.routing_policy,
        priority_policy=o.priority_policy,
        scheduler=o.scheduler,
        routing_model=model_location(o.routing_model),
        admission_model=model_location(o.admission_model),
        routing_scorers=scorers,
        token_bucket_capacity=o.token_bucket_capacity,
        token_bucket_refill_rate=o.token_bucket_refill_rate,
        trace_level=o.trace_level,
        counterfactual_k=o.counterfactual_k,
        reference_kv=o.reference_kv,
        lookahead=_lookahead(o),
        pool=pool,
        pd=pd_config(o, catalog_loader),
        autoscale=autoscale,
        gpu=gpu,
        tp=tp,
        scaling_classes=scaling_classes,
    )
    slo = merge_targets(slo_flags, header=workload.header_targets, spec=workload.slo_targets) or None
    return RunPlan(
        config,
        workload.requests,
        o.results_path,
        model,
        fitness,
        o.summarize_trace and o.trace_level == "decisions",
        slo,
    )


def generate_requests(o: RunOptions) -> list[Request]:
    """The workload of ``o`` (for its seed), as ``resolve`` builds it; options assumed valid."""
    return build_workload(o, lambda: load_catalog(o.defaults_filepath)).requests


def simulate(
    plan: RunPlan,
    progress: Optional[Callable[[int], None]] = None,
    closed_loop: bool = False,
    think_ms: Optional[float] = None,
) -> ClusterResult:
    """Run a plan to the end; ``progress(n)`` is called as requests are routed. ``closed_loop``
    replays sessions in a closed loop (see ``cluster.sessions``): each next round ``think_ms``
    after the previous one completes, or (None) after the recorded gap."""
    sim = ClusterSimulator.from_config(plan.config, plan.requests)
    if closed_loop:
        SessionLoop(plan.requests, None if think_ms is None else int(think_ms * 1000)).attach(sim)
    if progress is not None:
        sim.progress = progress
    started = time.perf_counter()
    result = sim.run()
    log.info("simulation wall-clock time: %.3fs", time.perf_counter() - started)
    return result
