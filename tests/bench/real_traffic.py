#!/usr/bin/env python
"""What real traffic says: every routing heuristic and the ``lookahead`` oracle on held-out windows
of each production-trace scenario, at several load levels (not a pytest test).

For each scenario and speed-up, every policy plays the same ``--episodes`` held-out windows
(seeds from 2^30 up: windows from the last part of the trace, never trained on) through
``Routing-v0``, as ``blis evaluate`` does; the table gives TTFT mean and p99 and E2E mean, each a
mean over windows ± its 95% confidence interval. Results also go to a JSON file, and
``--resume`` skips the cells it already holds (the oracle takes minutes a window).

Usage::

    python tests/bench/real_traffic.py --episodes 8 --json real_traffic.json
    python tests/bench/real_traffic.py --scenario azure-code --speedups 4,6,8 --episodes 3
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from blis_gym.agents.evaluate import evaluate
from blis_gym.plan.options import HELD_OUT_SEED
from blis_gym.policies import ROUTING

# Scenario -> the speed-ups to play it at (its own is the middle one).
LOADS = {
    "mooncake-conversation": (2.0, 4.0, 6.0),
    "azure-conversation": (12.0, 24.0, 36.0),
    "azure-code": (4.0, 6.0, 8.0),
}
FIGURES = (("ttft_mean_ms", "TTFT mean"), ("ttft_p99_ms", "TTFT p99"), ("e2e_mean_ms", "E2E mean"))


def cell_key(scenario: str, speedup: float) -> str:
    return f"{scenario}@{speedup:g}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenario", action="append", help="a scenario (default: all three)")
    ap.add_argument("--speedups", default="", help="comma-separated speed-ups (default: each scenario's three)")
    ap.add_argument("--episodes", type=int, default=8, help="held-out windows per cell")
    ap.add_argument("--json", default="real_traffic.json", help="results file (read back with --resume)")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--no-oracle", action="store_true", help="leave out the lookahead oracle")
    args = ap.parse_args()
    path = Path(args.json)
    done = json.loads(path.read_text()) if args.resume and path.exists() else {}
    policies = ["baseline:lookahead"] if not args.no_oracle else []
    for scenario in args.scenario or list(LOADS):
        speedups = [float(s) for s in args.speedups.split(",")] if args.speedups else LOADS[scenario]
        for speedup in speedups:
            key = cell_key(scenario, speedup)
            if key in done:
                continue
            started = time.perf_counter()
            results = evaluate(
                "blis_gym/Routing-v0",
                scenario,
                policies,
                "all",
                args.episodes,
                HELD_OUT_SEED,
                {"trace_speedup": speedup},
            )
            done[key] = {r.name.removeprefix("baseline:"): r.summary() for r in results}
            path.write_text(json.dumps(done, indent=1) + "\n")
            print(f"{key}: {args.episodes} windows, {time.perf_counter() - started:.0f} s", file=sys.stderr)
    print(markdown(done))


def markdown(done: dict) -> str:
    """One table per scenario: a row per policy and speed-up."""
    out = []
    order = [*ROUTING.names(), "lookahead"]
    for scenario in LOADS:
        cells = sorted((k for k in done if k.startswith(scenario + "@")), key=lambda k: float(k.split("@")[1]))
        if not cells:
            continue
        out += [
            f"**{scenario}**",
            "",
            "| speed-up | policy | " + " | ".join(f"{t} (ms)" for _, t in FIGURES) + " |",
            "|---|---|" + "---|" * len(FIGURES),
        ]
        for key in cells:
            for name in order:
                s = done[key].get(name)
                if s is None:
                    continue
                figures = " | ".join(f"{s[c]:.0f} ± {s[c + '_ci95']:.0f}" for c, _ in FIGURES)
                out.append(f"| {key.split('@')[1]}x | {name} | {figures} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    main()
