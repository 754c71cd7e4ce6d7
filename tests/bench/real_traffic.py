#!/usr/bin/env python
"""What real traffic says: every routing heuristic and the ``lookahead`` oracle on held-out windows
of each production-trace scenario (and of the cache scenario ``prefix-heavy``), at several load
levels (not a pytest test).

For each scenario and load (a trace's speed-up; prefix-heavy's rate), every policy plays the
same ``--episodes`` held-out episodes (seeds from 2^30 up: for a trace, windows from the last
part, never trained on) through ``Routing-v0``, as ``blis evaluate`` does; ``--agent`` adds
trained routers. The table gives TTFT mean and p99 and E2E mean, each a mean over episodes ±
its 95% confidence interval. Results also go to a JSON file, and ``--resume`` skips the cells
it already holds (the oracle takes minutes a window).

Usage::

    python tests/bench/real_traffic.py --episodes 8 --json real_traffic.json
    python tests/bench/real_traffic.py --scenario azure-code --loads 4,6,8 --episodes 3
    python tests/bench/real_traffic.py --scenario prefix-heavy --agent routing-prefix-heavy --episodes 10
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

# Scenario -> (the option that sets its load, the values to play it at: its own in the middle).
LOADS = {
    "mooncake-conversation": ("trace_speedup", (2.0, 4.0, 6.0)),
    "azure-conversation": ("trace_speedup", (12.0, 24.0, 36.0)),
    "azure-code": ("trace_speedup", (4.0, 6.0, 8.0)),
    "prefix-heavy": ("rate", (400.0, 600.0, 800.0)),
}
HEADERS = {"trace_speedup": ("speed-up", "x"), "rate": ("rate", " req/s")}
FIGURES = (("ttft_mean_ms", "TTFT mean"), ("ttft_p99_ms", "TTFT p99"), ("e2e_mean_ms", "E2E mean"))


def cell_key(scenario: str, level: float) -> str:
    return f"{scenario}@{level:g}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenario", action="append", help="a scenario (default: all three)")
    ap.add_argument("--loads", default="", help="comma-separated load levels (default: each scenario's three)")
    ap.add_argument("--agent", action="append", default=[], help="a trained router too (a model or a shipped name)")
    ap.add_argument("--episodes", type=int, default=8, help="held-out windows per cell")
    ap.add_argument("--json", default="real_traffic.json", help="results file (read back with --resume)")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--no-oracle", action="store_true", help="leave out the lookahead oracle")
    args = ap.parse_args()
    path = Path(args.json)
    done = json.loads(path.read_text()) if args.resume and path.exists() else {}
    policies = args.agent + (["baseline:lookahead"] if not args.no_oracle else [])
    for scenario in args.scenario or [s for s in LOADS if s != "prefix-heavy"]:
        option, levels = LOADS[scenario]
        for level in [float(s) for s in args.loads.split(",")] if args.loads else levels:
            key = cell_key(scenario, level)
            if key in done:
                continue
            started = time.perf_counter()
            results = evaluate(
                "blis_gym/Routing-v0", scenario, policies, "all", args.episodes, HELD_OUT_SEED, {option: level}
            )
            # the summary, and each episode's figures (the policies share episodes: paired comparisons)
            done[key] = {
                r.name.removeprefix("baseline:"): {
                    **r.summary(),
                    "per_episode": {c: [e[c] for e in r.episodes] for c, _ in FIGURES},
                }
                for r in results
            }
            path.write_text(json.dumps(done, indent=1) + "\n")
            print(f"{key}: {args.episodes} windows, {time.perf_counter() - started:.0f} s", file=sys.stderr)
    print(markdown(done))


def markdown(done: dict) -> str:
    """One table per scenario: a row per policy and speed-up."""
    out = []
    order = [*ROUTING.names(), "weighted-upstream", "weighted-tuned"]
    trained = sorted({n for cell in done.values() for n in cell} - set(order) - {"lookahead"})
    order += [*trained, "lookahead"]
    for scenario in LOADS:
        cells = sorted((k for k in done if k.startswith(scenario + "@")), key=lambda k: float(k.split("@")[1]))
        if not cells:
            continue
        header, unit = HEADERS[LOADS[scenario][0]]
        out += [
            f"**{scenario}**",
            "",
            f"| {header} | episodes | policy | " + " | ".join(f"{t} (ms)" for _, t in FIGURES) + " |",
            "|---|---|---|" + "---|" * len(FIGURES),
        ]
        for key in cells:
            for name in order:
                s = done[key].get(name)
                if s is None:
                    continue
                figures = " | ".join(f"{s[c]:.0f} ± {s[c + '_ci95']:.0f}" for c, _ in FIGURES)
                out.append(f"| {key.split('@')[1]}{unit} | {s['episodes']} | {name} | {figures} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    main()
