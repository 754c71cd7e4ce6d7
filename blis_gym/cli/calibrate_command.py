"""``blis calibrate``: replay a real-mode trace in the simulator and compare the latencies
(see :mod:`blis_gym.calibrate`). The words after ``--`` are ``blis run`` flags for the
simulated cluster."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Optional

import typer

from ..config.slo import flag_targets
from ..errors import ConfigError
from ..fileio import write_atomic
from ..plan.options import WORKLOAD_OPTIONS
from .logs import setup_logging
from .run_command import run_options_from_args

# blis run flags for output calibrate does not write.
_OUTPUT_FLAGS = ("results_path", "export_trace")


def calibrate_cmd(
    ctx: typer.Context,
    trace: str = typer.Argument(
        ...,
        metavar="TRACE",
        help="Real-mode v2 trace from blis observe: a folder with trace_header.yaml and trace_data.csv, or the CSV.",
    ),
    out: str = typer.Option("calibration.json", "--out", help="Write the JSON report here."),
    plot: bool = typer.Option(
        False,
        "--plot",
        help="Also draw the report's name with .png: simulated against real "
        "per metric, and their CDFs (needs the plot extra).",
    ),
    network_rtt_ms: Optional[float] = typer.Option(
        None,
        "--network-rtt-ms",
        help="Round trip (ms) added to every simulated latency. Default: the header's network.measured_rtt_ms, else 0.",
    ),
    bandwidth_mbps: float = typer.Option(
        0.0,
        "--bandwidth-mbps",
        help="Link bandwidth (Mbit/s) for upload and download delays at 4 bytes a token (0 = none).",
    ),
    warm_up: Optional[int] = typer.Option(
        None, "--warm-up", help="Leave out requests with id below N. Default: the header's warm_up_requests."
    ),
    slo_ttft: str = typer.Option(
        "",
        "--slo-ttft",
        help="TTFT limits per SLO class (class=duration,...): the report adds attainment, real and simulated.",
    ),
    slo_itl: str = typer.Option("", "--slo-itl", help="Mean-ITL limits per SLO class."),
    slo_e2e: str = typer.Option("", "--slo-e2e", help="E2E limits per SLO class (they beat the trace header's)."),
    itl_data: Optional[str] = typer.Option(
        None,
        "--itl-data",
        help="ITL file of chunk times (blis observe --record-itl); real ITL comes from it. Default: the "
        "trace's trace_data.itl.csv when there is one.",
    ),
) -> None:
    """Replay a real-mode trace in the simulator and compare TTFT, ITL and E2E, request by request.

    Usage: blis calibrate TRACE [OPTIONS] -- BLIS_RUN_FLAGS... (the simulated cluster, e.g.
    --model M --num-instances 2; the trace header's server section fills in the model, TP,
    max_num_seqs and block size where the flags do not). Prints a table; writes the JSON report.
    """
    # lazy: the simulator and the calibration maths load only when the command runs
    from ..calibrate import calibrate, format_table
    from ..calibrate.plot import check_plot_available, plot_calibration
    from ..calibrate.replay import flag_name

    if network_rtt_ms is not None and not (network_rtt_ms >= 0 and math.isfinite(network_rtt_ms)):
        raise ConfigError(f"--network-rtt-ms must be a finite value >= 0, got {network_rtt_ms}")
    if not (bandwidth_mbps >= 0 and math.isfinite(bandwidth_mbps)):
        raise ConfigError(f"--bandwidth-mbps must be a finite value >= 0 (0 = no delay), got {bandwidth_mbps}")
    if warm_up is not None and warm_up < 0:
        raise ConfigError(f"--warm-up must be >= 0, got {warm_up}")
    if plot:
        check_plot_available()  # before the simulation, not after it
    opts = run_options_from_args(list(ctx.args), "blis calibrate (blis run flags after --)")
    given = [flag_name(n) for n in WORKLOAD_OPTIONS if n in opts.explicit]  # the trace is the workload
    if given:
        raise ConfigError(f"blis calibrate replays the trace as the workload; drop {', '.join(given)}")
    given = [flag_name(n) for n in _OUTPUT_FLAGS if n in opts.explicit]
    if given:
        raise ConfigError(f"blis calibrate writes only its report (--out); drop {', '.join(given)}")
    setup_logging(opts.log)

    slo_flags = flag_targets(slo_ttft, slo_itl, slo_e2e)  # bad pairs fail before the simulation
    result = calibrate(trace, opts, network_rtt_ms, bandwidth_mbps, warm_up, itl_data, slo_flags)
    sys.stdout.write(format_table(result.report))
    if result.itl_file:
        p = result.pairs
        extra = "".join(
            f", {n} {what}"
            for n, what in ((p.itl_missing, "missing from it"), (p.itl_dropped, "with only negative gaps"))
            if n
        )
        sys.stdout.write(f"(real ITL from the chunk times in {result.itl_file}: {len(p.itl.real)} requests{extra})\n")
    for cls, dims in result.document.get("slo_attainment", {}).items():
        shown = ", ".join(f"{d} real {v['real']:.3f} sim {v['sim']:.3f} (n={v['count']})" for d, v in dims.items())
        sys.stdout.write(f"SLO attainment {cls}: {shown}\n")
    sys.stdout.flush()
    write_atomic(out, json.dumps(result.document, indent=2) + "\n", "--out")
    print(f"wrote {out}", file=sys.stderr)
    if plot:
        chart = Path(out).with_suffix(".png")
        plot_calibration(result.pairs, chart)
        print(f"wrote {chart}", file=sys.stderr)
