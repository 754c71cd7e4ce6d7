"""Training configs: one YAML per algorithm in ``configs/agents/`` (or any file), validated once.

Schema (every key optional except ``algo``)::

    algo: ppo                  # ppo, a2c or dqn
    policy: MlpPolicy
    n_envs: 4                  # parallel environments (--n-envs overrides)
    normalize_observations: true
    normalize_rewards: false   # training only; the model never sees rewards when it acts
    hyperparameters: {...}     # keyword arguments of the stable-baselines3 class
    policy_kwargs: {net_arch: [128, 128]}
    entropy_schedule: {start: 0.02, end: 0.0}   # ent_coef, linear over training (ppo, a2c)
    warm_start: {baseline: least-loaded, episodes: 5, epochs: 20}  # behaviour cloning
    env: {reward: time-in-system}                # scenario keys overridden for training
    checkpoint_every: 50000    # environment steps between checkpoints (0 = none)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Optional

from ..config import yamlio
from ..errors import ConfigError
from .model import ALGOS


@dataclass(frozen=True)
class EntropySchedule:
    """``ent_coef`` goes linearly from ``start`` to ``end`` over the training run."""

    start: float
    end: float


@dataclass(frozen=True)
class WarmStart:
    """Behaviour cloning before RL: ``episodes`` episodes of ``baseline``, ``epochs`` passes."""

    baseline: str
    episodes: int = 5
    epochs: int = 20
    learning_rate: float = 1e-3


@dataclass(frozen=True)
class AgentConfig:
    algo: str
    policy: str = "MlpPolicy"
    n_envs: int = 1
    normalize_observations: bool = True
    normalize_rewards: bool = False
    hyperparameters: dict = field(default_factory=dict)
    policy_kwargs: dict = field(default_factory=dict)
    entropy_schedule: Optional[EntropySchedule] = None
    warm_start: Optional[WarmStart] = None
    env: dict = field(default_factory=dict)
    checkpoint_every: int = 50000

    def to_dict(self) -> dict:
        return asdict(self)


_KEYS = {f for f in AgentConfig.__dataclass_fields__}


def agent_config_names() -> list[str]:
    folder = resources.files("blis_gym.configs") / "agents"
    return sorted(f.name[:-5] for f in folder.iterdir() if f.name.endswith(".yaml"))


def _sub(where: str, key: str, value: Any, cls) -> Any:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {key}: expected a mapping")
    allowed = set(cls.__dataclass_fields__)
    unknown = set(value) - allowed
    if unknown:
        raise ConfigError(f"{where}: {key}: unknown key(s) {', '.join(sorted(unknown))} "
                          f"(valid: {', '.join(sorted(allowed))})")
    try:
        return cls(**value)
    except TypeError as exc:
        raise ConfigError(f"{where}: {key}: {exc}") from None


def parse_agent_config(doc: Any, where: str) -> AgentConfig:
    """Validate a config mapping; errors name ``where`` and the key."""
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: expected a mapping of option: value")
    unknown = set(doc) - _KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} (valid: {', '.join(sorted(_KEYS))})")
    algo = doc.get("algo")
    if algo not in ALGOS:
        raise ConfigError(f"{where}: algo: expected one of {', '.join(ALGOS)}, got {algo!r}")
    values = dict(doc)
    for key in ("hyperparameters", "policy_kwargs", "env"):
        if not isinstance(values.get(key, {}), dict):
            raise ConfigError(f"{where}: {key}: expected a mapping")
    values["entropy_schedule"] = _sub(where, "entropy_schedule", doc.get("entropy_schedule"), EntropySchedule)
    values["warm_start"] = _sub(where, "warm_start", doc.get("warm_start"), WarmStart)
    cfg = AgentConfig(**values)
    for key, least in (("n_envs", 1), ("checkpoint_every", 0)):
        v = getattr(cfg, key)
        if not isinstance(v, int) or isinstance(v, bool) or v < least:
            raise ConfigError(f"{where}: {key}: expected an integer >= {least}, got {v!r}")
    for key in ("normalize_observations", "normalize_rewards"):
        if not isinstance(getattr(cfg, key), bool):
            raise ConfigError(f"{where}: {key}: expected true or false")
    if cfg.algo == "dqn" and cfg.entropy_schedule:
        raise ConfigError(f"{where}: entropy_schedule applies to ppo and a2c, not dqn")
    es = cfg.entropy_schedule
    if es is not None and not all(isinstance(x, (int, float)) and math.isfinite(x) and x >= 0
                                  for x in (es.start, es.end)):
        raise ConfigError(f"{where}: entropy_schedule: start and end must be finite numbers >= 0")
    ws = cfg.warm_start
    if ws is not None and not (isinstance(ws.episodes, int) and ws.episodes >= 1
                               and isinstance(ws.epochs, int) and ws.epochs >= 1
                               and isinstance(ws.learning_rate, (int, float)) and ws.learning_rate > 0):
        raise ConfigError(f"{where}: warm_start: episodes and epochs must be integers >= 1, "
                          f"learning_rate > 0")
    return cfg


def load_agent_config(name_or_path: str | Path) -> AgentConfig:
    """A shipped config by name (``ppo``, ``a2c``, ``dqn``...) or a YAML file."""
    name = str(name_or_path)
    if name in agent_config_names():
        text = (resources.files("blis_gym.configs") / "agents" / f"{name}.yaml").read_text("utf-8")
        where = f"agent config {name}"
    else:
        path = Path(name)
        if not path.is_file():
            raise ConfigError(f"agent config {name!r}: no such file or shipped config "
                              f"(shipped: {', '.join(agent_config_names())})")
        where = f"agent config {path}"
        try:
            text = path.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{where}: cannot read ({exc})") from None
    return parse_agent_config(yamlio.parse(text, where), where)
