"""``blis calibrate``: replay a real-mode trace in the simulator and compare the latencies.

The trace (``blis observe``'s v2 trace: a folder with ``trace_header.yaml`` and
``trace_data.csv``) is replayed with ``--workload traces``: each request arrives at its
``arrival_time_us`` (the intended send schedule) with its token counts. The words after ``--``
are ``blis run`` flags for the simulated cluster; where they leave the model, TP, batch size,
block size or model length unset, the trace header's ``server`` section fills them in. Each
real request is then paired with its simulated twin (``request_<id>``) and the two are
compared per metric (TTFT, ITL, E2E; see :mod:`blis_gym.report.calibration`).
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional

import typer

from ..engine.metrics import InstanceMetrics
from ..errors import ConfigError, WorkloadError
from ..plan import RunOptions
from ..report.calibration import (
    METRIC_NAMES, CalibrationConfig, CalibrationPairs, ConfigMatch, SimResult, build_calibration_report,
    format_table, prepare_calibration_pairs, report_dict,
)
from ..workload.trace_replay import PREFIX_TOKENS
from ..workload.tracev2 import TraceHeader, TraceV2, load_trace_v2

_ID_PREFIX = "request_"
# blis run flags that pick the workload: calibrate's workload is the trace.
_WORKLOAD_FLAGS = ("workload", "workload_spec", "workload_traces_filepath", "rate", "num_requests",
                   "prefix_tokens", "prefix_groups", "prompt_tokens", "prompt_tokens_stdev", "prompt_tokens_min",
                   "prompt_tokens_max", "output_tokens", "output_tokens_stdev", "output_tokens_min",
                   "output_tokens_max")
# blis run flags for output calibrate does not write.
_OUTPUT_FLAGS = ("results_path", "export_trace")
# (trace header server key, RunOptions field) pairs the simulator can take from the header.
_SERVER_FIELDS = (("model", "model"), ("tensor_parallel", "tp"), ("max_num_seqs", "max_num_running_reqs"),
                  ("block_size", "block_size_in_tokens"), ("max_model_len", "max_model_len"))


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def match_server_config(opts: RunOptions, header: TraceHeader) -> tuple[RunOptions, ConfigMatch]:
    """``opts`` with the trace header's server settings where no flag gave them, and which
    settings matched the header, fell back to defaults, or were overridden by a flag."""
    server = header.server
    matched: list[str] = []
    defaulted: list[str] = []
    overridden: list[str] = []
    updates: dict[str, Any] = {}
    for key, name in _SERVER_FIELDS:
        value = getattr(server, key) if server is not None else None
        ours = getattr(opts, name)
        if not value:  # 0 or "": the header does not say
            if name not in opts.explicit:
                shown = ours if ours else "from the defaults file"
                defaulted.append(f"{key} (not in trace header): {_flag(name)} {shown}")
            continue
        if name == "tp" and opts.instance_pool:  # the pool sets each instance's TP
            overridden.append(f"{_flag('instance_pool')} {opts.instance_pool} (trace header: {key}={value})")
            continue
        if name in opts.explicit:
            same = str(ours).lower() == str(value).lower() if name == "model" else ours == value
            if same:
                matched.append(f"{key}={value}")
            else:
                overridden.append(f"{_flag(name)} {ours} (trace header: {key}={value})")
            continue
        updates[name] = value
        matched.append(f"{key}={value} (from trace header)")
    if server is not None and server.gpu_memory_utilization:
        defaulted.append(f"gpu_memory_utilization={server.gpu_memory_utilization:g} is not modelled: KV blocks "
                         f"from --total-kv-blocks or the defaults file")
    if updates:
        opts = replace(opts, explicit=opts.explicit | set(updates), **updates)
    return opts, ConfigMatch(tuple(matched), tuple(defaulted), tuple(overridden))


def sim_results(aggregate: InstanceMetrics, trace: TraceV2) -> list[SimResult]:
    """The completed simulated requests as :class:`SimResult` (µs, server-side). Token counts
    are the trace's view: the replayed prompt less the synthetic prefix replay added."""
    grouped = {r.request_id for r in trace.records if r.prefix_group}
    out = []
    for rid, e2e in aggregate.e2es.items():
        if not rid.startswith(_ID_PREFIX) or rid not in aggregate.ttfts:
            continue
        try:
            number = int(rid[len(_ID_PREFIX):])
        except ValueError:
            continue
        rec = aggregate.requests.get(rid)
        n_in = rec.num_prefill_tokens if rec is not None else 0
        n_out = rec.num_decode_tokens if rec is not None else 0
        if number in grouped:
            n_in -= PREFIX_TOKENS  # the shared prefix replay put before the prompt
        out.append(SimResult(number, float(aggregate.ttfts[rid]), float(e2e), n_in, n_out))
    return out


def _check_plot_available() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ConfigError("--plot needs matplotlib: pip install 'blis-gym[plot]'") from None


def plot_calibration(pairs: CalibrationPairs, path: Path) -> None:
    """Draw ``path``: per metric, simulated against real latency (ms) per request with the
    y = x line (top row), and the real and simulated CDFs (bottom row)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in METRIC_NAMES if getattr(pairs, n).real]
    fig, axes = plt.subplots(2, len(names), figsize=(4.2 * len(names), 7.6), squeeze=False)
    for col, name in enumerate(names):
        pair = getattr(pairs, name)
        real = [v / 1e3 for v in pair.real]
        sim = [v / 1e3 for v in pair.sim]
        ax = axes[0][col]
        ax.scatter(real, sim, s=9, alpha=0.6)
        low, high = min(real + sim), max(real + sim)
        ax.plot([low, high], [low, high], color="grey", linestyle="--", linewidth=1, label="y = x")
        ax.set_xlabel(f"real {name} (ms)")
        ax.set_ylabel(f"simulated {name} (ms)")
        ax.set_title(f"{name}: {len(real)} requests", fontsize=10)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        ax = axes[1][col]
        for label, values in (("real", real), ("simulated", sim)):
            xs = sorted(values)
            ax.step(xs, [(i + 1) / len(xs) for i in range(len(xs))], where="post", label=label)
        ax.set_xlabel(f"{name} (ms)")
        ax.set_ylabel("fraction of requests")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    try:
        fig.savefig(tmp, dpi=90)
        tmp.replace(path)  # a finished chart or none
    except OSError as exc:
        raise ConfigError(f"--plot {path}: cannot write: {exc.strerror}") from None
    finally:
        plt.close(fig)
        if tmp.exists():
            tmp.unlink()


def calibrate_cmd(
    ctx: typer.Context,
    trace: str = typer.Argument(..., metavar="TRACE", help="Real-mode v2 trace from blis observe: a folder with "
                                                           "trace_header.yaml and trace_data.csv, or the CSV."),
    out: str = typer.Option("calibration.json", "--out", help="Write the JSON report here."),
    plot: bool = typer.Option(False, "--plot", help="Also draw the report's name with .png: simulated against real "
                                                    "per metric, and their CDFs (needs the plot extra)."),
    network_rtt_ms: Optional[float] = typer.Option(None, "--network-rtt-ms", help="Round trip (ms) added to every "
                                                   "simulated latency. Default: the header's "
                                                   "network.measured_rtt_ms, else 0."),
    bandwidth_mbps: float = typer.Option(0.0, "--bandwidth-mbps", help="Link bandwidth (Mbit/s) for upload and "
                                         "download delays at 4 bytes a token (0 = none)."),
    warm_up: Optional[int] = typer.Option(None, "--warm-up", help="Leave out requests with id below N. Default: the "
                                          "header's warm_up_requests."),
) -> None:
    """Replay a real-mode trace in the simulator and compare TTFT, ITL and E2E, request by request.

    Usage: blis calibrate TRACE [OPTIONS] -- BLIS_RUN_FLAGS... (the simulated cluster, e.g.
    --model M --num-instances 2; the trace header's server section fills in the model, TP,
    max_num_seqs and block size where the flags do not). Prints a table; writes the JSON report.
    """
    from ..plan import resolve, simulate
    from ..report.render import write_atomic
    from .app import _setup_logging, run_options_from_args

    if network_rtt_ms is not None and not (network_rtt_ms >= 0 and math.isfinite(network_rtt_ms)):
        raise ConfigError(f"--network-rtt-ms must be a finite value >= 0, got {network_rtt_ms}")
    if not (bandwidth_mbps >= 0 and math.isfinite(bandwidth_mbps)):
        raise ConfigError(f"--bandwidth-mbps must be a finite value >= 0 (0 = no delay), got {bandwidth_mbps}")
    if warm_up is not None and warm_up < 0:
        raise ConfigError(f"--warm-up must be >= 0, got {warm_up}")
    if plot:
        _check_plot_available()  # before the simulation, not after it
    opts = run_options_from_args(list(ctx.args), "blis calibrate (blis run flags after --)")
    given = [_flag(n) for n in _WORKLOAD_FLAGS if n in opts.explicit]
    if given:
        raise ConfigError(f"blis calibrate replays the trace as the workload; drop {', '.join(given)}")
    given = [_flag(n) for n in _OUTPUT_FLAGS if n in opts.explicit]
    if given:
        raise ConfigError(f"blis calibrate writes only its report (--out); drop {', '.join(given)}")
    _setup_logging(opts.log)

    data = load_trace_v2(trace)
    header = data.header
    if header.mode != "real":
        raise WorkloadError(f"{trace}: has no observed timings (mode: {header.mode or 'unset'}); calibrate needs a "
                            f"real-mode trace from blis observe")
    if not data.records:
        raise WorkloadError(f"{trace}: the trace has no requests")
    rtt_ms = network_rtt_ms if network_rtt_ms is not None else (
        header.network.measured_rtt_ms if header.network is not None and header.network.measured_rtt_ms > 0 else 0.0)
    config = CalibrationConfig(
        warm_up_requests=header.warm_up_requests if warm_up is None else warm_up,
        network_rtt_us=int(rtt_ms * 1000),  # truncated to whole µs, as BLIS converts it
        bandwidth_mbps=bandwidth_mbps, ttft_streaming_only=True)

    candidates = sum(1 for r in data.records if r.request_id >= config.warm_up_requests and r.status == "ok")
    if candidates == 0:  # known before simulating anything
        raise WorkloadError(f"{trace}: no request to compare: each of the {len(data.records)} is warm-up (request_id "
                            f"below {config.warm_up_requests}) or not ok")
    opts, config_match = match_server_config(opts, header)
    # The trace's arrival times are the intended send schedule; the simulator replays them.
    opts = replace(opts, workload="traces", workload_traces_filepath=str(trace))
    result = simulate(resolve(opts))

    pairs = prepare_calibration_pairs(data.records, sim_results(result.aggregate, data), config)
    if pairs.matched_count == 0:
        raise WorkloadError(
            f"{trace}: no request could be compared ({len(data.records)} in the trace: {pairs.excluded_warm_up} "
            f"warm-up, {pairs.excluded_non_ok} not ok, {pairs.unmatched_real} without a completed simulated twin "
            f"or with negative latencies)")
    report = build_calibration_report(pairs, config_match)
    normalization = {"normalization": {"warm_up_requests": config.warm_up_requests,
                                       "network_rtt_us": config.network_rtt_us,
                                       "bandwidth_mbps": config.bandwidth_mbps}}
    text = json.dumps(report_dict(report, normalization), indent=2) + "\n"
    sys.stdout.write(format_table(report))
    sys.stdout.flush()
    write_atomic(out, text, "--out")
    print(f"wrote {out}", file=sys.stderr)
    if plot:
        chart = Path(out).with_suffix(".png")
        plot_calibration(pairs, chart)
        print(f"wrote {chart}", file=sys.stderr)
