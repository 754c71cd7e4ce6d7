"""Randomized sweep of whole runs: roofline models, CPU KV tiers, tight caches.

    python tests/bench/fuzz_runs.py [--trials 200] [--start 0] [--timeout 60]

Each trial is ``testkit.sim.random_run_options(trial)`` (the suite runs the first 12): it must
finish within the timeout with every request completed or dropped and every instance's KV
books balanced, no block held once its requests are gone. Prints one line per failure and a
summary (how many used roofline, a CPU tier, preempted, dropped); exits 1 on any failure.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from testkit.sim import random_run_options, run_and_check


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--timeout", type=int, default=60, help="seconds per run")
    args = ap.parse_args(argv)
    logging.getLogger("blis_gym").setLevel(logging.CRITICAL)
    signal.signal(signal.SIGALRM, _alarm)
    failures = 0
    kinds = {"roofline": 0, "cpu tier": 0, "both": 0}
    slowest = (0.0, -1)
    started = time.perf_counter()
    for trial in range(args.start, args.start + args.trials):
        opts = random_run_options(trial)
        roof, tier = opts.latency_model == "roofline", opts.kv_cpu_blocks > 0
        kinds["roofline"] += roof
        kinds["cpu tier"] += tier
        kinds["both"] += roof and tier
        t0 = time.perf_counter()
        signal.alarm(args.timeout)
        try:
            run_and_check(opts)
        except _Timeout:
            failures += 1
            print(f"trial {trial}: did not finish in {args.timeout} s")
        except Exception as exc:
            failures += 1
            print(f"trial {trial}: {type(exc).__name__}: {exc}")
        finally:
            signal.alarm(0)
        slowest = max(slowest, (time.perf_counter() - t0, trial))
    print(
        f"{args.trials} runs in {time.perf_counter() - started:.1f} s: {failures} failed; "
        f"{kinds['roofline']} roofline, {kinds['cpu tier']} with a CPU tier ({kinds['both']} both); "
        f"slowest trial {slowest[1]} ({slowest[0]:.2f} s)"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
