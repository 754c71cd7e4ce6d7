"""Behaviour cloning: start an actor-critic policy from a baseline's choices.

A baseline plays a few episodes of the training env; the policy is then
trained to give those actions the highest probability (cross-entropy), on
observations normalised as training will see them. RL then starts from a
policy about as good as the baseline instead of from a random one.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from ..baselines import make_baseline
from .config import WarmStart


def collect(env_id: str, env_kwargs: dict, warm: WarmStart, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(observations, actions) of ``warm.baseline`` over ``warm.episodes`` episodes (seeds seed, seed+1...)."""
    env = gym.make(env_id, **env_kwargs)
    agent = make_baseline(warm.baseline, env)
    obs_list, act_list = [], []
    for k in range(warm.episodes):
        obs, _ = env.reset(seed=seed + k)
        done = False
        while not done:
            action, _ = agent.predict(obs)
            obs_list.append(obs)
            act_list.append(int(action))
            obs, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
    env.close()
    return np.asarray(obs_list, dtype=np.float32), np.asarray(act_list, dtype=np.int64)


def clone(model, observations: np.ndarray, actions: np.ndarray, warm: WarmStart, seed: int) -> float:
    """Fit ``model.policy`` (actor-critic) to the actions; returns the final training accuracy."""
    import torch

    policy = model.policy
    policy.set_training_mode(True)
    opt = torch.optim.Adam(policy.parameters(), lr=warm.learning_rate)
    obs_t = torch.as_tensor(observations, device=policy.device)
    act_t = torch.as_tensor(actions, device=policy.device)
    gen = torch.Generator().manual_seed(seed)
    n = len(actions)
    for _ in range(warm.epochs):
        order = torch.randperm(n, generator=gen)
        for start in range(0, n, 256):
            idx = order[start:start + 256]
            dist = policy.get_distribution(obs_t[idx])
            loss = -dist.log_prob(act_t[idx]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    policy.set_training_mode(False)
    with torch.no_grad():
        chosen = policy.get_distribution(obs_t).distribution.probs.argmax(dim=1)
    return float((chosen == act_t).float().mean())
