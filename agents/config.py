"""Training configs: one YAML per algorithm in ``configs/agents/`` (or any file), validated once.

Schema (every key optional except ``algo``)::

    algo: ppo                  # ppo, a2c, dqn, or dagger (imitation of a teacher, no RL)
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
    dagger: {teacher: lookahead, iterations: 6, episodes: 4, ...}  # algo dagger only (see Dagger)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..config import yamlio
from ..config.datafiles import shipped_dir, shipped_names
from ..errors import ConfigError
from .common import ALGOS


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
class Dagger:
    """DAgger: imitation of ``teacher`` (any baseline of the env, e.g. the ``lookahead`` oracle).

    Iteration 0 plays ``episodes`` episodes with the teacher; iteration ``i >= 1`` plays them
    with the learner, except that each decision follows the teacher with probability
    ``beta * beta_decay ** (i - 1)``. Every visited state is labelled with the teacher's
    action; after each iteration the policy is trained on all labels so far (``epochs``
    passes of cross-entropy, Adam at ``learning_rate``, minibatches of ``batch_size``). With
    ``validation_episodes`` > 0 the learner of each iteration plays that many episodes on
    validation seeds (``validation_seed`` up) and ``model.zip`` is the iteration with the
    lowest mean TTFT p99 there; otherwise it is the last iteration's.
    """

    teacher: str = "lookahead"
    iterations: int = 6
    episodes: int = 4
    epochs: int = 10
    learning_rate: float = 1e-3
    batch_size: int = 256
    beta: float = 0.5
    beta_decay: float = 0.5
    validation_episodes: int = 0
    validation_seed: int = 1_000_000


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
    dagger: Optional[Dagger] = None

    def to_dict(self) -> dict:
        return asdict(self)


_KEYS = {f for f in AgentConfig.__dataclass_fields__}


def agent_config_names() -> list[str]:
    return shipped_names("agents")


def _sub(where: str, key: str, value: Any, cls) -> Any:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {key}: expected a mapping")
    allowed = set(cls.__dataclass_fields__)
    unknown = set(value) - allowed
    if unknown:
        raise ConfigError(
            f"{where}: {key}: unknown key(s) {', '.join(sorted(unknown))} (valid: {', '.join(sorted(allowed))})"
        )
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
    values["dagger"] = _sub(where, "dagger", doc.get("dagger"), Dagger)
    if algo == "dagger":
        values["dagger"] = values["dagger"] or Dagger()
        for key in ("hyperparameters", "entropy_schedule", "warm_start", "normalize_rewards"):
            if doc.get(key):
                raise ConfigError(
                    f"{where}: {key}: not used by algo dagger (it imitates its teacher; set the dagger block instead)"
                )
    elif values["dagger"] is not None:
        raise ConfigError(f"{where}: dagger: applies to algo dagger, not {algo}")
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
    if es is not None and not all(
        isinstance(x, (int, float)) and math.isfinite(x) and x >= 0 for x in (es.start, es.end)
    ):
        raise ConfigError(f"{where}: entropy_schedule: start and end must be finite numbers >= 0")
    ws = cfg.warm_start
    if ws is not None and not (
        isinstance(ws.episodes, int)
        and ws.episodes >= 1
        and isinstance(ws.epochs, int)
        and ws.epochs >= 1
        and isinstance(ws.learning_rate, (int, float))
        and ws.learning_rate > 0
    ):
        raise ConfigError(f"{where}: warm_start: episodes and epochs must be integers >= 1, learning_rate > 0")
    if cfg.dagger is not None:
        _check_dagger(cfg.dagger, where)
    return cfg


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_dagger(d: Dagger, where: str) -> None:
    if not isinstance(d.teacher, str) or not d.teacher:
        raise ConfigError(f"{where}: dagger: teacher: expected a baseline name (e.g. lookahead), got {d.teacher!r}")
    for key, least in (
        ("iterations", 1),
        ("episodes", 1),
        ("epochs", 1),
        ("batch_size", 1),
        ("validation_episodes", 0),
        ("validation_seed", 0),
    ):
        v = getattr(d, key)
        if not _is_int(v) or v < least:
            raise ConfigError(f"{where}: dagger: {key}: expected an integer >= {least}, got {v!r}")
    if not (_is_number(d.learning_rate) and d.learning_rate > 0):
        raise ConfigError(f"{where}: dagger: learning_rate: expected a number > 0, got {d.learning_rate!r}")
    for key in ("beta", "beta_decay"):
        v = getattr(d, key)
        if not (_is_number(v) and 0 <= v <= 1):
            raise ConfigError(f"{where}: dagger: {key}: expected a number in [0, 1], got {v!r}")


def load_agent_config(name_or_path: str | Path) -> AgentConfig:
    """A shipped config by name (``ppo``, ``a2c``, ``dqn``...) or a YAML file."""
    name = str(name_or_path)
    if name in agent_config_names():
        text = (shipped_dir("agents") / f"{name}.yaml").read_text("utf-8")
        where = f"agent config {name}"
    else:
        path = Path(name)
        if not path.is_file():
            raise ConfigError(
                f"agent config {name!r}: no such file or shipped config (shipped: {', '.join(agent_config_names())})"
            )
        where = f"agent config {path}"
        try:
            text = path.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{where}: cannot read ({exc})") from None
    return parse_agent_config(yamlio.parse(text, where), where)
