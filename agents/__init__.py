"""Trained agents (``blis_gym.agents``): training, evaluation and deployment with stable-baselines3.

* :func:`~blis_gym.agents.train.train` (``blis train``): a PPO, A2C or DQN agent on a
  blis_gym environment, from a config in ``configs/agents/``, into a run folder.
* :func:`~blis_gym.agents.evaluate.evaluate` (``blis evaluate``): agents and baselines on the
  same held-out episodes, with a table, results.json/csv and a chart.
* :class:`~blis_gym.agents.model.TrainedAgent`: a saved model, ready to act as it did in
  training; :mod:`~blis_gym.agents.deploy` makes it a ``blis run`` policy (``rl``).
* :mod:`~blis_gym.agents.rllib_backend` (``blis train --backend rllib``): the envs registered
  for RLlib, PPO trained by RLlib into the same run folder layout, and its agent.

Everything that needs torch imports it lazily: importing this package is cheap.
"""

from .config import AgentConfig, load_agent_config
from .model import TrainedAgent

__all__ = ["AgentConfig", "load_agent_config", "TrainedAgent"]
