"""Decisions per second of the environments (one process, one core).

Plays whole episodes (reset included) of a scenario with random actions and
with every baseline agent, and prints decisions per second for each. Not a
pytest test.

    python tests/bench/bench_env.py                      # Routing-v0, default scenario, 3 episodes, best of 3
    python tests/bench/bench_env.py --env blis_gym/Admission-v0 --reward time-in-system
    python tests/bench/bench_env.py --episodes 5 --json env_bench.json
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time

import gymnasium as gym

import blis_gym  # noqa: F401 - registers the ids
from blis_gym.baselines import baseline_names, make_baseline
from blis_gym.policies import ROUTING


def play(env, choose, episodes: int, seed: int) -> tuple[int, float]:
    """(decisions, seconds) over ``episodes`` whole episodes."""
    decisions = 0
    start = time.perf_counter()
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        env.action_space.seed(seed + ep)
        done = False
        while not done:
            obs, _, terminated, truncated, _ = env.step(choose(obs))
            decisions += 1
            done = terminated or truncated
    return decisions, time.perf_counter() - start


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="blis_gym/Routing-v0")
    ap.add_argument("--scenario", default="default")
    ap.add_argument("--reward", default=None, help="override the scenario's reward")
    ap.add_argument("--episodes", type=int, default=3)
    ap.add_argument("--seed", type=int, default=100)
    ap.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="play the episodes this many times and report the fastest (as timeit does)",
    )
    ap.add_argument("--json", metavar="OUT", help="write the figures to this JSON file")
    args = ap.parse_args(argv)
    logging.getLogger("blis_gym").setLevel(logging.ERROR)  # e.g. reject-all's "none completed"

    kw = {"scenario": args.scenario}
    if args.reward:
        kw["reward"] = args.reward
    env = gym.make(args.env, **kw)
    # The oracle is left out: it forks the run per candidate, a cost of its own, not the env's.
    agents = {
        "random": None,
        **{
            n: make_baseline(n, env)
            for n in baseline_names(env)
            if ("+" not in n or n.startswith("always-admit+")) and n not in ROUTING.oracles()
        },
    }
    rows = {}
    for name, agent in agents.items():
        if agent is None:
            choose = lambda obs: env.action_space.sample()  # noqa: E731
        else:
            choose = lambda obs, a=agent: a.predict(obs)[0]  # noqa: E731
        n, secs = min((play(env, choose, args.episodes, args.seed) for _ in range(args.repeat)), key=lambda r: r[1])
        rows[name] = {"decisions": n, "seconds": secs, "decisions_per_s": n / secs}
        print(
            f"{args.env} {args.scenario:<14} {name:<28} {n:>7} decisions {secs:7.2f} s {n / secs:>9,.0f} decisions/s",
            flush=True,
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "env": args.env,
                    "scenario": args.scenario,
                    "episodes": args.episodes,
                    "repeat": args.repeat,
                    "python": platform.python_version(),
                    "results": rows,
                },
                f,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
