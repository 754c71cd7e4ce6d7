"""``blis run``'s options as one frozen record, named and defaulted as BLIS names its flags.

:class:`RunOptions` is what the CLI parses, what scenarios and policy bundles
set, and what :func:`blis_gym.plan.resolve` turns into a validated run.
"""

from __future__ import annotations

import logging
import typing
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Optional, Union

from ..config.schema import CACHE_SIGNAL_DELAY, MAX_INT64
from ..errors import ConfigError

#: Workload seeds from here up are never drawn for training (an environment's own draws stay
#: below it): evaluation episodes use them, and trace windows come from the held-out span.
HELD_OUT_SEED = 2**30

#: ``--log`` levels (BLIS's names) and the Python logging level each stands for.
LOG_LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "fatal": logging.CRITICAL,
    "panic": logging.CRITICAL,
}


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
    export_trace: str = ""  # ours: write the generated workload as a trace v2 folder
    # workload
    workload: str = "distribution"
    workload_spec: str = ""
    workload_traces_filepath: str = ""
    trace_header: str = ""  # a trace v2 header kept apart from its data (blis replay --trace-header)
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
    # ours: the part of a trace replayed, and how fast (see workload.windows)
    trace_start: float = 0.0  # seconds on the trace's clock
    trace_duration: float = 0.0  # seconds; 0 = to the end
    trace_speedup: float = 1.0
    trace_window_spans: str = ""  # A:B[,C:D]: the window's start drawn from --seed
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
    cache_signal_delay: int = CACHE_SIGNAL_DELAY  # µs; upstream BLIS's flag (f90a1e3a)
    # ours: the lookahead routing oracle (--routing-policy lookahead)
    lookahead_rollout: str = "weighted"
    lookahead_horizon: str = "end"  # seconds, or "end"
    lookahead_objective: str = "ttft"
    lookahead_future: bool = False
    lookahead_candidates: int = 0  # 0 = every instance
    lookahead_margin: float = 0.0  # request-milliseconds another instance must save
    # prefill/decode disaggregation (upstream BLIS's flags, f90a1e3a)
    prefill_instances: int = 0
    decode_instances: int = 0
    prefill_decode_instances: int = 0
    pd_decider: str = "never"
    pd_prefix_threshold: int = 16
    pd_transfer_bandwidth: float = 25.0  # GB/s
    pd_transfer_base_latency: float = 0.05  # ms
    pd_transfer_contention: bool = False
    prefill_routing_scorers: str = ""
    decode_routing_scorers: str = ""
    prefill_hardware: str = ""
    decode_hardware: str = ""
    prefill_tp: int = 0
    decode_tp: int = 0
    # autoscaling (upstream BLIS's flag; the rest is in the --policy-config bundle)
    model_autoscaler_interval_us: float = 0.0
    # observability
    trace_level: str = "none"
    counterfactual_k: int = 0
    summarize_trace: bool = False
    fitness_weights: str = ""
    # goodput targets per SLO class (upstream's flags): "class=duration,..." e.g. "default=500ms"
    slo_ttft: str = ""
    slo_itl: str = ""
    slo_e2e: str = ""
    # vLLM server
    total_kv_blocks: Optional[int] = None  # None: from the defaults file, else 1000000
    max_num_running_reqs: int = 256
    max_num_scheduled_tokens: int = 2048
    preemption_policy: str = "fcfs"  # upstream's: fcfs (BLIS's reference) or priority
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
        if f.name in ("explicit", "reference_kv", "export_trace"):
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


#: Options that choose a run's requests or shape them (lengths, rate, count, prefixes).
WORKLOAD_OPTIONS: tuple[str, ...] = (
    "workload",
    "workload_spec",
    "workload_traces_filepath",
    "trace_header",
    "rate",
    "num_requests",
    "prefix_tokens",
    "prefix_groups",
    "prompt_tokens",
    "prompt_tokens_stdev",
    "prompt_tokens_min",
    "prompt_tokens_max",
    "output_tokens",
    "output_tokens_stdev",
    "output_tokens_min",
    "output_tokens_max",
    "trace_start",
    "trace_duration",
    "trace_speedup",
    "trace_window_spans",
)

# Options a configuration file (a scenario, a sweep) may not set: they concern output files,
# the terminal and the differential tests.
_FILE_EXCLUDED = frozenset({"results_path", "export_trace", "log", "summarize_trace", "explicit", "reference_kv"})
#: ``blis run`` options a scenario or sweep file may set, named like the flags with underscores.
FILE_OPTIONS: tuple[str, ...] = tuple(f.name for f in fields(RunOptions) if f.name not in _FILE_EXCLUDED)
#: Options naming files: in a configuration file, a relative path is read from the file's folder
#: when that file exists (names of shipped files are left alone).
PATH_OPTIONS = (
    "model_config_folder",
    "hardware_config",
    "workload_spec",
    "workload_traces_filepath",
    "trace_header",
    "policy_config",
)


def option_types(cls) -> dict[str, type]:
    """Each field's value type of the options dataclass ``cls``, ``Optional[...]`` unwrapped
    (``tuple`` for coefficient lists)."""
    out = {}
    for name, hint in typing.get_type_hints(cls).items():
        if typing.get_origin(hint) is Union:
            hint = next(a for a in typing.get_args(hint) if a is not type(None))
        out[name] = typing.get_origin(hint) or hint
    return out


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def coerce_option(where: str, kind: type, value: Any) -> Any:
    """A YAML ``value`` checked against an option's type ``kind`` (ints widen to floats, lists of
    numbers become tuples; ``None`` keeps the default). Raises ConfigError naming ``where``."""
    if value is None:
        return None
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = _is_number(value)
        value = float(value) if ok else value
    elif kind is tuple:
        ok = isinstance(value, (list, tuple)) and all(_is_number(v) for v in value)
        value = tuple(float(v) for v in value) if ok else value
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise ConfigError(f"{where}: expected {'a list of numbers' if kind is tuple else kind.__name__}, got {value!r}")
    return value


def resolve_paths(values: dict, folder: Path) -> dict:
    """``values`` with each relative path option that exists under ``folder`` made absolute."""
    out = dict(values)
    for key in PATH_OPTIONS:
        value = out.get(key)
        if isinstance(value, str) and value and (folder / value).exists():
            out[key] = str(folder / value)
    return out
