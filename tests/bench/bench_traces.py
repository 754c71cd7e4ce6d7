#!/usr/bin/env python
"""Production traces: the whole Mooncake conversation trace through ``blis run``, and a window of
it against BLIS (not a pytest test).

1. **Full trace**: ``mooncake-conversation`` (12,031 requests, 145 million prompt tokens) on
   ``--num-instances`` instances (16) at its own speed: wall time and peak memory of the run.
2. **A window against BLIS**: the window (``--start``, ``--duration`` seconds, ``--speedup``) is
   written as BLIS's CSV trace (shared blocks as shared tokens); ours replays the Mooncake
   window and the CSV, BLIS (``--reference``, optional) the CSV. Wall times, ratio, and whether
   the cluster metrics agree.

Usage::

    python tests/bench/bench_traces.py
    python tests/bench/bench_traces.py --reference ~/blis-ref/blis --reference-cwd ~/blis-ref/src
    python tests/bench/bench_traces.py --skip-full --start 0 --duration 120 --instances 4
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_run import MODEL, diff_metrics, extract_cluster_metrics, run_child

from blis_gym.plan import RunOptions, generate_requests
from blis_gym.workload.traces import write_trace

TRACE = "mooncake-conversation"


def ours(args: list[str], cwd: Path, timeout: float):
    result = run_child(
        [sys.executable, "-m", "blis_gym", "run", "--model", MODEL, "--log", "error", *args], cwd, timeout
    )
    if result.returncode != 0:
        raise SystemExit(f"blis run failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--full-instances", type=int, default=16, help="instances for the full trace")
    ap.add_argument("--skip-full", action="store_true", help="leave out the full trace")
    ap.add_argument("--start", type=float, default=0.0, help="the window's start (s)")
    ap.add_argument("--duration", type=float, default=120.0, help="the window's length (s)")
    ap.add_argument("--speedup", type=float, default=1.0)
    ap.add_argument("--instances", type=int, default=4, help="instances for the window")
    ap.add_argument("--routing-policy", default="weighted")
    ap.add_argument("--reference", default="", help="a BLIS binary (commit 96a0542f)")
    ap.add_argument("--reference-cwd", default="", help="the folder BLIS runs in (its defaults.yaml)")
    ap.add_argument("--timeout", type=float, default=3600.0)
    args = ap.parse_args()
    here = Path(tempfile.mkdtemp(prefix="blis-traces-"))

    if not args.skip_full:
        full = ours(
            ["--workload", "traces", "--workload-traces-filepath", TRACE, "--num-instances", str(args.full_instances)],
            here,
            args.timeout,
        )
        m = extract_cluster_metrics(full.stdout) or {}
        print(
            f"full {TRACE} on {args.full_instances} instances: {full.wall_s:.1f} s, peak "
            f"{full.peak_rss_kib / 1024:.0f} MiB; {m.get('completed_requests')} requests completed, "
            f"{m.get('total_input_tokens')} prompt tokens, TTFT mean {m.get('ttft_mean_ms', 0):.1f} ms"
        )

    window = [
        "--trace-start",
        repr(args.start),
        "--trace-duration",
        repr(args.duration),
        "--trace-speedup",
        repr(args.speedup),
    ]
    cluster = ["--num-instances", str(args.instances), "--routing-policy", args.routing_policy]
    requests = generate_requests(
        RunOptions(
            model=MODEL,
            workload="traces",
            workload_traces_filepath=TRACE,
            trace_start=args.start,
            trace_duration=args.duration,
            trace_speedup=args.speedup,
        )
    )
    csv_path = here / "window.csv"
    write_trace(requests, csv_path)
    print(
        f"window {args.start:g}+{args.duration:g} s at {args.speedup:g}x: {len(requests)} requests, "
        f"{sum(r.n_in for r in requests)} prompt tokens, up to {max(r.n_in for r in requests)} a prompt; "
        f"the CSV is {csv_path.stat().st_size / 1e6:.0f} MB"
    )
    trace_run = ours(
        ["--workload", "traces", "--workload-traces-filepath", TRACE, *window, *cluster], here, args.timeout
    )
    csv_run = ours(["--workload", "traces", "--workload-traces-filepath", str(csv_path), *cluster], here, args.timeout)
    same = trace_run.stdout == csv_run.stdout
    print(f"ours, the Mooncake window: {trace_run.wall_s:.2f} s, peak {trace_run.peak_rss_kib / 1024:.0f} MiB")
    print(
        f"ours, the window's CSV:    {csv_run.wall_s:.2f} s, peak {csv_run.peak_rss_kib / 1024:.0f} MiB; "
        f"output {'identical' if same else 'DIFFERENT'}"
    )
    if args.reference:
        cwd = Path(args.reference_cwd or Path(args.reference).parent)
        ref = run_child(
            [
                args.reference,
                "run",
                "--model",
                MODEL,
                "--log",
                "error",
                "--workload",
                "traces",
                "--workload-traces-filepath",
                str(csv_path),
                *cluster,
            ],
            cwd,
            args.timeout,
        )
        diffs = diff_metrics(extract_cluster_metrics(trace_run.stdout) or {}, extract_cluster_metrics(ref.stdout) or {})
        print(
            f"BLIS, the window's CSV:    {ref.wall_s:.2f} s, peak {ref.peak_rss_kib / 1024:.0f} MiB; "
            f"stdout {'identical' if ref.stdout == trace_run.stdout else 'differs'}, cluster metrics "
            f"{'equal' if not diffs else 'differ: ' + ', '.join(diffs)}; ours/BLIS "
            f"{trace_run.wall_s / ref.wall_s:.4f}"
        )


if __name__ == "__main__":
    main()
