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


def _loss(policy, obs, actions):
    """Cross-entropy of the actions: under the actor for actor-critics; for DQN with the
    Q-values as logits, so the greedy action becomes the baseline's."""
    import torch

    q_net = getattr(policy, "q_net", None)
    if q_net is not None:
        return torch.nn.functional.cross_entropy(q_net(obs), actions)
    return -policy.get_distribution(obs).log_prob(actions).mean()


def _greedy(policy, obs):
    q_net = getattr(policy, "q_net", None)
    if q_net is not None:
        return q_net(obs).argmax(dim=1)
    return policy.get_distribution(obs).distribution.probs.argmax(dim=1)


def fit(
    policy,
    observations: np.ndarray,
    actions: np.ndarray,
    *,
    epochs: int,
    learning_rate: float,
    seed: int,
    batch_size: int = 256,
) -> float:
    """Train ``policy`` to pick ``actions`` on ``observations`` (already normalised as it will
    see them): ``epochs`` passes of Adam on the cross-entropy, in minibatches of ``batch_size``
    shuffled by a generator seeded with ``seed``. Returns the final training accuracy (the
    share of observations whose greedy action is the label). Shared by the warm start
    (:func:`clone`) and DAgger (:mod:`~blis_gym.agents.dagger`)."""
    import torch

    policy.set_training_mode(True)
    opt = torch.optim.Adam(policy.parameters(), lr=learning_rate)
    obs_t = torch.as_tensor(observations, device=policy.device)
    act_t = torch.as_tensor(actions, device=policy.device)
    gen = torch.Generator().manual_seed(seed)
    n = len(actions)
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            loss = _loss(policy, obs_t[idx], act_t[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    policy.set_training_mode(False)
    with torch.no_grad():
        chosen = _greedy(policy, obs_t)
    return float((chosen == act_t).float().mean())


def clone(model, observations: np.ndarray, actions: np.ndarray, warm: WarmStart, seed: int) -> float:
    """Fit ``model.policy`` to the actions; returns the final training accuracy. For DQN the
    target network is synced afterwards."""
    policy = model.policy
    accuracy = fit(policy, observations, actions, epochs=warm.epochs, learning_rate=warm.learning_rate, seed=seed)
    if getattr(policy, "q_net_target", None) is not None:
        policy.q_net_target.load_state_dict(policy.q_net.state_dict())
    return accuracy
