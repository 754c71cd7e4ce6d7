"""``blis replay``: simulate a trace v2 (a header and a data file, upstream BLIS's flags) and print
what ``blis run`` prints; ``--results-path`` writes one result per request, as upstream's replay
does for ``blis calibrate``. Any other ``blis run`` flag may follow (model, cluster, policies)."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Optional

import typer

from ..errors import ConfigError
from .logs import setup_logging
from .run_command import run_options_from_args

_WHERE = "blis replay"
SESSION_MODES = ("fixed", "closed-loop")


def replay_cmd(
    ctx: typer.Context,
    trace_header: str = typer.Option(
        ..., "--trace-header", help="The trace's header YAML (trace_version 2, or upstream's 3)."
    ),
    trace_data: str = typer.Option(..., "--trace-data", help="The trace's data CSV (one row per request)."),
    results_path: str = typer.Option(
        "",
        "--results-path",
        help="Write one JSON result per request (request_id, ttft_us, e2e_us, input_tokens, output_tokens, "
        "slo_class, itl_mean_us), as upstream's replay does.",
    ),
    session_mode: str = typer.Option(
        "fixed",
        "--session-mode",
        help="fixed: every request arrives at its recorded time; closed-loop: a session's later rounds "
        "arrive a think time after the previous round completes.",
    ),
    think_time_ms: Optional[float] = typer.Option(
        None,
        "--think-time-ms",
        help="With closed-loop: the think time between a round's completion and the next round (ms). "
        "Default: the gap between the two rounds' recorded arrivals.",
    ),
    log: str = typer.Option("warn", "--log", help="Log level on stderr."),
) -> None:
    """Replay a trace v2 in the simulator: each row arrives at its recorded time with its token
    counts; blis run flags after these set the cluster (e.g. --model, --num-instances)."""
    setup_logging(log)
    if session_mode not in SESSION_MODES:
        raise ConfigError(f"--session-mode: unknown mode {session_mode!r} (valid: {', '.join(SESSION_MODES)})")
    if think_time_ms is not None:
        if session_mode != "closed-loop":
            raise ConfigError("--think-time-ms applies only with --session-mode closed-loop")
        if not (think_time_ms >= 0 and math.isfinite(think_time_ms)):
            raise ConfigError(f"--think-time-ms must be a finite number >= 0, got {think_time_ms}")
    for flag, path in (("--trace-header", trace_header), ("--trace-data", trace_data)):
        if not Path(path).is_file():
            raise ConfigError(f"{flag} {path}: no such file")
    args = [*ctx.args, "--workload", "traces", "--workload-traces-filepath", trace_data, "--trace-header", trace_header]
    opts = run_options_from_args([*args, "--log", log], _WHERE)
    from .runner import execute  # the simulator loads only when a run needs it

    closed = session_mode == "closed-loop"
    sys.stdout.write(execute(opts, closed_loop=closed, think_ms=think_time_ms, replay_results=results_path))
    sys.stdout.flush()
