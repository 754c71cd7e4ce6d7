"""What the training backends, the saved-agent loader and the evaluator share (the way
stable-baselines3 keeps ``common/``): run-folder file names, algorithm names, env creation,
the space check and the training report. Nothing here imports torch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import gymnasium as gym

from .. import ENV_IDS
from ..envs.observation import INSTANCE_FEATURES, REQUEST_FEATURES
from ..errors import ConfigError

MODEL_FILE = "model.zip"
CONFIG_FILE = "config.yaml"
VECNORM_FILE = "vecnormalize.pkl"
ALGOS = ("ppo", "a2c", "dqn", "dagger")
# Imitation algorithms save the model of an RL class whose policy they trained.
MODEL_CLASS = {"dagger": "ppo"}


def make_env(env_id: str, **kwargs: Any):
    """``gym.make`` for the commands: a bad scenario or option becomes a ConfigError (exit 2)."""
    try:
        return gym.make(env_id, **kwargs)
    except ValueError as exc:  # e.g. reward 'regret' on Admission-v0
        raise ConfigError(f"{env_id}: {exc}") from None


def algo_class(algo: str):
    """The stable-baselines3 class for ``algo``."""
    import stable_baselines3 as sb3  # lazy: imports torch

    return {"ppo": sb3.PPO, "a2c": sb3.A2C, "dqn": sb3.DQN}[MODEL_CLASS.get(algo, algo)]


def check_spaces(
    path: Path, trained_env: str, shape: Any, n: Any, env_id: str, observation_size: int, n_actions: int, where: str
) -> None:
    """Raise ConfigError unless a model at ``path`` (trained on ``trained_env``, observations of
    ``shape``, ``n`` actions) can play ``env_id`` with these spaces."""
    if trained_env and trained_env != env_id:
        raise ConfigError(f"{where}: the model {path} was trained on {trained_env}, not {env_id}")
    if shape != (observation_size,):
        per, rest = len(INSTANCE_FEATURES), len(REQUEST_FEATURES)
        size = shape[0] if shape and len(shape) == 1 else None
        why = (
            f"it was trained for {(size - rest) // per} instances"
            if size and size > rest and (size - rest) % per == 0
            else "it was trained with another observation layout (an older blis-gym?): retrain it"
        )
        raise ConfigError(
            f"{where}: the model {path} takes observations of shape {shape}, this cluster gives "
            f"({observation_size},): {why} (observations have {per} features per instance + {rest})"
        )
    if n != n_actions:
        raise ConfigError(f"{where}: the model {path} chooses among {n} actions, this env has {n_actions}")


@dataclass(frozen=True)
class TrainReport:
    """What a training run did: where it saved, how far it got, how fast (env steps per second)."""

    out: Path
    steps: int
    seconds: float
    interrupted: bool
    warm_start_accuracy: Optional[float]

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds if self.seconds > 0 else 0.0


def check_env_and_timesteps(env_id: str, timesteps: int) -> None:
    """The checks every training backend makes first: a known env id, a positive step budget."""
    if env_id not in ENV_IDS:
        raise ConfigError(f"--env: unknown environment {env_id!r} (valid: {', '.join(ENV_IDS)})")
    if timesteps <= 0:
        raise ConfigError(f"--timesteps must be > 0, got {timesteps}")
