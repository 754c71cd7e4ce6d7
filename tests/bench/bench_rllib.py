"""Training throughput: env steps per second collected and trained, RLlib PPO vs stable-baselines3 PPO.

Same env, scenario and PPO recipe (``ppo-plain``: no normalisation, warm start or entropy
schedule, which RLlib does not map) on the same machine, through the code ``blis train``
runs. Each row trains ``--timesteps`` env steps with the same number of environments (``--envs``,
default 2) and the same batch per update (``n_steps`` x envs):

* ``env-random``: the env alone, one process, random actions (the ceiling, for scale);
* ``sb3-subproc``: stable-baselines3 PPO, ``SubprocVecEnv`` with ``--envs`` envs;
* ``rllib-1-runner``: RLlib PPO, one env runner stepping ``--envs`` envs;
* ``rllib-N-runners``: RLlib PPO, ``--envs`` env runners with one env each.

steps/s counts the training loop (sampling and updates); ``wall`` adds the setup (for RLlib,
starting the env runner actors; the embedded Ray itself starts once, before the first row).
Not a pytest test.

    python tests/bench/bench_rllib.py                          # Routing-v0, default scenario
    python tests/bench/bench_rllib.py --timesteps 32768 --json rllib_bench.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import gymnasium as gym

import blis_gym  # noqa: F401 - registers the ids
from blis_gym.agents.config import load_agent_config
from blis_gym.agents.rllib_backend import train_rllib
from blis_gym.agents.train import train
from blis_gym.distributed import ray_session


def env_random(env_id: str, scenario: str, timesteps: int, seed: int) -> dict:
    """Whole episodes with random actions until ``timesteps`` steps: the env's own speed."""
    env = gym.make(env_id, scenario=scenario)
    env.action_space.seed(seed)
    steps, episode = 0, 0
    start = time.perf_counter()
    while steps < timesteps:
        env.reset(seed=seed + episode)
        episode += 1
        done = False
        while not done:
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            steps += 1
            done = terminated or truncated
    secs = time.perf_counter() - start
    return {"steps": steps, "seconds": secs, "wall": secs}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="blis_gym/Routing-v0")
    ap.add_argument("--scenario", default="default")
    ap.add_argument("--config", default="ppo-plain", help="agent recipe (shipped name or YAML file)")
    ap.add_argument("--timesteps", type=int, default=16384)
    ap.add_argument("--envs", type=int, default=2, help="environments (SubprocVecEnv envs, RLlib env runners)")
    ap.add_argument("--n-steps", type=int, default=512, help="steps per env per update")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", action="append", default=[], help="run only these rows (repeatable)")
    ap.add_argument("--json", metavar="OUT", help="write the figures to this JSON file")
    args = ap.parse_args(argv)
    logging.getLogger("blis_gym").setLevel(logging.ERROR)

    cfg = load_agent_config(args.config)
    cfg = replace(cfg, hyperparameters={**cfg.hyperparameters, "n_steps": args.n_steps}, checkpoint_every=0)
    n = args.envs
    common = dict(env_id=args.env, scenario=args.scenario, timesteps=args.timesteps, seed=args.seed, log=lambda _: None)
    rows: dict[str, dict] = {}

    def record(name: str, fn) -> None:
        if args.only and name not in args.only:
            return
        started = time.perf_counter()
        figures = fn()
        figures.setdefault("wall", time.perf_counter() - started)
        figures["steps_per_s"] = figures["steps"] / figures["seconds"]
        rows[name] = figures
        print(
            f"{args.env} {args.scenario:<10} {name:<18} {figures['steps']:>7} steps {figures['seconds']:7.1f} s "
            f"{figures['steps_per_s']:>8,.0f} steps/s   (wall with setup {figures['wall']:.1f} s)",
            flush=True,
        )

    def report(r) -> dict:
        return {"steps": r.steps, "seconds": r.seconds}

    with tempfile.TemporaryDirectory() as tmp:
        record("env-random", lambda: env_random(args.env, args.scenario, args.timesteps, args.seed))
        record(
            "sb3-subproc",
            lambda: report(train(cfg, **common, out=Path(tmp) / "sb3", n_envs=n, subproc=True, progress=False)),
        )
        with ray_session(workers=max(os.cpu_count() or 1, n), what="bench_rllib.py"):
            record(
                "rllib-1-runner",
                lambda: report(train_rllib(cfg, **common, out=Path(tmp) / "rl1", env_runners=1, n_envs=n)),
            )
            record(
                f"rllib-{n}-runners",
                lambda: report(train_rllib(cfg, **common, out=Path(tmp) / "rl2", env_runners=n, n_envs=1)),
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "env": args.env,
                    "scenario": args.scenario,
                    "config": args.config,
                    "envs": n,
                    "n_steps": args.n_steps,
                    "timesteps": args.timesteps,
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "results": rows,
                },
                f,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
