#!/usr/bin/env python
"""Where a shipped router still helps, and where it should not be used (not a pytest test).

For one trained router and its home scenario, every heuristic and the router play the same
held-out episodes (seeds from 2^30 up) in each of these cells, through ``Routing-v0`` as
``blis evaluate`` does:

* the home scenario at two other loads (``LOADS``: a rate or a trace speed-up);
* the home scenario with stale signals: snapshots refreshed every 100 ms (as in
  ``stale-signals``) and the cache view 200 ms old (four times upstream's default);
* every other routing scenario with the same number of instances (``--other``).

The observation layout follows the router (``cache_observation`` as it was trained), so a
router trained without the cache feature still plays the cache scenarios. The oracle is left
out (minutes an episode on the traces). Results go to a JSON file (``--resume`` skips cells
it holds) and a markdown table: TTFT mean and p99 and E2E mean, each the mean over episodes
± its 95% interval, and the router's p99 against the best heuristic of the cell.

Usage::

    python tests/bench/robustness.py routing-default --scenario default --episodes 8
    python tests/bench/robustness.py routing-mooncake-conversation --scenario mooncake-conversation \\
        --other default,prefix-heavy --episodes 6 --json robust-mooncake.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from blis_gym.agents.evaluate import evaluate
from blis_gym.agents.model import TrainedAgent
from blis_gym.config.routers import model_location
from blis_gym.plan.options import HELD_OUT_SEED

ROUTING = "blis_gym/Routing-v0"
# Home scenario -> (the option that sets its load, two levels besides its own).
LOADS = {
    "default": ("rate", (400.0, 600.0)),
    "heterogeneous": ("rate", (80.0, 120.0)),
    "prefix-heavy": ("rate", (400.0, 800.0)),
    "mooncake-conversation": ("trace_speedup", (2.0, 6.0)),
}
STALE = {"snapshot_refresh_interval": 100_000, "cache_signal_delay": 200_000}
FOUR_INSTANCES = ("default", "heterogeneous", "prefix-heavy", "mooncake-conversation", "azure-conversation")
HEURISTICS = "round-robin,least-loaded,weighted,prefix-affinity,weighted-upstream"
FIGURES = (("ttft_mean_ms", "TTFT mean"), ("ttft_p99_ms", "TTFT p99"), ("e2e_mean_ms", "E2E mean"))


def cells(home: str, others: list[str]) -> list[tuple[str, str, dict]]:
    """(label, scenario, overrides) of every cell, the home scenario as it is first."""
    option, levels = LOADS[home]
    out = [("as shipped", home, {})]
    out += [(f"{option} {level:g}", home, {option: level}) for level in levels]
    out.append(("stale signals", home, dict(STALE)))
    out += [(f"scenario {s}", s, {}) for s in others]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("router", help="a shipped router's name or a trained model's folder")
    ap.add_argument("--scenario", required=True, choices=sorted(LOADS), help="the scenario it was trained on")
    ap.add_argument("--other", default="", help="comma-separated other scenarios (default: the 4-instance ones)")
    ap.add_argument("--episodes", type=int, default=8)
    ap.add_argument("--json", default="", help="results file (default: robust-ROUTER.json)")
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args()
    path = Path(args.json or f"robust-{Path(args.router).name}.json")
    done = json.loads(path.read_text()) if args.resume and path.exists() else {}
    model = model_location(args.router)
    layout = {"cache_observation": bool(TrainedAgent.load(model).meta.get("cache_observation", False))}
    others = [s for s in args.other.split(",") if s] or [s for s in FOUR_INSTANCES if s != args.scenario]
    for label, scenario, overrides in cells(args.scenario, others):
        if label in done:
            continue
        started = time.perf_counter()
        results = evaluate(
            ROUTING, scenario, [str(model)], HEURISTICS, args.episodes, HELD_OUT_SEED, {**overrides, **layout}
        )
        done[label] = {r.name.removeprefix("baseline:"): r.summary() for r in results}
        path.write_text(json.dumps(done, indent=1) + "\n")
        print(f"{label}: {args.episodes} episodes, {time.perf_counter() - started:.0f} s", file=sys.stderr)
    print(markdown(done, str(model)))


def markdown(done: dict, router: str) -> str:
    """A row per cell: the router, the best heuristic on p99, and the router's change against it."""
    lines = [
        "| cell | best heuristic (TTFT p99) | its TTFT mean / p99 / E2E mean | router TTFT mean / p99 / E2E mean "
        "| router vs best, p99 |",
        "|---|---|---|---|---|",
    ]
    for label, cell in done.items():
        mine = cell[router]
        best_name, best = min(((n, s) for n, s in cell.items() if n != router), key=lambda item: item[1]["ttft_p99_ms"])

        def figures(s: dict) -> str:
            return " / ".join(f"{s[c]:.0f} ± {s[c + '_ci95']:.0f}" for c, _ in FIGURES)

        change = mine["ttft_p99_ms"] / best["ttft_p99_ms"] - 1
        lines.append(f"| {label} | {best_name} | {figures(best)} | {figures(mine)} | {change:+.0%} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
