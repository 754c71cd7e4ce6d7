"""``blis train``: a stable-baselines3 agent on a blis_gym environment, written to a run folder.

Training episodes use workload seeds ``seed, seed + 1, ...`` (one per parallel
env) and then seeds each env draws below ``HELD_OUT_SEED``; ``blis evaluate``
uses seeds from ``HELD_OUT_SEED`` up by default, so its episodes were never
trained on. Ctrl-C stops training and saves the model as it is.

``algo: dagger`` imitates a teacher instead (:mod:`~blis_gym.agents.dagger`): no RL, the
same run folder; ``timesteps`` caps the teacher-labelled decisions.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional

import yaml

from .. import __version__
from ..envs.cluster_env import HELD_OUT_SEED
from ..envs.observation import observation_size
from ..errors import ConfigError
from .bc import clone, collect
from .common import CONFIG_FILE, MODEL_FILE, VECNORM_FILE, TrainReport, algo_class, check_env_and_timesteps, make_env
from .config import AgentConfig, EntropySchedule
from .dagger import train_dagger

WARM_START_SEED_OFFSET = 100_000  # the cloned baseline's episodes: training seeds too


def _entropy_callback(schedule: EntropySchedule, total: int):
    from stable_baselines3.common.callbacks import BaseCallback

    class EntropyScheduleCallback(BaseCallback):
        """Sets ``ent_coef`` linearly from ``start`` to ``end`` over the run."""

        def _on_step(self) -> bool:
            frac = min(self.num_timesteps / max(total, 1), 1.0)
            self.model.ent_coef = schedule.start + (schedule.end - schedule.start) * frac
            return True

    return EntropyScheduleCallback()


def _check(env_id: str, timesteps: int, seed: int, n_envs: int, out: Path) -> None:
    check_env_and_timesteps(env_id, timesteps)
    if n_envs < 1:
        raise ConfigError(f"--n-envs must be >= 1, got {n_envs}")
    if seed < 0 or seed + n_envs + WARM_START_SEED_OFFSET >= HELD_OUT_SEED:
        raise ConfigError(
            f"--seed must be in [0, {HELD_OUT_SEED - WARM_START_SEED_OFFSET - n_envs}) "
            f"(seeds from {HELD_OUT_SEED} up are held out for evaluation), got {seed}"
        )
    if (out / MODEL_FILE).exists():
        raise ConfigError(f"--out {out}: already holds a {MODEL_FILE}; pick another folder or remove it")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file, not a folder")


def _close_logger(model) -> None:
    """Close the model's logger: its TensorBoard writer flushes the event file and ends its thread
    (left open, the thread runs on for the life of the process)."""
    try:
        logger = model.logger
    except AttributeError:  # interrupted before learn() made one
        return
    logger.close()


def train(
    config: AgentConfig,
    *,
    env_id: str,
    scenario: str,
    timesteps: int,
    seed: int,
    out: str | Path,
    n_envs: Optional[int] = None,
    subproc: bool = False,
    progress: bool = True,
    torch_threads: int = 1,
    log: Callable[[str], None] = print,
) -> TrainReport:
    """Train ``config``'s algorithm on ``env_id``/``scenario`` for ``timesteps`` env steps into ``out``.

    ``torch_threads``: small MLPs train fastest on one thread, and several threads per process
    slow everything down badly when processes share cores.
    """
    import torch
    from stable_baselines3.common.callbacks import CheckpointCallback, ProgressBarCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecNormalize

    out = Path(out)
    n_envs = n_envs or config.n_envs
    _check(env_id, timesteps, seed, n_envs, out)
    if torch_threads < 1:
        raise ConfigError(f"--torch-threads must be >= 1, got {torch_threads}")
    torch.set_num_threads(torch_threads)
    env_kwargs = {"scenario": scenario, **config.env}
    probe = make_env(env_id, **env_kwargs)  # validates the scenario and overrides (clear errors)
    num_instances = probe.unwrapped.num_instances
    cache_observation = probe.unwrapped.scenario.env.cache_observation
    probe.close()
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "env": env_id,
        "scenario": scenario,
        "algo": config.algo,
        "seed": seed,
        "timesteps": timesteps,
        "n_envs": n_envs,
        "num_instances": num_instances,
        "observation_size": observation_size(num_instances, cache_observation),
        "cache_observation": cache_observation,
        "blis_gym_version": __version__,
        "config": config.to_dict(),
    }

    if config.algo == "dagger":  # imitation, no RL: its own loop (timesteps caps the teacher's labels)
        (out / CONFIG_FILE).write_text(yaml.safe_dump(meta, sort_keys=False), "utf-8")
        return train_dagger(
            config,
            env_id=env_id,
            env_kwargs=env_kwargs,
            seed=seed,
            out=out,
            n_envs=n_envs,
            max_labels=timesteps,
            meta=meta,
            log=log,
        )

    # render_mode: make_vec_env asks for rgb_array unless told; these envs render text only.
    venv = make_vec_env(
        env_id,
        n_envs=n_envs,
        seed=seed,
        env_kwargs={**env_kwargs, "render_mode": None},
        vec_env_cls=SubprocVecEnv if subproc and n_envs > 1 else DummyVecEnv,
    )
    hp = dict(config.hyperparameters)
    if config.normalize_observations or config.normalize_rewards:
        venv = VecNormalize(
            venv,
            norm_obs=config.normalize_observations,
            norm_reward=config.normalize_rewards,
            gamma=float(hp.get("gamma", 0.99)),
        )
    try:
        model = algo_class(config.algo)(
            config.policy,
            venv,
            seed=seed,
            device="cpu",
            verbose=0,
            tensorboard_log=str(out / "tb"),
            policy_kwargs=dict(config.policy_kwargs) or None,
            **hp,
        )
    except (TypeError, ValueError) as exc:
        venv.close()
        raise ConfigError(f"agent config: {config.algo} hyperparameters: {exc}") from None

    (out / CONFIG_FILE).write_text(yaml.safe_dump(meta, sort_keys=False), "utf-8")

    accuracy = None
    if config.warm_start is not None:
        ws = config.warm_start
        log(f"warm start: cloning {ws.baseline} over {ws.episodes} episodes")
        obs, actions = collect(env_id, env_kwargs, ws, seed + WARM_START_SEED_OFFSET)
        if isinstance(venv, VecNormalize) and venv.norm_obs:
            venv.obs_rms.update(obs)
            obs = venv.normalize_obs(obs)
        accuracy = clone(model, obs, actions, ws, seed)
        log(f"warm start: the policy agrees with {ws.baseline} on {accuracy:.1%} of its decisions")

    callbacks = []
    if config.checkpoint_every > 0:
        callbacks.append(
            CheckpointCallback(
                save_freq=max(config.checkpoint_every // n_envs, 1),
                save_path=str(out / "checkpoints"),
                name_prefix="rl_model",
                save_vecnormalize=True,
            )
        )
    if config.entropy_schedule is not None:
        callbacks.append(_entropy_callback(config.entropy_schedule, timesteps))
    if progress:
        callbacks.append(ProgressBarCallback())
    started = time.perf_counter()
    interrupted = False
    try:
        model.learn(total_timesteps=timesteps, callback=callbacks, tb_log_name=config.algo)
    except KeyboardInterrupt:
        interrupted = True
        log(f"interrupted at {model.num_timesteps} steps: saving the model as it is")
    seconds = time.perf_counter() - started
    model.save(str(out / MODEL_FILE))
    if isinstance(venv, VecNormalize):
        venv.save(str(out / VECNORM_FILE))
    venv.close()
    _close_logger(model)
    report = TrainReport(out, int(model.num_timesteps), seconds, interrupted, accuracy)
    meta.update(
        steps_done=report.steps,
        wall_seconds=round(seconds, 3),
        steps_per_second=round(report.steps_per_second, 1),
        interrupted=interrupted,
    )
    (out / CONFIG_FILE).write_text(yaml.safe_dump(meta, sort_keys=False), "utf-8")
    return report
