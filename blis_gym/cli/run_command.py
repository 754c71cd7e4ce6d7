"""``blis run``: one simulation with BLIS's flags, grouped in help panels as BLIS's CLI
reference groups them. Other commands parse ``blis run`` flags with :func:`run_options_from_args`."""

from __future__ import annotations

import functools
import sys
from dataclasses import fields
from typing import Optional

import typer

try:  # typer >= 0.26 vendors its own click
    from typer._click import exceptions as cx
except ImportError:  # pragma: no cover - older typer uses click itself
    from click import exceptions as cx

from typer.core import TyperCommand

from ..config.datafiles import SHIPPED_TRACES, shipped_names
from ..config.schema import MAX_INT64
from ..errors import BlisError, ConfigError
from ..plan.options import RunOptions
from .logs import setup_logging

_D = RunOptions()


def _floats(flag: str, text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip() != "")
    except ValueError:
        raise BlisError(f"{flag} must be comma-separated numbers, got {text!r}") from None


# Help panels, as BLIS's CLI reference groups its flags.
CORE, WORKLOAD, CLUSTER = "Core simulation", "Workload", "Cluster and routing"
OBSERVABILITY, SERVER = "Observability", "vLLM server"
PD = "Prefill/decode disaggregation"


class PanelledCommand(TyperCommand):
    """Plain-text help with the options grouped under their panel headings."""

    def format_options(self, ctx, formatter) -> None:
        groups: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None:
                groups.setdefault(getattr(param, "rich_help_panel", None) or "Help", []).append(record)
        for name, rows in groups.items():
            with formatter.section(name):
                formatter.write_dl(rows)


def _spec_help() -> str:
    names = ", ".join(shipped_names("specs"))
    return (
        f"YAML workload spec (BLIS's ServeGen-style format: clients, arrivals, length laws, SLO "
        f"classes, prefixes, multi-turn sessions), or a shipped spec by name: {names}. "
        f"Overrides --workload and --rate; --seed, --horizon and --num-requests override the spec's own."
    )


def run(
    ctx: typer.Context,
    model: str = typer.Option(
        "", "--model", help="LLM name, e.g. meta-llama/llama-3.1-8b-instruct (required).", rich_help_panel=CORE
    ),
    hardware: str = typer.Option(
        "", "--hardware", help="GPU type (H100, A100-80). Default: from the defaults file.", rich_help_panel=CORE
    ),
    tp: int = typer.Option(
        0, "--tp", help="Tensor parallelism. Default: from the defaults file.", rich_help_panel=CORE
    ),
    vllm_version: str = typer.Option(
        "", "--vllm-version", help="vLLM version. Default: from the defaults file.", rich_help_panel=CORE
    ),
    seed: int = typer.Option(_D.seed, "--seed", help="Seed for workload generation.", rich_help_panel=CORE),
    horizon: int = typer.Option(
        MAX_INT64,
        "--horizon",
        help="Simulation horizon in ticks (microseconds).",
        show_default="max int64",
        rich_help_panel=CORE,
    ),
    log: str = typer.Option(
        "warn",
        "--log",
        help="Diagnostics level on stderr: trace, debug, info, warn, error, fatal, panic.",
        rich_help_panel=CORE,
    ),
    defaults_filepath: Optional[str] = typer.Option(
        None,
        "--defaults-filepath",
        help="Coefficients file (BLIS defaults.yaml format or ours). Default: the shipped data.",
        rich_help_panel=CORE,
    ),
    model_config_folder: str = typer.Option(
        "",
        "--model-config-folder",
        help=(
            "Folder with a HuggingFace config.json: with zero coefficients, selects the roofline "
            "step-time model. Not needed for models whose facts are shipped."
        ),
        rich_help_panel=CORE,
    ),
    hardware_config: str = typer.Option(
        "",
        "--hardware-config",
        help=(
            "GPU specs file in BLIS's hardware_config.json format (roofline; --hardware names the "
            "entry). Default: the shipped specs (H100, A100-SXM)."
        ),
        rich_help_panel=CORE,
    ),
    latency_model: str = typer.Option(
        "auto",
        "--latency-model",
        help=(
            "Step-time model: auto (BLIS's rule: trained coefficients, roofline when they are zero "
            "and a config folder/hardware file is given, or when no coefficients exist for the "
            "model/GPU/TP), blackbox, roofline, or trained-physics (upstream BLIS's newer model: "
            "roofline terms times one global set of fitted coefficients; never picked by auto)."
        ),
        rich_help_panel=CORE,
    ),
    ep: int = typer.Option(
        1,
        "--ep",
        help=(
            "Expert-parallel degree: roofline divides a mixture-of-experts model's expert weights "
            "and FLOPs over TP x EP GPUs."
        ),
        rich_help_panel=CORE,
    ),
    results_path: str = typer.Option(
        "",
        "--results-path",
        help="Also write the cluster metrics and per-request rows to this JSON file.",
        rich_help_panel=CORE,
    ),
    export_trace: str = typer.Option(
        "",
        "--export-trace",
        help=(
            "Also write the run's requests as a trace v2 folder (trace_header.yaml, trace_data.csv; "
            "mode generated): replay it with --workload traces --workload-traces-filepath DIR, or "
            "send it to a server with blis observe."
        ),
        rich_help_panel=WORKLOAD,
    ),
    workload: str = typer.Option(
        "distribution",
        "--workload",
        help="chatbot, summarization, contentgen, multidoc, distribution or traces.",
        rich_help_panel=WORKLOAD,
    ),
    workload_spec: str = typer.Option("", "--workload-spec", help=_spec_help(), rich_help_panel=WORKLOAD),
    workload_traces_filepath: str = typer.Option(
        "",
        "--workload-traces-filepath",
        help=(
            "Trace for --workload traces: BLIS's CSV (token id arrays), a trace v2 folder "
            "(trace_header.yaml + trace_data.csv, replayed as BLIS's LoadTraceV2Requests: token ids "
            "drawn for --seed), a Mooncake JSONL, Azure LLM inference CSV or BurstGPT CSV trace (plain "
            "or .gz, recognised by content), or a shipped trace by name: " + ", ".join(SHIPPED_TRACES) + "."
        ),
        rich_help_panel=WORKLOAD,
    ),
    trace_header: str = typer.Option(
        "",
        "--trace-header",
        help=(
            "A trace v2 header kept apart from its data (then --workload-traces-filepath is the data CSV); "
            "trace_version 2 (BLIS's) or 3 (upstream's newer: its goodput targets apply). See blis replay."
        ),
        rich_help_panel=WORKLOAD,
    ),
    rate: float = typer.Option(_D.rate, "--rate", help="Requests per second.", rich_help_panel=WORKLOAD),
    num_requests: int = typer.Option(
        _D.num_requests, "--num-requests", help="Number of requests to generate.", rich_help_panel=WORKLOAD
    ),
    prefix_tokens: int = typer.Option(
        0, "--prefix-tokens", help="Shared prefix length (tokens).", rich_help_panel=WORKLOAD
    ),
    prefix_groups: int = typer.Option(
        1,
        "--prefix-groups",
        help="Distinct shared prefixes, one drawn per request (a blis-gym extension; 1 = BLIS).",
        rich_help_panel=WORKLOAD,
    ),
    prompt_tokens: int = typer.Option(
        512, "--prompt-tokens", help="Mean prompt length (tokens).", rich_help_panel=WORKLOAD
    ),
    prompt_tokens_stdev: int = typer.Option(
        256, "--prompt-tokens-stdev", help="Prompt length stdev.", rich_help_panel=WORKLOAD
    ),
    prompt_tokens_min: int = typer.Option(
        2, "--prompt-tokens-min", help="Minimum prompt length.", rich_help_panel=WORKLOAD
    ),
    prompt_tokens_max: int = typer.Option(
        7000, "--prompt-tokens-max", help="Maximum prompt length.", rich_help_panel=WORKLOAD
    ),
    output_tokens: int = typer.Option(
        512, "--output-tokens", help="Mean output length (tokens).", rich_help_panel=WORKLOAD
    ),
    output_tokens_stdev: int = typer.Option(
        256, "--output-tokens-stdev", help="Output length stdev.", rich_help_panel=WORKLOAD
    ),
    output_tokens_min: int = typer.Option(
        2, "--output-tokens-min", help="Minimum output length.", rich_help_panel=WORKLOAD
    ),
    output_tokens_max: int = typer.Option(
        7000, "--output-tokens-max", help="Maximum output length.", rich_help_panel=WORKLOAD
    ),
    trace_start: float = typer.Option(
        0.0,
        "--trace-start",
        help="With --workload traces: replay from this many seconds into the trace's own clock "
        "(Mooncake's timestamps; for wall-clock traces, seconds since the first request); arrivals "
        "are re-based to it.",
        rich_help_panel=WORKLOAD,
    ),
    trace_duration: float = typer.Option(
        0.0,
        "--trace-duration",
        help="With --workload traces: replay only requests arriving in [start, start + this) seconds (0 = to the end).",
        rich_help_panel=WORKLOAD,
    ),
    trace_speedup: float = typer.Option(
        1.0,
        "--trace-speedup",
        help="With --workload traces: divide every arrival time by this (e.g. 4: four times the "
        "traffic), after the window is cut.",
        rich_help_panel=WORKLOAD,
    ),
    trace_window_spans: str = typer.Option(
        "",
        "--trace-window-spans",
        help="With --workload traces and --trace-duration: draw the window's start from --seed, "
        "a whole second inside START:END seconds; with two spans (e.g. 0:2400,2400:3600) seeds from "
        "2^30 up (held out from training) draw from the second. Overrides --trace-start.",
        rich_help_panel=WORKLOAD,
    ),
    num_instances: int = typer.Option(1, "--num-instances", help="Number of instances.", rich_help_panel=CLUSTER),
    instance_pool: str = typer.Option(
        "",
        "--instance-pool",
        help=(
            "A heterogeneous fleet (ours; BLIS's instances are identical): GPU:TP[:xCOUNT],... e.g. "
            "H100:2:x2,A100-80:1:x2; each kind's coefficients and KV size come from the defaults "
            "file. Sets the number of instances."
        ),
        rich_help_panel=CLUSTER,
    ),
    routing_policy: str = typer.Option(
        "round-robin",
        "--routing-policy",
        help=(
            "round-robin, least-loaded, weighted, prefix-affinity, always-busiest; rl (a trained "
            "model, see --routing-model); or lookahead (a clairvoyant oracle that simulates each "
            "choice; see --lookahead-*)."
        ),
        rich_help_panel=CLUSTER,
    ),
    routing_model: str = typer.Option(
        "",
        "--routing-model",
        help="model.zip (or its folder) written by blis train on blis_gym/Routing-v0, for --routing-policy rl.",
        rich_help_panel=CLUSTER,
    ),
    routing_scorers: str = typer.Option(
        "",
        "--routing-scorers",
        help=(
            "Weighted-routing profile as name:weight,... over prefix-affinity, queue-depth, "
            "kv-utilization, load-balance, and upstream's precise-prefix-cache, no-hit-lru, "
            "active-requests, running-requests, load-aware, vllm-dp. "
            "Default: prefix-affinity:3,queue-depth:2,kv-utilization:2."
        ),
        rich_help_panel=CLUSTER,
    ),
    admission_policy: str = typer.Option(
        "always-admit",
        "--admission-policy",
        help="always-admit, token-bucket, reject-all, or rl (a trained model, see --admission-model).",
        rich_help_panel=CLUSTER,
    ),
    admission_model: str = typer.Option(
        "",
        "--admission-model",
        help="model.zip (or its folder) written by blis train on blis_gym/Admission-v0, for --admission-policy rl.",
        rich_help_panel=CLUSTER,
    ),
    token_bucket_capacity: float = typer.Option(
        10000.0, "--token-bucket-capacity", help="Token bucket capacity (tokens).", rich_help_panel=CLUSTER
    ),
    token_bucket_refill_rate: float = typer.Option(
        1000.0, "--token-bucket-refill-rate", help="Token bucket refill rate (tokens/s).", rich_help_panel=CLUSTER
    ),
    priority_policy: str = typer.Option(
        "constant", "--priority-policy", help="constant, slo-based or inverted-slo.", rich_help_panel=CLUSTER
    ),
    scheduler: str = typer.Option(
        "fcfs", "--scheduler", help="fcfs, priority-fcfs, sjf or reverse-priority.", rich_help_panel=CLUSTER
    ),
    admission_latency: int = typer.Option(
        0, "--admission-latency", help="Admission latency (microseconds).", rich_help_panel=CLUSTER
    ),
    routing_latency: int = typer.Option(
        0, "--routing-latency", help="Routing latency (microseconds).", rich_help_panel=CLUSTER
    ),
    policy_config: str = typer.Option(
        "",
        "--policy-config",
        help=(
            "YAML policy bundle (BLIS schema), or a shipped one by name (weighted-default, "
            "token-bucket, slo-priority, pathological, pathological-scheduler, the tuned "
            "profiles tuned-prefix-heavy, tuned-mooncake-conversation, and autoscale-day: an "
            "autoscaler over node pools). Flags given on the command line override it."
        ),
        rich_help_panel=CLUSTER,
    ),
    lookahead_rollout: str = typer.Option(
        "weighted",
        "--lookahead-rollout",
        help="With --routing-policy lookahead: the routing policy that decides in its simulated futures.",
        rich_help_panel=CLUSTER,
    ),
    lookahead_horizon: str = typer.Option(
        "end",
        "--lookahead-horizon",
        help="With --routing-policy lookahead: how far each future is simulated, in seconds, or 'end'.",
        rich_help_panel=CLUSTER,
    ),
    lookahead_objective: str = typer.Option(
        "ttft",
        "--lookahead-objective",
        help="With --routing-policy lookahead: what its futures minimize, ttft or time-in-system.",
        rich_help_panel=CLUSTER,
    ),
    lookahead_future: bool = typer.Option(
        False,
        "--lookahead-future",
        help=(
            "With --routing-policy lookahead: simulate arrivals still to come too (default: only "
            "requests already in the system)."
        ),
        rich_help_panel=CLUSTER,
    ),
    lookahead_candidates: int = typer.Option(
        0,
        "--lookahead-candidates",
        help=(
            "With --routing-policy lookahead: simulate only the K instances the rollout policy ranks "
            "best (by its scores, else by effective load); 0 = every instance."
        ),
        rich_help_panel=CLUSTER,
    ),
    lookahead_margin: float = typer.Option(
        0.0,
        "--lookahead-margin",
        help=(
            "With --routing-policy lookahead: leave the rollout policy's pick only for an instance "
            "whose future saves more than this many request-milliseconds of the objective (0 = any saving)."
        ),
        rich_help_panel=CLUSTER,
    ),
    snapshot_refresh_interval: int = typer.Option(
        0,
        "--snapshot-refresh-interval",
        help="KV snapshot refresh interval (microseconds; 0 = always fresh).",
        rich_help_panel=CLUSTER,
    ),
    cache_signal_delay: int = typer.Option(
        _D.cache_signal_delay,
        "--cache-signal-delay",
        help=(
            "How stale (microseconds) the prefix caches that the precise-prefix-cache and no-hit-lru "
            "scorers ask may be: a copy is taken when a decision finds the last one this old "
            "(0 = live). No effect on other policies."
        ),
        rich_help_panel=CLUSTER,
    ),
    prefill_instances: int = typer.Option(
        0,
        "--prefill-instances",
        help="Instances 0..P-1 prefill split requests (with --decode-instances; 0 = no pools).",
        rich_help_panel=PD,
    ),
    decode_instances: int = typer.Option(
        0,
        "--decode-instances",
        help="The next D instances decode, and serve requests that are not split whole.",
        rich_help_panel=PD,
    ),
    prefill_decode_instances: int = typer.Option(
        0,
        "--prefill-decode-instances",
        help="The next S instances serve both pools (shared).",
        rich_help_panel=PD,
    ),
    pd_decider: str = typer.Option(
        _D.pd_decider,
        "--pd-decider",
        help=(
            "Whether a request is split (prefilled on the prefill pool, KV shipped to its decode "
            "instance, chosen first): never, always, or prefix-threshold (split when the decode "
            "instance lacks more than --pd-prefix-threshold of the prompt's tokens)."
        ),
        rich_help_panel=PD,
    ),
    pd_prefix_threshold: int = typer.Option(
        _D.pd_prefix_threshold,
        "--pd-prefix-threshold",
        help="Uncached tokens above which prefix-threshold splits.",
        rich_help_panel=PD,
    ),
    pd_transfer_bandwidth: float = typer.Option(
        _D.pd_transfer_bandwidth, "--pd-transfer-bandwidth", help="KV transfer bandwidth (GB/s).", rich_help_panel=PD
    ),
    pd_transfer_base_latency: float = typer.Option(
        _D.pd_transfer_base_latency,
        "--pd-transfer-base-latency",
        help="Fixed latency of each KV transfer (ms).",
        rich_help_panel=PD,
    ),
    pd_transfer_contention: bool = typer.Option(
        False,
        "--pd-transfer-contention",
        help="Concurrent transfers share the bandwidth (each gets an equal share when it starts).",
        rich_help_panel=PD,
    ),
    prefill_routing_scorers: str = typer.Option(
        "",
        "--prefill-routing-scorers",
        help="Weighted-routing profile of the prefill pool (name:weight,...); default: --routing-policy.",
        rich_help_panel=PD,
    ),
    decode_routing_scorers: str = typer.Option(
        "",
        "--decode-routing-scorers",
        help="Weighted-routing profile of the decode pool (name:weight,...); default: --routing-policy.",
        rich_help_panel=PD,
    ),
    prefill_hardware: str = typer.Option(
        "", "--prefill-hardware", help="GPU of the prefill pool (default: --hardware).", rich_help_panel=PD
    ),
    decode_hardware: str = typer.Option(
        "", "--decode-hardware", help="GPU of the decode and shared pools (default: --hardware).", rich_help_panel=PD
    ),
    prefill_tp: int = typer.Option(
        0, "--prefill-tp", help="TP of the prefill pool (default: --tp).", rich_help_panel=PD
    ),
    decode_tp: int = typer.Option(
        0, "--decode-tp", help="TP of the decode and shared pools (default: --tp).", rich_help_panel=PD
    ),
    model_autoscaler_interval_us: float = typer.Option(
        0.0,
        "--model-autoscaler-interval-us",
        help=(
            "Autoscaler tick (microseconds; 0 = off); overrides the --policy-config bundle's "
            "autoscaler.interval_us. Needs the bundle's node_pools."
        ),
        rich_help_panel=CLUSTER,
    ),
    trace_level: str = typer.Option(
        "none",
        "--trace-level",
        help="none, or decisions to record every admission and routing decision.",
        rich_help_panel=OBSERVABILITY,
    ),
    counterfactual_k: int = typer.Option(
        0,
        "--counterfactual-k",
        help="Top-k candidates and regret kept per routing decision (with --trace-level decisions).",
        rich_help_panel=OBSERVABILITY,
    ),
    summarize_trace: bool = typer.Option(
        False,
        "--summarize-trace",
        help="Print the === Trace Summary === section (with --trace-level decisions).",
        rich_help_panel=OBSERVABILITY,
    ),
    fitness_weights: str = typer.Option(
        "",
        "--fitness-weights",
        help=(
            "Print a fitness score: key:weight,... over throughput, tokens_per_sec, p99_ttft, "
            "p50_ttft, mean_ttft, p99_e2e, p50_e2e, mean_e2e."
        ),
        rich_help_panel=OBSERVABILITY,
    ),
    slo_ttft: str = typer.Option(
        "",
        "--slo-ttft",
        help=(
            "Goodput TTFT limits per SLO class, class=duration,... (e.g. critical=100ms,standard=500ms; "
            "'default' for requests without a class). Adds goodput_rps, slo_attainment and per_class to "
            "the cluster block. Overrides a workload spec's goodput_slo_targets."
        ),
        rich_help_panel=OBSERVABILITY,
    ),
    slo_itl: str = typer.Option(
        "",
        "--slo-itl",
        help="Goodput limits on each request's mean ITL per SLO class (e.g. default=50ms).",
        rich_help_panel=OBSERVABILITY,
    ),
    slo_e2e: str = typer.Option(
        "",
        "--slo-e2e",
        help="Goodput E2E limits per SLO class (e.g. critical=5s,standard=30s).",
        rich_help_panel=OBSERVABILITY,
    ),
    total_kv_blocks: Optional[int] = typer.Option(
        None,
        "--total-kv-blocks",
        help="KV cache blocks per instance. Default: the model's figure from the defaults file, else 1000000.",
        rich_help_panel=SERVER,
    ),
    max_num_running_reqs: int = typer.Option(
        256, "--max-num-running-reqs", help="Max requests in the running batch.", rich_help_panel=SERVER
    ),
    max_num_seqs: Optional[int] = typer.Option(
        None, "--max-num-seqs", help="vLLM's name for --max-num-running-reqs.", rich_help_panel=SERVER
    ),
    max_num_scheduled_tokens: int = typer.Option(
        2048, "--max-num-scheduled-tokens", help="Max new tokens per step.", rich_help_panel=SERVER
    ),
    max_num_batched_tokens: Optional[int] = typer.Option(
        None, "--max-num-batched-tokens", help="vLLM's name for --max-num-scheduled-tokens.", rich_help_panel=SERVER
    ),
    preemption_policy: str = typer.Option(
        _D.preemption_policy,
        "--preemption-policy",
        help=(
            "Which running request a full KV cache evicts: fcfs (the batch's newest, BLIS's reference) "
            "or priority (the least urgent by SLO class, then the latest arrival)."
        ),
        rich_help_panel=SERVER,
    ),
    block_size_in_tokens: int = typer.Option(
        16, "--block-size-in-tokens", help="Tokens per KV block.", rich_help_panel=SERVER
    ),
    max_model_len: int = typer.Option(
        2048, "--max-model-len", help="Accepted for BLIS compatibility; unused, as in BLIS.", rich_help_panel=SERVER
    ),
    long_prefill_token_threshold: int = typer.Option(
        0, "--long-prefill-token-threshold", help="Chunked-prefill chunk size (0 = off).", rich_help_panel=SERVER
    ),
    alpha_coeffs: str = typer.Option(
        "0,0,0",
        "--alpha-coeffs",
        help=(
            "alpha0,alpha1,alpha2 (overrides the defaults file). With --latency-model trained-physics: "
            "queueing, post-decode and per-output-token overheads in µs, replacing the shipped ones."
        ),
        rich_help_panel=SERVER,
    ),
    beta_coeffs: str = typer.Option(
        "0,0,0",
        "--beta-coeffs",
        help=(
            "beta0,beta1,beta2 (overrides the defaults file). With --latency-model trained-physics: "
            "7 to 11 step-time coefficients replacing the shipped ones (see docs/hardware.md)."
        ),
        rich_help_panel=SERVER,
    ),
    kv_cpu_blocks: int = typer.Option(
        0, "--kv-cpu-blocks", help="CPU-tier KV blocks (0 = single tier).", rich_help_panel=SERVER
    ),
    kv_offload_threshold: float = typer.Option(
        0.9, "--kv-offload-threshold", help="GPU utilization that triggers offload.", rich_help_panel=SERVER
    ),
    kv_transfer_bandwidth: float = typer.Option(
        100.0, "--kv-transfer-bandwidth", help="CPU<->GPU blocks per tick.", rich_help_panel=SERVER
    ),
    kv_transfer_base_latency: int = typer.Option(
        0, "--kv-transfer-base-latency", help="Fixed per-transfer latency (ticks).", rich_help_panel=SERVER
    ),
    reference_kv: bool = typer.Option(
        False,
        "--reference-kv",
        hidden=True,
        help="Reproduce BLIS's KV block leak (differential tests).",
        rich_help_panel=SERVER,
    ),
) -> None:
    """Run one simulation and print BLIS's metrics sections."""
    setup_logging(log)
    opts = _run_options(ctx, dict(locals()))
    from .runner import execute  # the simulator loads only when a run needs it

    sys.stdout.write(execute(opts, progress=sys.stderr.isatty()))
    sys.stdout.flush()


def _from_command_line(ctx: typer.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


# vLLM's (and upstream BLIS's) names for our options.
_ALIASES = {"max_num_seqs": "max_num_running_reqs", "max_num_batched_tokens": "max_num_scheduled_tokens"}


def _run_options(ctx: typer.Context, values: dict) -> RunOptions:
    """``blis run``'s parsed parameters as RunOptions (options given on the command line marked
    explicit, coefficient lists parsed)."""
    values["explicit"] = frozenset(name for name in values if name != "ctx" and _from_command_line(ctx, name))
    for alias, name in _ALIASES.items():
        given = values.pop(alias, None)
        if given is None:
            continue
        if name in values["explicit"]:
            flag = "--" + name.replace("_", "-")
            raise ConfigError(f"--{alias.replace('_', '-')} and {flag} are the same setting: give one of them")
        values[name] = given
        values["explicit"] |= {name}
    values["alpha_coeffs"] = _floats("--alpha-coeffs", values["alpha_coeffs"])
    values["beta_coeffs"] = _floats("--beta-coeffs", values["beta_coeffs"])
    return RunOptions(**{f.name: values[f.name] for f in fields(RunOptions) if f.name in values})


def run_options_from_args(args: list[str], where: str = "blis run options") -> RunOptions:
    """RunOptions from ``blis run`` arguments (e.g. the words after ``--`` of another command);
    a bad flag or value raises ConfigError naming ``where``."""
    command = _standalone_command()
    try:
        ctx = command.make_context("blis run", list(args), resilient_parsing=False)
    except cx.UsageError as exc:
        raise ConfigError(f"{where}: {exc.format_message()}") from None
    return _run_options(ctx, dict(ctx.params))


@functools.lru_cache(maxsize=1)
def _standalone_command():
    """``blis run`` as a click command of its own, for parsing its flags elsewhere."""
    single = typer.Typer(add_completion=False)
    single.command("run", cls=PanelledCommand)(run)
    return typer.main.get_command(single)
