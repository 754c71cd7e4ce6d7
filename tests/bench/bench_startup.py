#!/usr/bin/env python
"""Start-up benchmark: how long a short ``blis`` command takes, and where the time goes
(not a pytest test).

Each command runs ``--runs`` times in a fresh process; the median and minimum wall times are
reported, with the bare interpreter's start for scale. The target is ``blis run --model
meta-llama/llama-3.1-8b-instruct --num-requests 1`` under 0.25 s. With ``--imports``, the
slowest imports of that command (``python -X importtime``) follow.

Usage::

    python tests/bench/bench_startup.py                   # the installed blis
    python tests/bench/bench_startup.py --runs 30 --imports
    python tests/bench/bench_startup.py --python /other/venv/bin/python   # another install
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

TARGET_S = 0.25
RUN = ["run", "--model", "meta-llama/llama-3.1-8b-instruct", "--num-requests", "1", "--log", "error"]


def _blis(python: str) -> list[str]:
    """The ``blis`` console script installed beside ``python`` (what a user types), else
    ``python -m blis_gym``."""
    script = os.path.join(os.path.dirname(python), "blis")
    return [script] if os.path.isfile(script) else [python, "-m", "blis_gym"]


def timed(cmd: list[str], runs: int, cwd: str) -> tuple[float, float]:
    """(median, min) wall seconds of ``cmd`` over ``runs`` fresh processes (one warm-up first)."""
    subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times), min(times)


def slowest_imports(python: str, cwd: str, top: int) -> list[tuple[float, str]]:
    """(cumulative ms, module) of the ``top`` slowest imports of the target command."""
    done = subprocess.run(
        [python, "-X", "importtime", "-m", "blis_gym", *RUN], cwd=cwd, capture_output=True, text=True, check=True
    )
    rows = []
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = line.split("|")
            if cumulative.strip().isdigit():
                rows.append((int(cumulative) / 1000, name.rstrip()))
    return sorted(rows, reverse=True)[:top]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=20, help="runs per command (after one warm-up)")
    ap.add_argument("--python", default=sys.executable, help="the interpreter of the install to measure")
    ap.add_argument("--imports", action="store_true", help="also list the slowest imports of the target command")
    args = ap.parse_args()
    blis = _blis(args.python)
    cwd = tempfile.mkdtemp(prefix="blis-startup-")  # any directory: the command needs no files
    rows = [
        ("python -c pass", [args.python, "-c", "pass"]),
        ("import blis_gym", [args.python, "-c", "import blis_gym"]),
        ("import blis_gym.cli.app", [args.python, "-c", "import blis_gym.cli.app"]),
        ("blis --help", [*blis, "--help"]),
        ("blis run --num-requests 1", [*blis, *RUN]),
    ]
    print(f"{'command':<28} {'median s':>9} {'min s':>7}   ({args.runs} runs each, {' '.join(blis)})")
    results = {}
    for name, cmd in rows:
        results[name] = timed(cmd, args.runs, cwd)
        print(f"{name:<28} {results[name][0]:>9.3f} {results[name][1]:>7.3f}")
    median = results["blis run --num-requests 1"][0]
    verdict = "met" if median < TARGET_S else "missed"
    print(
        f"target: blis run --num-requests 1 under {TARGET_S} s: {verdict} "
        f"(median {median:.3f} s = {median / TARGET_S:.2f} x the target; "
        f"the interpreter alone {results['python -c pass'][0]:.3f} s)"
    )
    if args.imports:
        print("\nslowest imports (cumulative ms) of blis run --num-requests 1:")
        for ms, name in slowest_imports(args.python, cwd, 25):
            print(f"  {ms:8.1f}  {name}")


if __name__ == "__main__":
    main()
