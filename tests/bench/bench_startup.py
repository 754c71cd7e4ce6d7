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
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 0.25
RUN = ["run", "--model", "meta-llama/llama-3.1-8b-instruct", "--num-requests", "1", "--log", "error"]


def _blis(python: str) -> list[str]:
    """The ``blis`` console script installed beside ``python`` (what a user types), else
    ``python -m blis_gym``."""
    script = os.path.join(os.path.dirname(python), "blis")
    return [script] if os.path.isfile(script) else [python, "-m", "blis_gym"]


_FOLDERS = """
import importlib.util
for name in ("blis_gym", "blis_gym.envs", "blis_gym.baselines", "blis_gym.agents"):
    print(*importlib.util.find_spec(name).submodule_search_locations, sep="\\n")
"""


def package_folders(python: str) -> list[Path]:
    """The installed package's source folders (``envs/`` and the others are mapped ones)."""
    done = subprocess.run([python, "-c", _FOLDERS], capture_output=True, text=True, check=True)
    return [Path(line) for line in done.stdout.splitlines() if line]


def set_bytecode(python: str, cached: bool) -> dict[str, str]:
    """Compile the package's bytecode cache (``cached``) or delete it; the environment to run
    the commands in (with ``PYTHONDONTWRITEBYTECODE=1`` when not cached, so none is written)."""
    env = dict(os.environ)
    folders = package_folders(python)
    if cached:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        subprocess.run([python, "-m", "compileall", "-q", *map(str, folders)], check=True, stdout=subprocess.DEVNULL)
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        for folder in folders:
            for cache in folder.rglob("__pycache__"):
                shutil.rmtree(cache)
    return env


def timed(cmd: list[str], runs: int, cwd: str, env: dict[str, str]) -> tuple[float, float]:
    """(median, min) wall seconds of ``cmd`` over ``runs`` fresh processes (one warm-up first)."""
    subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times), min(times)


def slowest_imports(python: str, cwd: str, env: dict[str, str], top: int) -> list[tuple[float, str]]:
    """(cumulative ms, module) of the ``top`` slowest imports of the target command."""
    cmd = [python, "-X", "importtime", "-m", "blis_gym", *RUN]
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=True)
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
    ap.add_argument(
        "--no-bytecode",
        action="store_true",
        help="delete the package's bytecode cache and run without one (PYTHONDONTWRITEBYTECODE=1)",
    )
    args = ap.parse_args()
    blis = _blis(args.python)
    env = set_bytecode(args.python, cached=not args.no_bytecode)
    cwd = tempfile.mkdtemp(prefix="blis-startup-")  # any directory: the command needs no files
    rows = [
        ("python -c pass", [args.python, "-c", "pass"]),
        ("import blis_gym", [args.python, "-c", "import blis_gym"]),
        ("import blis_gym.cli.app", [args.python, "-c", "import blis_gym.cli.app"]),
        ("blis --help", [*blis, "--help"]),
        ("blis run --num-requests 1", [*blis, *RUN]),
    ]
    mode = "no bytecode cache" if args.no_bytecode else "bytecode cached"
    print(f"{'command':<28} {'median s':>9} {'min s':>7}   ({args.runs} runs each, {mode}, {' '.join(blis)})")
    results = {}
    for name, cmd in rows:
        results[name] = timed(cmd, args.runs, cwd, env)
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
        for ms, name in slowest_imports(args.python, cwd, env, 25):
            print(f"  {ms:8.1f}  {name}")


if __name__ == "__main__":
    main()
