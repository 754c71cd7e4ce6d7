"""Which observation features earn their place: clone a teacher with some features hidden.

Takes the labelled states of a DAgger run (``dagger_data.npz``: observations and the
teacher's actions) and, for each feature set, trains the recipe's MLP on them by
behaviour cloning with the other instance features zeroed, then scores it: accuracy on the
run's last iteration (held out of that fit), and TTFT mean / p99 and E2E mean over whole
episodes on validation seeds (2,000,000 up by default: neither training nor the held-out
evaluation seeds). Not a pytest test; two minutes or so on 2 cores for the default sets.

    python tests/bench/ablate_observation.py runs/dagger-def/dagger_data.npz --scenario default
    python tests/bench/ablate_observation.py DATA --episodes 5 --json ablation.json

Caveat, printed with the table: the states come from the full-feature learner's own runs,
so a smaller feature set is scored on states it might not have visited.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

import gymnasium as gym
import numpy as np

import blis_gym  # noqa: F401 - registers the ids
from blis_gym.envs.observation import INSTANCE_FEATURES

NEW = ("prefill_backlog", "busy_for")  # the work-in-flight group
NAMES = [n for n, _ in INSTANCE_FEATURES]


def feature_sets() -> dict[str, list[str]]:
    """Name -> instance features hidden (zeroed)."""
    sets = {"all features": [], "without work in flight (the earlier observation)": list(NEW)}
    for name in NEW:
        sets[f"without {name}"] = [name]
    return sets


def hidden_columns(hidden: list[str], n_instances: int) -> np.ndarray:
    k = len(NAMES)
    return np.array([i * k + NAMES.index(h) for i in range(n_instances) for h in hidden], dtype=np.int64)


def train(x: np.ndarray, y: np.ndarray, n_actions: int, *, epochs: int, seed: int, net: list[int]):
    """An MLP policy (the recipe's PPO MlpPolicy) fitted by cross-entropy; returns (policy, mean, std)."""
    import torch
    from gymnasium import spaces
    from stable_baselines3.common.policies import ActorCriticPolicy

    from blis_gym.agents.bc import fit

    torch.manual_seed(seed)
    mean, std = x.mean(axis=0), np.sqrt(x.var(axis=0) + 1e-8)
    policy = ActorCriticPolicy(
        spaces.Box(-np.inf, np.inf, (x.shape[1],), np.float32), spaces.Discrete(n_actions), lambda _: 1e-3, net_arch=net
    )
    fit(policy, np.clip((x - mean) / std, -10, 10).astype(np.float32), y, epochs=epochs, learning_rate=1e-3, seed=seed)
    return policy, mean, std


def act(policy, mean, std, obs: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        t = torch.as_tensor(np.clip((obs - mean) / std, -10, 10).astype(np.float32))
        return policy.get_distribution(t).distribution.probs.argmax(dim=1).numpy()


def play(env, policy, mean, std, cols: np.ndarray, seeds: range) -> dict:
    p99, mean_ttft, e2e = [], [], []
    for s in seeds:
        obs, _ = env.reset(seed=s)
        done = False
        while not done:
            o = obs.copy()
            o[cols] = 0.0
            obs, _, term, trunc, info = env.step(int(act(policy, mean, std, o[None])[0]))
            done = term or trunc
        c = info["metrics"]["cluster"]
        p99.append(c["ttft_p99_ms"])
        mean_ttft.append(c["ttft_mean_ms"])
        e2e.append(c["e2e_mean_ms"])
    return {
        "ttft_p99_ms": float(np.mean(p99)),
        "ttft_mean_ms": float(np.mean(mean_ttft)),
        "e2e_mean_ms": float(np.mean(e2e)),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", help="a DAgger run's dagger_data.npz")
    ap.add_argument("--env", default="blis_gym/Routing-v0")
    ap.add_argument("--scenario", default="default")
    ap.add_argument("--episodes", type=int, default=5, help="validation episodes per feature set")
    ap.add_argument("--seed", type=int, default=2_000_000, help="first validation seed")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--json", metavar="OUT")
    args = ap.parse_args(argv)
    logging.getLogger("blis_gym").setLevel(logging.ERROR)
    import torch

    torch.set_num_threads(1)
    data = np.load(args.data)
    x, y, it = data["observations"], data["actions"], data["iteration"]
    env = gym.make(args.env, scenario=args.scenario)
    n_inst = env.unwrapped.num_instances
    if x.shape[1] != env.observation_space.shape[0]:
        print(
            f"error: {args.data} holds {x.shape[1]}-value observations; {args.scenario} has "
            f"{env.observation_space.shape[0]}",
            file=sys.stderr,
        )
        return 2
    last = it == it.max()
    rows = {}
    for name, hidden in feature_sets().items():
        t0 = time.perf_counter()
        cols = hidden_columns(hidden, n_inst)
        xm = x.copy()
        xm[:, cols] = 0.0
        # Held-out accuracy: fit without the last iteration, score on it; then refit on all to play.
        policy, mu, sd = train(xm[~last], y[~last], n_inst, epochs=args.epochs, seed=0, net=[256, 256])
        held = float((act(policy, mu, sd, xm[last]) == y[last]).mean())
        policy, mu, sd = train(xm, y, n_inst, epochs=args.epochs, seed=0, net=[256, 256])
        row = {
            "hidden": hidden,
            "held_out_accuracy": held,
            **play(env, policy, mu, sd, cols, range(args.seed, args.seed + args.episodes)),
        }
        rows[name] = row
        print(
            f"{name:<52} accuracy {held:6.1%}  TTFT mean {row['ttft_mean_ms']:7.1f}  "
            f"p99 {row['ttft_p99_ms']:7.1f}  E2E mean {row['e2e_mean_ms']:8.1f} ms  "
            f"[{time.perf_counter() - t0:.0f} s]",
            flush=True,
        )
    print(
        f"({len(y)} labels from {args.data}; accuracy on its last iteration, held out of the fit; "
        f"{args.episodes} episodes from seed {args.seed}. States come from the full-feature learner.)"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "data": args.data,
                    "scenario": args.scenario,
                    "episodes": args.episodes,
                    "seed": args.seed,
                    "labels": int(len(y)),
                    "results": rows,
                },
                f,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
