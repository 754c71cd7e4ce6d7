"""``blis sweep`` on Ray against the serial loop, and where the overhead goes. Not a pytest test.

Runs one 64-point sweep of small runs (rate x instances x seeds for llama-3.1-8b, about a
second each) twice as whole commands in fresh processes: ``--serial`` (in-process, no Ray)
and on an embedded Ray with ``--workers N`` (default: every core). Reports both wall times
and their ratio, then the parts of the overhead, each measured on its own:

- embedded Ray start and shutdown (``ray_session``);
- task launch: the round trip of a no-op Ray task, in a batch of 200;
- serialisation: pickling a point and a result (bytes and microseconds, both ways);
- the journal append and the Parquet + CSV write of the 64-row table;
- the slowdown of the simulation itself inside Ray workers (the journal's per-point seconds).

    python tests/bench/bench_sweep.py                 # 64 points, all cores
    python tests/bench/bench_sweep.py --workers 2 --requests 1500 --json sweep_bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RATES = [20, 40, 60, 80, 100, 120, 140, 160]


def sweep_text(requests: int) -> str:
    return f"""
base: {{model: meta-llama/llama-3.1-8b-instruct, num_requests: {requests}, routing_policy: least-loaded}}
axes:
  - rate: {RATES}
  - num_instances: [2, 4]
  - seed: [1, 2, 3, 4]
"""


def timed_command(args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "blis_gym", "sweep", *args, "--no-progress"], check=True, capture_output=True)
    return time.perf_counter() - started


def journal_seconds(out: Path) -> float:
    return sum(json.loads(line)["seconds"] for line in (out / "points.jsonl").read_text().splitlines())


def overheads(spec_path: Path, out: Path, workers: int) -> dict:
    from blis_gym.distributed import ray_session
    from blis_gym.sweep import load_sweep
    from blis_gym.sweep.point import run_point
    from blis_gym.sweep.table import Journal, write_table

    spec = load_sweep(spec_path)
    point = spec.points[0]
    result = run_point(point)
    n = 2000
    started = time.perf_counter()
    for _ in range(n):
        pickle.loads(pickle.dumps(point))
        pickle.loads(pickle.dumps(result))
    serial_us = (time.perf_counter() - started) / n * 1e6
    sizes = (len(pickle.dumps(point)), len(pickle.dumps(result)))

    rows = [
        {"point": p.index, **p.axis_values, "blis_run_args": "", **result["metrics"], "error": "", "node": "local"}
        for p in spec.points
    ]
    folder = Path(tempfile.mkdtemp(prefix="bench-table-"))
    started = time.perf_counter()
    write_table(folder, spec.columns, rows)
    table_ms = (time.perf_counter() - started) * 1e3
    journal = Journal(folder)
    started = time.perf_counter()
    for p in spec.points:
        journal.append({"key": p.key, "point": p.index, "node": "local", "seconds": 0.5, **result})
    journal_us = (time.perf_counter() - started) / len(spec.points) * 1e6
    journal.close()

    started = time.perf_counter()
    with ray_session(workers=workers) as ray:
        up = time.perf_counter() - started

        @ray.remote(num_cpus=1)
        def noop(x):
            return x

        ray.get([noop.remote(i) for i in range(2 * workers)])  # workers warm
        started = time.perf_counter()
        ray.get([noop.remote(i) for i in range(200)])
        launch_ms = (time.perf_counter() - started) / 200 * 1e3
        down_started = time.perf_counter()
    down = time.perf_counter() - down_started
    return {
        "ray_start_s": up,
        "ray_shutdown_s": down,
        "task_round_trip_ms": launch_ms,
        "pickle_round_trip_us": serial_us,
        "point_bytes": sizes[0],
        "result_bytes": sizes[1],
        "table_write_ms": table_ms,
        "journal_append_us": journal_us,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--requests", type=int, default=1500, help="requests per point (default 1500)")
    ap.add_argument("--json", default="", help="also write the figures to this file")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    spec = tmp / "sweep.yaml"
    spec.write_text(sweep_text(args.requests), "utf-8")
    serial_out, ray_out = tmp / "serial", tmp / "ray"
    serial_s = timed_command([str(spec), "--out", str(serial_out), "--serial"])
    ray_s = timed_command([str(spec), "--out", str(ray_out), "--workers", str(args.workers)])
    points = 8 * 2 * 4
    figures = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "points": points,
        "requests_per_point": args.requests,
        "workers": args.workers,
        "serial_wall_s": serial_s,
        "ray_wall_s": ray_s,
        "ratio": ray_s / serial_s,
        "serial_compute_s": journal_seconds(serial_out),
        "ray_compute_s": journal_seconds(ray_out),
        **overheads(spec, tmp / "probe", args.workers),
    }
    figures["ray_compute_slowdown"] = figures["ray_compute_s"] / figures["serial_compute_s"]
    print(f"{points} points of {args.requests} requests, {args.workers} workers ({figures['machine']})")
    print(f"  serial (--serial):        {serial_s:7.2f} s wall, {figures['serial_compute_s']:.2f} s simulating")
    print(
        f"  Ray (--workers {args.workers}):       {ray_s:7.2f} s wall, {figures['ray_compute_s']:.2f} s simulating "
        f"(x{figures['ray_compute_slowdown']:.2f} per point)"
    )
    print(f"  ratio Ray / serial:       {figures['ratio']:7.3f}")
    print(f"  Ray start / shutdown:     {figures['ray_start_s']:.2f} s / {figures['ray_shutdown_s']:.2f} s")
    print(f"  task round trip:          {figures['task_round_trip_ms']:.2f} ms (no-op task, batch of 200)")
    print(
        f"  pickle point + result:    {figures['pickle_round_trip_us']:.0f} us "
        f"({figures['point_bytes']} + {figures['result_bytes']} bytes)"
    )
    print(f"  journal append:           {figures['journal_append_us']:.0f} us per point")
    print(f"  Parquet + CSV, {points} rows: {figures['table_write_ms']:.1f} ms")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n", "utf-8")


if __name__ == "__main__":
    main()
