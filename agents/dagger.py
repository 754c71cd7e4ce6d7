"""DAgger (``blis train --algo dagger``): imitate a teacher on the states the learner visits.

Behaviour cloning (:mod:`~blis_gym.agents.bc`) only sees the states the teacher
itself visits; a learner that errs drifts into states it never saw labelled.
DAgger (Ross, Gordon and Bagnell, 2011) fixes that by letting the learner drive
and asking the teacher what it would have done:

* iteration 0 plays ``episodes`` episodes with the teacher;
* iteration ``i >= 1`` plays them with the learner, except that each decision
  follows the teacher with probability ``beta_i = beta * beta_decay ** (i - 1)``;
* every visited state is labelled with the teacher's action for the env's
  paused decision (computed before the step), all labels are aggregated, and
  the policy is trained on the whole set after each iteration (cross-entropy,
  :func:`~blis_gym.agents.bc.fit`).

The teacher is any baseline of the env; the point is the ``lookahead`` oracle,
which forks the paused simulation per candidate (clairvoyant, ~20-40 ms per
decision, so labels are the cost). Episodes run in ``n_envs`` worker processes;
results are gathered in episode order and every random choice is seeded by the
episode, so a seed gives the same model whatever ``n_envs``.

The run folder is the other algorithms' (``model.zip`` is a PPO model whose
policy was trained by imitation, ``vecnormalize.pkl``, ``config.yaml``), with
one checkpoint per iteration (``checkpoints/rl_model_<labels>_steps.zip`` and its
statistics) and ``dagger.csv``: per iteration, labels, beta, training accuracy,
the learner's agreement with the teacher on the states it visited, the
collected episodes' TTFT, and the validation figures; ``dagger_data.npz`` keeps every
labelled state (raw observation, teacher action, iteration) for reuse: labels are the cost.

Seeds: iteration ``i``'s episode ``k`` plays workload seed
``seed + i * episodes + k`` (training seeds, below ``validation_seed``);
validation plays ``validation_seed .. validation_seed + validation_episodes - 1``.
"""

from __future__ import annotations

import csv
import io
import multiprocessing
import pickle
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import yaml

from ..baselines import make_baseline
from ..envs.observation import observation_size
from ..errors import ConfigError
from . import bc
from .common import CONFIG_FILE, MODEL_FILE, VECNORM_FILE, TrainReport, algo_class, make_env
from .config import AgentConfig, Dagger

DAGGER_CSV = "dagger.csv"
DAGGER_DATA = "dagger_data.npz"  # every labelled state: raw observations, teacher actions, iteration


@dataclass(frozen=True)
class EpisodeTask:
    """One episode for a worker: play ``seed``; follow the teacher with probability ``beta``
    (always without a learner); label with the teacher unless ``label`` is false (validation)."""

    env_id: str
    env_kwargs: tuple  # sorted (key, value) pairs: hashable, to reuse the worker's env
    teacher: str
    seed: int
    beta: float
    coin_seed: tuple
    learner: Optional[bytes]  # pickled (policy, observation statistics or None)
    label: bool = True


# --- worker side -----------------------------------------------------------------------------

_WORKER: dict = {}  # per process: the env and teacher for one (env_id, env_kwargs, teacher), the learner


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def _env_and_teacher(task: EpisodeTask):
    key = (task.env_id, task.env_kwargs, task.teacher)
    if _WORKER.get("key") != key:
        env = make_env(task.env_id, **dict(task.env_kwargs))
        _WORKER.update(key=key, env=env, teacher=make_baseline(task.teacher, env))
    return _WORKER["env"], _WORKER["teacher"]


def _learner(blob: Optional[bytes]):
    if blob is None:
        return None
    if _WORKER.get("learner_blob") != blob:
        _WORKER.update(learner_blob=blob, learner=pickle.loads(blob))
    return _WORKER["learner"]


def play_episode(task: EpisodeTask) -> dict:
    """Play one episode (see :class:`EpisodeTask`): raw observations, the teacher's labels, how
    often the learner agreed and acted, and the episode's cluster metrics."""
    env, teacher = _env_and_teacher(task)
    learner = _learner(task.learner)
    rng = np.random.default_rng(list(task.coin_seed))
    obs, _ = env.reset(seed=task.seed)
    observations, labels = [], []
    agree = learner_acted = 0
    done = False
    info: dict = {}
    while not done:
        want = int(teacher.predict(obs)[0]) if task.label else None  # before the step: the paused decision
        if learner is None:
            action = want
        else:
            policy, stats = learner
            mine = int(policy.predict(stats.normalize_obs(obs) if stats is not None else obs, deterministic=True)[0])
            if want is not None:
                agree += mine == want
            follow_teacher = task.label and task.beta > 0 and rng.random() < task.beta
            action = want if follow_teacher else mine
            learner_acted += not follow_teacher
        if task.label:
            observations.append(obs)
            labels.append(want)
        obs, _, terminated, truncated, info = env.step(action)
        done = terminated or truncated
    cluster = info["metrics"]["cluster"]
    n = len(labels)
    return {
        "seed": task.seed,
        "decisions": n,
        "agree": agree,
        "learner_acted": learner_acted,
        "obs": np.asarray(observations, dtype=np.float32).reshape(n, -1) if task.label else None,
        "labels": np.asarray(labels, dtype=np.int64),
        "ttft_mean_ms": cluster["ttft_mean_ms"],
        "ttft_p99_ms": cluster["ttft_p99_ms"],
        "e2e_mean_ms": cluster["e2e_mean_ms"],
    }


# --- driver --------------------------------------------------------------------------------------


class _Runner:
    """Episodes in this process (``n_envs`` 1) or in a pool of spawned workers, in task order."""

    def __init__(self, n_workers: int) -> None:
        self.pool = None
        if n_workers > 1:
            ctx = multiprocessing.get_context("spawn")  # fork after torch has run is not safe
            self.pool = ctx.Pool(n_workers, initializer=_init_worker)

    def map(self, tasks: list[EpisodeTask]):
        if self.pool is None:
            return map(play_episode, tasks)
        return self.pool.imap(play_episode, tasks)

    def close(self, abort: bool = False) -> None:
        if self.pool is None:  # in-process: drop the env, teacher and learner kept between episodes
            env = _WORKER.pop("env", None)
            if env is not None:
                env.close()
            _WORKER.clear()
        if self.pool is not None:
            if abort:
                self.pool.terminate()
            else:
                self.pool.close()
            self.pool.join()
            self.pool = None


def betas(d: Dagger) -> list[float]:
    """The probability of following the teacher while collecting, per iteration."""
    return [1.0] + [d.beta * d.beta_decay ** (i - 1) for i in range(1, d.iterations)]


def check_seeds(d: Dagger, seed: int) -> None:
    last = seed + d.iterations * d.episodes - 1
    if d.validation_episodes and last >= d.validation_seed and seed < d.validation_seed + d.validation_episodes:
        raise ConfigError(
            f"dagger: training seeds {seed}..{last} overlap the validation seeds "
            f"{d.validation_seed}..{d.validation_seed + d.validation_episodes - 1}; "
            f"change --seed or dagger: validation_seed"
        )


def train_dagger(
    config: AgentConfig,
    *,
    env_id: str,
    env_kwargs: dict,
    seed: int,
    out: Path,
    n_envs: int,
    max_labels: int,
    meta: dict,
    log: Callable[[str], None],
):
    """Run DAgger into ``out`` (already checked and created); returns a TrainReport."""
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize  # lazy: imports torch

    d = config.dagger
    check_seeds(d, seed)
    probe = make_env(env_id, **env_kwargs)
    try:
        make_baseline(d.teacher, probe)  # an unknown teacher fails here, with the valid names
    except ConfigError as exc:
        raise ConfigError(f"dagger: teacher: {exc}") from None
    finally:
        probe.close()

    venv = DummyVecEnv([lambda: make_env(env_id, **{**env_kwargs, "render_mode": None})])
    if config.normalize_observations:
        venv = VecNormalize(venv, norm_obs=True, norm_reward=False)
    try:
        model = algo_class("dagger")(
            config.policy, venv, seed=seed, device="cpu", verbose=0, policy_kwargs=dict(config.policy_kwargs) or None
        )
    except (TypeError, ValueError) as exc:
        venv.close()
        raise ConfigError(f"agent config: dagger: policy or policy_kwargs: {exc}") from None
    stats = venv if isinstance(venv, VecNormalize) else None
    ckpt_dir = out / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)

    def save(model_path: Path, stats_path: Path) -> None:
        model.save(str(model_path))
        if stats is not None:
            stats.save(str(stats_path))

    def learner_blob() -> bytes:
        # The statistics travel without their venv (VecNormalize pickles that way).
        return pickle.dumps((model.policy, stats), protocol=pickle.HIGHEST_PROTOCOL)

    kw = tuple(sorted(env_kwargs.items()))
    schedule = betas(d)
    obs_parts: list[np.ndarray] = []
    label_parts: list[np.ndarray] = []
    history: list[dict] = []
    labels_total = 0
    interrupted = False
    started = time.perf_counter()
    runner = _Runner(n_envs)
    log(
        f"dagger: teacher {d.teacher}, {d.iterations} iterations x {d.episodes} episodes, "
        f"{n_envs} worker{'s' if n_envs > 1 else ''}"
    )
    try:
        for it in range(d.iterations):
            if labels_total >= max_labels:
                log(f"dagger: {labels_total} labels reach --timesteps {max_labels}: stopping")
                break
            t0 = time.perf_counter()
            beta = schedule[it]
            blob = None if it == 0 else learner_blob()
            tasks = [
                EpisodeTask(env_id, kw, d.teacher, seed + it * d.episodes + k, beta, (seed, it, k), blob)
                for k in range(d.episodes)
            ]
            row = {"iteration": it, "beta": round(beta, 6)}
            agree = acted = n_new = 0
            ttft_p99, ttft_mean = [], []
            for k, ep in enumerate(runner.map(tasks)):
                obs_parts.append(ep["obs"])
                label_parts.append(ep["labels"])
                n_new += ep["decisions"]
                agree += ep["agree"]
                acted += ep["learner_acted"]
                ttft_p99.append(ep["ttft_p99_ms"])
                ttft_mean.append(ep["ttft_mean_ms"])
                share = f", learner agreed {ep['agree'] / max(ep['decisions'], 1):.1%}" if it else ""
                log(
                    f"dagger: iteration {it} episode {k + 1}/{d.episodes} (seed {ep['seed']}): "
                    f"{ep['decisions']} labels, TTFT p99 {ep['ttft_p99_ms']:.1f} ms{share} "
                    f"[{time.perf_counter() - started:.0f} s]"
                )
            labels_total += n_new
            new_obs = np.concatenate(obs_parts[-d.episodes :])
            if stats is not None:
                stats.obs_rms.update(new_obs)
            all_obs = np.concatenate(obs_parts)
            all_labels = np.concatenate(label_parts)
            x = stats.normalize_obs(all_obs) if stats is not None else all_obs
            accuracy = bc.fit(
                model.policy,
                x.astype(np.float32),
                all_labels,
                epochs=d.epochs,
                learning_rate=d.learning_rate,
                seed=seed + it,
                batch_size=d.batch_size,
            )
            model.num_timesteps = labels_total
            name = f"rl_model_{labels_total}_steps"
            save(ckpt_dir / f"{name}.zip", ckpt_dir / f"rl_model_vecnormalize_{labels_total}_steps.pkl")
            row.update(
                labels=labels_total,
                new_labels=n_new,
                train_accuracy=round(accuracy, 4),
                learner_agreement=round(agree / n_new, 4) if it else None,
                learner_share=round(acted / n_new, 4) if it else 0.0,
                collect_ttft_p99_ms=round(float(np.mean(ttft_p99)), 3),
                collect_ttft_mean_ms=round(float(np.mean(ttft_mean)), 3),
                checkpoint=f"checkpoints/{name}.zip",
            )
            if d.validation_episodes:
                vblob = learner_blob()
                vtasks = [
                    EpisodeTask(
                        env_id, kw, d.teacher, d.validation_seed + k, 0.0, (seed, it, 1_000_000 + k), vblob, label=False
                    )
                    for k in range(d.validation_episodes)
                ]
                eps = list(runner.map(vtasks))
                for col in ("ttft_p99_ms", "ttft_mean_ms", "e2e_mean_ms"):
                    row[f"validation_{col}"] = round(float(np.mean([e[col] for e in eps])), 3)
            row["seconds"] = round(time.perf_counter() - t0, 1)
            history.append(row)
            val = (
                f", validation TTFT p99 {row['validation_ttft_p99_ms']:.1f} mean "
                f"{row['validation_ttft_mean_ms']:.1f} ms"
                if d.validation_episodes
                else ""
            )
            log(
                f"dagger: iteration {it} done: {labels_total} labels, training accuracy {accuracy:.1%}{val} "
                f"({row['seconds']:.0f} s)"
            )
    except KeyboardInterrupt:
        interrupted = True
        log(f"interrupted after {len(history)} iteration(s): saving the model")
        runner.close(abort=True)
    else:
        runner.close()
    seconds = time.perf_counter() - started

    selected = None
    if history:
        if d.validation_episodes:
            selected = min(
                history, key=lambda r: (r["validation_ttft_p99_ms"], r["validation_ttft_mean_ms"], r["iteration"])
            )
        else:
            selected = history[-1]
        src = out / selected["checkpoint"]
        shutil.copyfile(src, out / MODEL_FILE)
        if stats is not None:
            shutil.copyfile(ckpt_dir / f"rl_model_vecnormalize_{selected['labels']}_steps.pkl", out / VECNORM_FILE)
        log(
            f"dagger: model.zip is iteration {selected['iteration']}"
            + (" (lowest validation TTFT p99)" if d.validation_episodes else " (the last)")
        )
    else:  # interrupted before the first training: the untrained policy, as the other algos save
        save(out / MODEL_FILE, out / VECNORM_FILE)
    venv.close()
    (out / DAGGER_CSV).write_text(_csv(history), "utf-8")
    n_obs = observation_size(meta["num_instances"], meta.get("cache_observation", False))
    np.savez_compressed(
        out / DAGGER_DATA,
        observations=np.concatenate(obs_parts) if obs_parts else np.zeros((0, n_obs), np.float32),
        actions=np.concatenate(label_parts) if label_parts else np.zeros(0, np.int64),
        iteration=np.concatenate([np.full(len(a), i // d.episodes, np.int16) for i, a in enumerate(label_parts)])
        if label_parts
        else np.zeros(0, np.int16),
    )
    report = TrainReport(out, labels_total, seconds, interrupted, history[-1]["train_accuracy"] if history else None)
    meta.update(
        steps_done=labels_total,
        wall_seconds=round(seconds, 3),
        steps_per_second=round(report.steps_per_second, 1),
        interrupted=interrupted,
        selected_iteration=selected["iteration"] if selected else None,
        dagger_history=history,
    )
    (out / CONFIG_FILE).write_text(yaml.safe_dump(meta, sort_keys=False), "utf-8")
    return report


def _csv(history: list[dict]) -> str:
    buf = io.StringIO()
    cols: list[str] = []
    for row in history:
        cols += [c for c in row if c not in cols]
    w = csv.DictWriter(buf, fieldnames=cols or ["iteration"], lineterminator="\n")
    w.writeheader()
    for row in history:
        w.writerow(row)
    return buf.getvalue()
