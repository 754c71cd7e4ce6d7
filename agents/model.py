"""A trained agent on disk, loaded and checked against the env it is asked to play.

``blis train`` writes a run folder::

    DIR/model.zip          the stable-baselines3 model
    DIR/config.yaml        the resolved training config (env id, scenario, algorithm...)
    DIR/vecnormalize.pkl   observation statistics, when trained with normalisation
    DIR/checkpoints/       rl_model_<steps>_steps.zip (+ _vecnormalize_ stats)
    DIR/tb/                TensorBoard logs

:class:`TrainedAgent` acts exactly as the model did in training: observations
are normalised with the saved statistics, actions are deterministic.

``blis train --backend rllib`` writes ``DIR/config.yaml`` (``backend: rllib``) and
``DIR/rllib_checkpoint/`` instead of the model; :meth:`TrainedAgent.load` returns an
:class:`~blis_gym.agents.rllib_backend.RLlibAgent` for such a folder, with the same interface.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..config import yamlio
from ..errors import ConfigError
from .common import ALGOS, CONFIG_FILE, MODEL_CLASS, MODEL_FILE, VECNORM_FILE, algo_class, check_spaces
from .rllib_backend import RLlibAgent


def _model_path(path: str | Path) -> Path:
    p = Path(path)
    if p.is_dir():
        p = p / MODEL_FILE
    if not p.is_file():
        raise ConfigError(f"agent {path}: no such model file (give a model.zip or the folder blis train wrote)")
    return p


def _stats_path(model: Path) -> Optional[Path]:
    """The observation statistics saved with ``model`` (final model or checkpoint), if any."""
    if model.name == MODEL_FILE:
        cand = model.with_name(VECNORM_FILE)
    else:
        m = re.fullmatch(r"(.*)_(\d+)_steps\.zip", model.name)
        cand = model.with_name(f"{m.group(1)}_vecnormalize_{m.group(2)}_steps.pkl") if m else None
    return cand if cand is not None and cand.is_file() else None


def _read_config(folder: Path) -> Optional[dict]:
    """``folder``'s config.yaml, or None when it has none."""
    f = folder / CONFIG_FILE
    if not f.is_file():
        return None
    try:
        text = f.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{f}: cannot read ({exc})") from None
    doc = yamlio.parse(text, str(f))
    if not isinstance(doc, dict):
        raise ConfigError(f"{f}: expected a mapping")
    return doc


def _read_meta(model: Path) -> dict:
    """The run's config.yaml: next to the model, or one folder up for a checkpoint."""
    for folder in (model.parent, model.parent.parent):
        doc = _read_config(folder)
        if doc is not None:
            return doc
    return {}


def _rllib_run(path: Path) -> Optional[tuple[Path, dict]]:
    """(run folder, config) when ``path`` is a ``blis train --backend rllib`` run folder or its
    checkpoint folder; None otherwise."""
    if not path.is_dir():
        return None
    for folder in (path, path.parent):
        doc = _read_config(folder)
        if (
            doc is not None
            and doc.get("backend") == "rllib"
            and (folder == path or path.name == doc.get("checkpoint", "rllib_checkpoint"))
        ):
            return folder, doc
    return None


class TrainedAgent:
    """A stable-baselines3 model plus what it needs to act: its env id and observation statistics.

    ``predict`` has stable-baselines3's signature, so ``evaluate_policy`` and
    ``blis evaluate`` treat it like any model; ``act`` is the single-observation
    fast path the learned ``rl`` policies use.
    """

    def __init__(self, model: Any, path: Path, meta: dict, obs_stats: Any = None) -> None:
        self.model = model
        self.path = path
        self.meta = meta
        self.env_id: str = meta.get("env", "")
        self.obs_stats = obs_stats  # a VecNormalize (without its venv) or None

    @classmethod
    def load(cls, path: str | Path) -> Any:
        """Load ``path`` (a model.zip, a checkpoint, or the folder blis train wrote); a folder of
        ``blis train --backend rllib`` gives an :class:`~blis_gym.agents.rllib_backend.RLlibAgent`."""
        rllib = _rllib_run(Path(path))
        if rllib is not None:
            return RLlibAgent.load(*rllib)
        model_path = _model_path(path)
        meta = _read_meta(model_path)
        algo = meta.get("algo")
        tries = [algo] if algo in ALGOS else [a for a in ALGOS if a not in MODEL_CLASS]
        model = None
        errors = []
        for name in tries:
            try:
                model = algo_class(name).load(str(model_path), device="cpu")
                break
            except Exception as exc:  # a zip of another algorithm, or no model at all
                errors.append(f"{name}: {exc}")
        if model is None:
            raise ConfigError(f"agent {model_path}: not a stable-baselines3 model ({'; '.join(errors)[:300]})")
        stats = None
        stats_path = _stats_path(model_path)
        if stats_path is not None:
            try:
                with open(stats_path, "rb") as f:
                    stats = pickle.load(f)
            except Exception as exc:
                raise ConfigError(f"agent {model_path}: cannot read {stats_path.name} ({exc})") from None
        return cls(model, model_path, meta, stats)

    def check(self, env_id: str, observation_size: int, n_actions: int, where: str) -> None:
        """Raise ConfigError unless this model can play ``env_id`` with these spaces."""
        check_spaces(
            self.path,
            self.env_id,
            getattr(self.model.observation_space, "shape", None),
            getattr(self.model.action_space, "n", None),
            env_id,
            observation_size,
            n_actions,
            where,
        )

    def normalize(self, observation: np.ndarray) -> np.ndarray:
        if self.obs_stats is None:
            return observation
        return self.obs_stats.normalize_obs(observation)

    def predict(
        self,
        observation: np.ndarray,
        state: Optional[Any] = None,
        episode_start: Optional[np.ndarray] = None,
        deterministic: bool = True,
    ):
        """stable-baselines3's ``predict``, with the training-time observation normalisation."""
        return self.model.predict(self.normalize(np.asarray(observation)), state, episode_start, deterministic)

    def act(self, observation: np.ndarray) -> int:
        """The deterministic action for one observation."""
        return int(self.predict(observation)[0])

    def __repr__(self) -> str:
        return f"TrainedAgent({self.path}, env={self.env_id or '?'})"
