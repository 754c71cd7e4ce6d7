"""RLlib (Ray's RL library, new API stack) for the blis_gym environments: training and the agent.

**Envs.** :func:`register_envs` registers the three ids with ``ray.tune.registry.register_env``
under their Gymnasium names; the creator builds the env from ``env_config``, a mapping of
``gym.make`` keyword arguments (``scenario`` and scenario overrides)::

    register_envs()
    PPOConfig().environment("blis_gym/Routing-v0", env_config={"scenario": "default", "num_requests": 200})

RLlib resets env ``i`` of env runner ``w`` once with seed ``config.seed + w + i``, so runner 1's
second env and runner 2's first would play the same workloads; the creator's envs turn that
seed into ``config.seed + w * SEED_STRIDE + i`` (below ``HELD_OUT_SEED``), and every later
episode draws its workload seed below ``HELD_OUT_SEED`` from the env's own generator, as
under stable-baselines3.

**Training** (:func:`train_rllib`, ``blis train --backend rllib``): PPO only, into the run
folder layout ``blis train`` uses::

    DIR/config.yaml         the resolved config, with backend: rllib
    DIR/rllib_checkpoint/   Algorithm.save_to_path (the RLModule under learner_group/learner/rl_module/)
    DIR/metrics.csv         one row per training iteration

Hyperparameters come from the agent config (``configs/agents/ppo.yaml`` by default). These map
(stable-baselines3 name -> RLlib name; stable-baselines3's default where the config has none):
``learning_rate`` -> ``lr``, ``gamma``, ``gae_lambda`` -> ``lambda_``, ``clip_range`` ->
``clip_param``, ``ent_coef`` -> ``entropy_coeff`` (``entropy_schedule`` -> a linear
``entropy_coeff`` schedule over ``timesteps``), ``vf_coef`` -> ``vf_loss_coeff``,
``max_grad_norm`` -> ``grad_clip``, ``n_epochs`` -> ``num_epochs``, ``batch_size`` ->
``minibatch_size``, ``n_steps`` (per env) x envs -> ``train_batch_size_per_learner`` (at most
``timesteps``), ``policy_kwargs.net_arch`` (a list) -> ``fcnet_hiddens`` (tanh, separate policy
and value networks, as stable-baselines3's MlpPolicy), ``env`` -> env_config. The KL penalty is
off (stable-baselines3's PPO has none). Not mapped, and listed in config.yaml
(``not_mapped``): observation and reward normalisation, ``warm_start``, ``checkpoint_every``
(one checkpoint, at the end) and any other hyperparameter.

**Acting** (:class:`RLlibAgent`): ``TrainedAgent.load`` returns one for a folder whose
config.yaml says ``backend: rllib``; it loads the RLModule with ``RLModule.from_checkpoint``
and acts with the argmax of its action logits (``forward_inference``, torch, no Ray cluster),
so ``blis evaluate --agent DIR`` and ``blis run --routing-policy rl --routing-model DIR`` use
it like a stable-baselines3 model.

Ray and torch are imported inside the functions: importing this module is cheap.
"""

from __future__ import annotations

import csv
import functools
import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Optional

import gymnasium as gym
import numpy as np
import yaml

from .. import ENV_IDS, __version__
from ..distributed import cluster_cpus, need_ray, ray_session
from ..envs.cluster_env import HELD_OUT_SEED
from ..envs.observation import observation_size
from ..errors import ConfigError
from .common import CONFIG_FILE, MODEL_FILE, TrainReport, check_env_and_timesteps, check_spaces, make_env
from .config import AgentConfig

BACKEND = "rllib"
CHECKPOINT_DIR = "rllib_checkpoint"
METRICS_FILE = "metrics.csv"
METRICS_COLUMNS = ("iteration", "env_steps", "episodes", "episode_return_mean", "episode_len_mean", "seconds")
# Envs per env runner that get distinct first seeds (see the module docstring).
SEED_STRIDE = 1000
# stable-baselines3 PPO's defaults: a recipe means the same under both backends.
SB3_PPO_DEFAULTS: dict[str, Any] = {
    "learning_rate": 3e-4,
    "n_steps": 2048,
    "batch_size": 64,
    "n_epochs": 10,
    "gamma": 0.99,
    "gae_lambda": 0.95,
    "clip_range": 0.2,
    "ent_coef": 0.0,
    "vf_coef": 0.5,
    "max_grad_norm": 0.5,
}
# stable-baselines3 hyperparameter -> PPOConfig.training keyword (n_steps is handled apart).
HYPERPARAMETERS: dict[str, str] = {
    "learning_rate": "lr",
    "gamma": "gamma",
    "gae_lambda": "lambda_",
    "clip_range": "clip_param",
    "ent_coef": "entropy_coeff",
    "vf_coef": "vf_loss_coeff",
    "max_grad_norm": "grad_clip",
    "n_epochs": "num_epochs",
    "batch_size": "minibatch_size",
}
_INTEGER_HPS = ("n_steps", "batch_size", "n_epochs")
SB3_NET_ARCH = [64, 64]  # MlpPolicy's default for PPO


# --- environments ------------------------------------------------------------------------------


class RunnerSeeds(gym.Wrapper):
    """Makes RLlib's first reset seed ``base + w + i`` (env runner ``w``, env ``i``) into
    ``base + w * SEED_STRIDE + i``, below ``HELD_OUT_SEED``, so no two envs share workloads."""

    def __init__(self, env: gym.Env, worker_index: int) -> None:
        super().__init__(env)
        self.worker_index = worker_index

    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None):
        if seed is not None:
            seed = (int(seed) + self.worker_index * (SEED_STRIDE - 1)) % HELD_OUT_SEED
        return self.env.reset(seed=seed, options=options)


def make_rllib_env(env_id: str, env_config: Any) -> gym.Env:
    """The env RLlib's env runners step: ``env_id`` made with ``env_config`` (an EnvContext or a
    mapping of ``gym.make`` keyword arguments), seeded per env runner (:class:`RunnerSeeds`)."""
    import blis_gym  # noqa: F401  (registers the Gymnasium ids in the env runner's process)

    # RLlib adds num_envs when it asks for a vector; the vector is its business.
    kwargs = {k: v for k, v in dict(env_config).items() if k != "num_envs"}
    return RunnerSeeds(make_env(env_id, **kwargs), int(getattr(env_config, "worker_index", 0) or 0))


def quiet_rllib_logs() -> None:
    """RLlib's warnings about its own internals (deprecations, new API stack notes) are not for our users."""
    for name in ("ray.rllib", "ray._common.deprecation"):
        logging.getLogger(name).setLevel(logging.ERROR)


def register_envs() -> None:
    """Register the three env ids with ``ray.tune`` (RLlib looks its env names up there)."""
    need_ray("RLlib")
    from ray.tune.registry import register_env

    for env_id in ENV_IDS:
        register_env(env_id, functools.partial(make_rllib_env, env_id))


# --- configuration --------------------------------------------------------------------------------


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def ppo_settings(config: AgentConfig, *, total_envs: int, timesteps: int) -> tuple[dict, list[int], list[str]]:
    """(PPOConfig.training keywords, hidden layer sizes, settings of ``config`` that do not map)."""
    if config.algo != "ppo":
        raise ConfigError(
            f"--backend rllib trains ppo only, not {config.algo} (valid: ppo; "
            f"use --backend sb3 for a2c, dqn and dagger)"
        )
    hp = {**SB3_PPO_DEFAULTS, **config.hyperparameters}
    for key in (*HYPERPARAMETERS, "n_steps"):
        v = hp[key]
        ok = (
            (isinstance(v, int) and not isinstance(v, bool) and v >= 1)
            if key in _INTEGER_HPS
            else (_is_number(v) and v >= 0)
        )
        if not ok:
            kind = "an integer >= 1" if key in _INTEGER_HPS else "a finite number >= 0"
            raise ConfigError(f"agent config: hyperparameters: {key}: expected {kind} for --backend rllib, got {v!r}")
    # Whole steps for each env (RLlib splits the batch over them); never more than asked for.
    per_env = max(1, min(hp["n_steps"], math.ceil(timesteps / total_envs)))
    batch = per_env * total_envs
    training = {rl: hp[sb3] for sb3, rl in HYPERPARAMETERS.items()}
    training.update(train_batch_size_per_learner=batch, minibatch_size=min(hp["batch_size"], batch), use_kl_loss=False)
    es = config.entropy_schedule
    if es is not None:
        training["entropy_coeff"] = [[0, float(es.start)], [timesteps, float(es.end)]]
    not_mapped = sorted(k for k in config.hyperparameters if k not in HYPERPARAMETERS and k != "n_steps")
    net_arch = config.policy_kwargs.get("net_arch", SB3_NET_ARCH)
    if not (isinstance(net_arch, list) and net_arch and all(isinstance(n, int) and n >= 1 for n in net_arch)):
        not_mapped.append("policy_kwargs.net_arch")
        net_arch = SB3_NET_ARCH
    not_mapped += [f"policy_kwargs.{k}" for k in config.policy_kwargs if k != "net_arch"]
    if config.policy != "MlpPolicy":
        not_mapped.append("policy")
    for key in ("normalize_observations", "normalize_rewards", "warm_start", "checkpoint_every"):
        if getattr(config, key):
            not_mapped.append(key)
    return training, list(net_arch), not_mapped


def ppo_config(
    config: AgentConfig, *, env_id: str, scenario: str, seed: int, timesteps: int, env_runners: int = 1, n_envs: int = 1
) -> tuple[Any, dict, list[str]]:
    """(RLlib PPOConfig, the settings it got, what of ``config`` does not map) for ``env_id``.

    ``env_runners``: env runner actors (0: sample in this process); ``n_envs``: envs per runner.
    """
    need_ray("RLlib training")
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    total_envs = max(env_runners, 1) * n_envs
    training, hiddens, not_mapped = ppo_settings(config, total_envs=total_envs, timesteps=timesteps)
    env_config = {"scenario": scenario, **config.env}
    rl = (
        PPOConfig()
        .api_stack(enable_rl_module_and_learner=True, enable_env_runner_and_connector_v2=True)
        .framework("torch")
        .environment(env_id, env_config=env_config)
        .env_runners(num_env_runners=env_runners, num_envs_per_env_runner=n_envs)
        .learners(num_learners=0)
        .training(**training)
        .rl_module(
            model_config=DefaultModelConfig(fcnet_hiddens=hiddens, fcnet_activation="tanh", vf_share_layers=False)
        )
        # A failed env runner is a bug to report, not one to restart silently.
        .fault_tolerance(restart_failed_env_runners=False)
        .debugging(seed=seed, log_level="ERROR", log_sys_usage=False)
    )
    settings = {
        **training,
        "fcnet_hiddens": hiddens,
        "num_env_runners": env_runners,
        "num_envs_per_env_runner": n_envs,
        "env_config": env_config,
    }
    return rl, settings, not_mapped


# --- training -------------------------------------------------------------------------------------


def _check(env_id: str, timesteps: int, seed: int, env_runners: int, n_envs: int, out: Path) -> None:
    check_env_and_timesteps(env_id, timesteps)
    if env_runners < 0:
        raise ConfigError(f"--env-runners must be >= 0 (0: sample in this process), got {env_runners}")
    if not 1 <= n_envs <= SEED_STRIDE:
        raise ConfigError(f"--n-envs must be in [1, {SEED_STRIDE}] with --backend rllib, got {n_envs}")
    top = HELD_OUT_SEED - (env_runners + 1) * SEED_STRIDE
    if not 0 <= seed < top:
        raise ConfigError(
            f"--seed must be in [0, {top}) (seeds from {HELD_OUT_SEED} up are held out for evaluation), got {seed}"
        )
    for name in (MODEL_FILE, CHECKPOINT_DIR):
        if (out / name).exists():
            raise ConfigError(f"--out {out}: already holds a {name}; pick another folder or remove it")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file, not a folder")


def _figure(value: Any) -> Any:
    """A metric for the CSV: a rounded float, or empty when RLlib has none yet (no episode ended)."""
    if value is None or not _is_number(float(value)):
        return ""
    return round(float(value), 6)


def train_rllib(
    config: AgentConfig,
    *,
    env_id: str,
    scenario: str,
    timesteps: int,
    seed: int,
    out: str | Path,
    env_runners: int = 1,
    n_envs: Optional[int] = None,
    address: str = "",
    torch_threads: int = 1,
    progress: bool = False,
    log: Callable[[str], None] = print,
):
    """Train PPO with RLlib on ``env_id``/``scenario`` until ``timesteps`` env steps are sampled.

    ``env_runners``: env runner actors (0: sample in this process); ``n_envs``: envs per env
    runner (default: the config's); ``address``: a Ray cluster to join (default: an embedded
    Ray). Runs whole iterations (each samples ``train_batch_size_per_learner`` steps), so it may
    do a few more steps than asked. Ctrl-C stops training and saves the checkpoint as it is.
    Returns a ``TrainReport`` (steps: env steps sampled; seconds: the training loop, setup apart).
    """
    out = Path(out).resolve()  # RLlib checkpoints need absolute paths
    n_envs = n_envs or config.n_envs
    _check(env_id, timesteps, seed, env_runners, n_envs, out)
    if torch_threads < 1:
        raise ConfigError(f"--torch-threads must be >= 1, got {torch_threads}")
    probe = make_env(env_id, scenario=scenario, **config.env)  # validates the scenario and overrides
    num_instances, n_actions = probe.unwrapped.num_instances, int(probe.action_space.n)
    cache_observation = probe.unwrapped.scenario.env.cache_observation
    probe.close()
    rl, settings, not_mapped = ppo_config(
        config, env_id=env_id, scenario=scenario, seed=seed, timesteps=timesteps, env_runners=env_runners, n_envs=n_envs
    )
    if not_mapped:
        log(f"rllib: not used from the agent config (stable-baselines3 only): {', '.join(not_mapped)}")
    ray_version = need_ray("blis train --backend rllib").__version__
    import torch

    torch.set_num_threads(torch_threads)
    meta: dict[str, Any] = {
        "backend": BACKEND,
        "env": env_id,
        "scenario": scenario,
        "algo": "ppo",
        "seed": seed,
        "timesteps": timesteps,
        "env_runners": env_runners,
        "n_envs": n_envs,
        "num_instances": num_instances,
        "observation_size": observation_size(num_instances, cache_observation),
        "cache_observation": cache_observation,
        "n_actions": n_actions,
        "checkpoint": CHECKPOINT_DIR,
        "blis_gym_version": __version__,
        "ray_version": ray_version,
        "rllib": settings,
        "not_mapped": not_mapped,
        "config": config.to_dict(),
    }
    # An embedded Ray gets a CPU per env runner even on a smaller machine (they would wait forever).
    workers = None if address else max(os.cpu_count() or 1, env_runners)
    rows: list[dict] = []
    steps, interrupted, seconds = 0, False, 0.0
    with ray_session(address, workers, what="blis train --backend rllib") as ray:
        if env_runners > cluster_cpus(ray):
            raise ConfigError(
                f"--env-runners {env_runners}: the Ray cluster offers {cluster_cpus(ray)} CPUs, "
                f"one per env runner is needed"
            )
        out.mkdir(parents=True, exist_ok=True)
        _write_meta(out, meta)
        register_envs()
        quiet_rllib_logs()
        algo = rl.build_algo()
        try:
            started = time.perf_counter()
            with open(out / METRICS_FILE, "w", newline="", encoding="utf-8") as f:
                writer = csv.DictWriter(f, fieldnames=METRICS_COLUMNS, lineterminator="\n")
                writer.writeheader()
                try:
                    while steps < timesteps:
                        row = _iteration(algo.train(), len(rows) + 1, time.perf_counter() - started)
                        steps = row["env_steps"]
                        rows.append(row)
                        writer.writerow(row)
                        f.flush()  # a long run's progress is readable while it trains
                        if progress:
                            log(
                                f"iteration {row['iteration']}: {steps}/{timesteps} steps, "
                                f"episode return mean {row['episode_return_mean']}"
                            )
                except KeyboardInterrupt:
                    interrupted = True
                    log(f"interrupted at {steps} steps: saving the checkpoint as it is")
            seconds = time.perf_counter() - started
            algo.save_to_path(str(out / CHECKPOINT_DIR))
        finally:
            algo.stop()
    report = TrainReport(out, steps, seconds, interrupted, None)
    meta.update(
        steps_done=steps,
        iterations=len(rows),
        wall_seconds=round(seconds, 3),
        steps_per_second=round(report.steps_per_second, 1),
        interrupted=interrupted,
    )
    _write_meta(out, meta)
    return report


def _iteration(result: dict, iteration: int, seconds: float) -> dict:
    """One metrics.csv row from an ``Algorithm.train()`` result."""
    from ray.rllib.utils.metrics import (
        ENV_RUNNER_RESULTS,
        EPISODE_LEN_MEAN,
        EPISODE_RETURN_MEAN,
        NUM_ENV_STEPS_SAMPLED_LIFETIME,
        NUM_EPISODES_LIFETIME,
    )

    runners = result.get(ENV_RUNNER_RESULTS, {})
    return {
        "iteration": iteration,
        "env_steps": int(runners.get(NUM_ENV_STEPS_SAMPLED_LIFETIME, 0)),
        "episodes": int(runners.get(NUM_EPISODES_LIFETIME, 0)),
        "episode_return_mean": _figure(runners.get(EPISODE_RETURN_MEAN)),
        "episode_len_mean": _figure(runners.get(EPISODE_LEN_MEAN)),
        "seconds": round(seconds, 3),
    }


def _write_meta(out: Path, meta: dict) -> None:
    (out / CONFIG_FILE).write_text(yaml.safe_dump(meta, sort_keys=False), "utf-8")


# --- the agent ------------------------------------------------------------------------------------


def module_path(checkpoint: Path) -> Path:
    """The RLModule's folder inside an Algorithm checkpoint."""
    from ray.rllib.core import COMPONENT_LEARNER, COMPONENT_LEARNER_GROUP, COMPONENT_RL_MODULE, DEFAULT_MODULE_ID

    return checkpoint / COMPONENT_LEARNER_GROUP / COMPONENT_LEARNER / COMPONENT_RL_MODULE / DEFAULT_MODULE_ID


class RLlibAgent:
    """An RLlib PPO policy with :class:`~blis_gym.agents.model.TrainedAgent`'s interface.

    Acts with the argmax of the module's action logits (``deterministic=True``, as RLlib does
    without exploration) or samples them; needs torch and the ray package, not a Ray cluster.
    """

    def __init__(self, module: Any, path: Path, meta: dict) -> None:
        self.module = module
        self.path = path
        self.meta = meta
        self.env_id: str = meta.get("env", "")

    @classmethod
    def load(cls, folder: str | Path, meta: dict) -> "RLlibAgent":
        """Load the run folder ``folder`` that ``blis train --backend rllib`` wrote (``meta``: its config.yaml)."""
        folder = Path(folder)
        need_ray(f"agent {folder} (backend: rllib)")
        checkpoint = folder / str(meta.get("checkpoint") or CHECKPOINT_DIR)
        if not checkpoint.is_dir():
            raise ConfigError(
                f"agent {folder}: config.yaml says backend rllib but {checkpoint} is missing (did training finish?)"
            )
        path = module_path(checkpoint)
        if not path.is_dir():
            raise ConfigError(f"agent {folder}: {checkpoint} holds no RLModule ({path} is missing)")
        from ray.rllib.core.rl_module.rl_module import RLModule

        quiet_rllib_logs()
        try:
            module = RLModule.from_checkpoint(str(path.resolve()))  # pyarrow wants absolute paths
        except Exception as exc:  # a truncated or foreign checkpoint
            raise ConfigError(
                f"agent {folder}: cannot load the RLlib module from {path} ({type(exc).__name__}: {str(exc)[:200]})"
            ) from None
        module.eval()
        return cls(module, folder, meta)

    def check(self, env_id: str, observation_size: int, n_actions: int, where: str) -> None:
        """Raise ConfigError unless this policy can play ``env_id`` with these spaces."""
        check_spaces(
            self.path,
            self.env_id,
            getattr(self.module.observation_space, "shape", None),
            getattr(self.module.action_space, "n", None),
            env_id,
            observation_size,
            n_actions,
            where,
        )

    def predict(
        self,
        observation: np.ndarray,
        state: Optional[Any] = None,
        episode_start: Optional[np.ndarray] = None,
        deterministic: bool = True,
    ):
        """stable-baselines3's ``predict``: (action or actions, None) for one observation or a batch."""
        import torch

        obs = np.asarray(observation, dtype=np.float32)
        single = obs.ndim == 1
        with torch.no_grad():
            logits = self.module.forward_inference({"obs": torch.from_numpy(obs[None] if single else obs)})[
                "action_dist_inputs"
            ]
            if deterministic:
                actions = logits.argmax(dim=-1)
            else:
                actions = torch.distributions.Categorical(logits=logits).sample()
        actions = actions.numpy()
        return (actions[0] if single else actions), None

    def act(self, observation: np.ndarray) -> int:
        """The deterministic action for one observation."""
        return int(self.predict(observation)[0])

    def __repr__(self) -> str:
        return f"RLlibAgent({self.path}, env={self.env_id or '?'})"
