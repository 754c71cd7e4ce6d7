#!/usr/bin/env python
"""Cost of the new cluster shapes: prefill/decode pools and autoscaling against a plain run of the
same traffic (not a pytest test; the acceptance bar is 1.3x).

For each case the same workload runs as a plain cluster and in the new shape; the table gives
the best of ``--repeat`` wall times (the two run alternately) and their ratio.

* ``pd-long-prompts``, ``pd-mixed``: the scenario's traffic on 4 plain instances, and on 2 prefill
  + 2 decode instances with each decider (prefix-threshold reads 50 ms stale cache views); and
  ``never`` against a plain cluster of the decode pool's 2 instances (the very same run).
* ``autoscale-day``: the traffic on the starting 2 instances with node pools but no autoscaler,
  and with the saturation analyzer (which grows the fleet to 5 or more).

    python tests/bench/bench_shapes.py
    python tests/bench/bench_shapes.py --repeat 5
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import replace

from blis_gym.envs import load_scenario
from blis_gym.plan import resolve, simulate

PD_FLAGS = ("prefill_instances", "decode_instances")


def once(run) -> float:
    plan = resolve(run)  # a run changes its requests: each gets fresh ones
    t = time.perf_counter()
    simulate(plan)
    return time.perf_counter() - t


def best_pair(plain, shaped, repeat: int) -> tuple[float, float]:
    """Best wall times of the two, run alternately (so machine noise hits both alike)."""
    a, b = [], []
    for _ in range(repeat):
        a.append(once(plain))
        b.append(once(shaped))
    return min(a), min(b)


def cases():
    for name in ("pd-long-prompts", "pd-mixed"):
        run = load_scenario(name).run
        plain = replace(run, prefill_instances=0, decode_instances=0, pd_decider="never")
        # never serves everything on the decode pool: the same run as a plain cluster of its size.
        alone = replace(plain, num_instances=run.decode_instances)
        yield f"{name} (never, vs {run.decode_instances} plain)", alone, replace(run, pd_decider="never")
        for decider in ("never", "always", "prefix-threshold"):
            yield f"{name} ({decider})", plain, replace(run, pd_decider=decider)
    run = load_scenario("autoscale-day").run
    off = replace(run, model_autoscaler_interval_us=0.0, explicit=run.explicit | {"model_autoscaler_interval_us"})
    plain = replace(off, policy_config="", explicit=off.explicit - {"policy_config"})
    yield "autoscale-day (pools, no autoscaler)", plain, off
    yield "autoscale-day (saturation)", plain, run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    print(f"{'case':<44} {'plain s':>8} {'shape s':>8} {'ratio':>6}")
    for label, plain, shaped in cases():
        a, b = best_pair(plain, shaped, args.repeat)
        print(f"{label:<44} {a:>8.2f} {b:>8.2f} {b / a:>6.2f}")


if __name__ == "__main__":
    main()
