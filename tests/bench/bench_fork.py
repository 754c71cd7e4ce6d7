#!/usr/bin/env python
"""Fork cost: ``ClusterSimulator.fork()`` mid-episode on each shipped scenario (not a pytest test).

Each scenario's workload (1,000 requests) is routed at random up to decision
``--at`` (default 400), then forked ``--repeat`` times; the minimum and median
wall times are reported, with the requests in flight (the part a fork copies;
requests yet to arrive are shared until they arrive) and the time of a fork that
leaves future arrivals out (``drop_arrivals=True``, what the lookahead oracle uses).

    python tests/bench/bench_fork.py
    python tests/bench/bench_fork.py --scenario default --at 600 --repeat 50
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from blis_gym.cluster.simulator import ClusterSimulator
from blis_gym.envs import load_scenario, scenario_names
from blis_gym.policies import ADMISSION


def paused(name: str, at: int) -> ClusterSimulator:
    plan = load_scenario(name).plan
    sim = ClusterSimulator(plan.config, plan.requests, admission=ADMISSION.make("always-admit"))
    rng = np.random.default_rng(0)
    for _ in range(at):
        d = sim.advance()
        if d is None:
            break
        sim.route(d, int(rng.integers(plan.config.num_instances)))
    sim.advance()
    return sim


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenario", action="append", help="scenario name (repeatable; default: all shipped)")
    ap.add_argument("--at", type=int, default=400, help="routing decisions made before forking")
    ap.add_argument("--repeat", type=int, default=30)
    args = ap.parse_args()
    print(f"{'scenario':<18} {'in flight':>9} {'fork min':>9} {'median':>8} {'dropping future':>16}  (ms)")
    for name in args.scenario or scenario_names():
        sim = paused(name, args.at)
        fork = timed(sim.fork, args.repeat)
        drop = timed(lambda sim=sim: sim.fork(drop_arrivals=True), args.repeat)
        inflight = sum(len(i.waitq) + len(i.running) for i in sim.instances)
        print(
            f"{name:<18} {inflight:>9} {min(fork):>9.2f} {statistics.median(fork):>8.2f} "
            f"{statistics.median(drop):>16.2f}"
        )


if __name__ == "__main__":
    main()
