"""``blis evaluate``: trained agents and baselines on the same episodes, side by side.

Every policy plays episodes with workload seeds ``seed, seed + 1, ...`` (by
default from ``HELD_OUT_SEED``, which training never draws). Per episode the
figures are the cluster block ``blis run`` prints for that seed and policy, and
the fitness score under the scenario's ``fitness_weights``. The summary gives
the mean over episodes, with a 95% confidence interval for fitness.

With ``use_ray`` (``blis evaluate --ray``) the (policy, episodes) pairs run as Ray tasks,
each with its own env and predictor; the results are put back in the serial order, so they
are identical to the serial evaluation's.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from .. import ENV_IDS
from ..baselines import baseline_names, make_baseline
from ..config.routers import model_location
from ..distributed import cluster_cpus, ray_session
from ..envs.scenario import scenario_names
from ..errors import BlisError, ConfigError
from ..fileio import write_atomic
from ..plan.options import resolve_paths
from ..report.fitness import compute_fitness, raw_metrics
from .charts import plot_results
from .common import make_env
from .model import TrainedAgent

BASELINE_PREFIX = "baseline:"
# (column, cluster metric) averaged over episodes, in table order.
FIGURES: tuple[tuple[str, str], ...] = (
    ("ttft_mean_ms", "ttft_mean_ms"),
    ("ttft_p99_ms", "ttft_p99_ms"),
    ("e2e_mean_ms", "e2e_mean_ms"),
    ("e2e_p99_ms", "e2e_p99_ms"),
    ("throughput_rps", "responses_per_sec"),
)
# Figures some envs add to their metrics (Autoscaling-v0; any scenario with SLO targets), reported
# where every episode has them.
EXTRA_FIGURES: tuple[str, ...] = ("gpu_seconds", "slo_attainment", "goodput_rps")
# Two-sided 95% Student t quantiles, by degrees of freedom (1..30); the normal 1.96 beyond.
_T95 = (
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)


def ci95(values: Sequence[float]) -> float:
    """Half-width of the 95% confidence interval of the mean (0 for fewer than two values)."""
    n = len(values)
    if n < 2:
        return 0.0
    sd = float(np.std(values, ddof=1))
    t = _T95[n - 2] if n - 1 <= len(_T95) else 1.96
    return t * sd / math.sqrt(n)


@dataclass
class PolicyResult:
    """One policy's episodes: per-episode rows and the pooled TTFTs (ms) for CDFs."""

    name: str
    episodes: list[dict] = field(default_factory=list)
    ttfts_ms: list[float] = field(default_factory=list)

    def summary(self) -> dict:
        fit = [e["fitness"] for e in self.episodes]
        out: dict[str, Any] = {
            "policy": self.name,
            "episodes": len(self.episodes),
            "fitness_mean": float(np.mean(fit)),
            "fitness_ci95": ci95(fit),
        }
        for col, _ in FIGURES:
            values = [e[col] for e in self.episodes]
            out[col] = float(np.mean(values))
            out[f"{col}_ci95"] = ci95(values)
        out["rejected"] = float(np.mean([e["rejected"] for e in self.episodes]))
        for col in EXTRA_FIGURES:
            if self.episodes and all(col in e for e in self.episodes):
                values = [e[col] for e in self.episodes]
                out[col] = float(np.mean(values))
                out[f"{col}_ci95"] = ci95(values)
        return out


def resolve_agents(env_id: str, agents: Sequence[str], baselines: str, env) -> list[tuple[str, Any]]:
    """(name, predictor) for each ``--agent`` (a model path or ``baseline:NAME``) and ``--baselines``."""
    valid = baseline_names(env)
    out: list[tuple[str, Any]] = []
    u = env.unwrapped
    for spec in agents:
        if spec.startswith(BASELINE_PREFIX):
            name = spec[len(BASELINE_PREFIX) :]
            out.append((spec, make_baseline(name, env)))
        else:
            agent = TrainedAgent.load(model_location(spec))
            agent.check(env_id, u.observation_space.shape[0], int(u.action_space.n), f"--agent {spec}")
            out.append((spec, agent))
    if baselines == "all":
        names = valid
    elif baselines in ("", "none"):
        names = []
    else:
        names = [n.strip() for n in baselines.split(",") if n.strip()]
        bad = [n for n in names if n not in valid]
        if bad:
            raise ConfigError(
                f"--baselines: unknown baseline(s) {', '.join(bad)} for {env_id} "
                f"(valid: all, none, or any of {', '.join(valid)})"
            )
    taken = {name for name, _ in out}
    out += [(BASELINE_PREFIX + n, make_baseline(n, env)) for n in names if BASELINE_PREFIX + n not in taken]
    if not out:
        raise ConfigError("nothing to evaluate: give --agent and/or --baselines")
    return out


def play(env, predictor, seed: int) -> tuple[dict, list[float]]:
    """One deterministic episode with workload seed ``seed``: (row of figures, TTFTs in ms)."""
    obs, _ = env.reset(seed=seed)
    done = False
    info: dict = {}
    while not done:
        action, _ = predictor.predict(obs, deterministic=True)
        obs, _, terminated, truncated, info = env.step(action)
        done = terminated or truncated
    u = env.unwrapped
    cluster = info["metrics"]["cluster"]
    row = {
        "seed": seed,
        "fitness": compute_fitness(raw_metrics(u.result.aggregate), u.weights).score,
        "rejected": info["metrics"]["rejected_requests"],
        "completed": cluster["completed_requests"],
    }
    for col, key in FIGURES:
        row[col] = cluster[key]
    for col in EXTRA_FIGURES:
        if col in info["metrics"]:
            row[col] = info["metrics"][col]
    return row, [t / 1000.0 for t in u.result.aggregate.ttfts.values()]


def evaluate(
    env_id: str,
    scenario: str,
    agents: Sequence[str],
    baselines: str = "all",
    episodes: int = 5,
    seed: int = 0,
    overrides: Optional[dict] = None,
    progress: Optional[Callable[[str, int], None]] = None,
    *,
    use_ray: bool = False,
    address: str = "",
    workers: Optional[int] = None,
) -> list[PolicyResult]:
    """Play every policy on episodes ``seed .. seed + episodes - 1``; one result per policy.

    ``use_ray``: play them as Ray tasks on an embedded Ray with ``workers`` CPUs (default: every
    core), or on the cluster at ``address``; the results are the same.
    """
    if env_id not in ENV_IDS:
        raise ConfigError(f"--env: unknown environment {env_id!r} (valid: {', '.join(ENV_IDS)})")
    if episodes < 1:
        raise ConfigError(f"--episodes must be >= 1, got {episodes}")
    if seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {seed}")
    if not use_ray and (address or workers is not None):
        raise ConfigError(f"--{'address' if address else 'workers'} is used only with --ray")
    env = make_env(env_id, scenario=scenario, **(overrides or {}))
    if use_ray:
        # Every policy is resolved here first: bad names and incompatible models fail before Ray starts.
        names = [name for name, _ in resolve_agents(env_id, agents, baselines, env)]
        env.close()
        return _evaluate_ray(env_id, scenario, names, episodes, seed, overrides or {}, progress, address, workers)
    results = []
    for name, predictor in resolve_agents(env_id, agents, baselines, env):
        res = PolicyResult(name)
        for k in range(episodes):
            row, ttfts = play(env, predictor, seed + k)
            res.episodes.append(row)
            res.ttfts_ms.extend(ttfts)
            if progress is not None:
                progress(name, k + 1)
        results.append(res)
    env.close()
    return results


def _predictor(name: str, env) -> Any:
    """The predictor ``resolve_agents`` gives for ``name``: a baseline, or the model at path ``name``."""
    if name.startswith(BASELINE_PREFIX):
        return make_baseline(name[len(BASELINE_PREFIX) :], env)
    return TrainedAgent.load(name)


def play_batch(
    env_id: str, scenario: str, overrides: dict, locator: str, seeds: Sequence[int]
) -> list[tuple[dict, list[float]]]:
    """One Ray task of ``blis evaluate --ray``: a fresh env and predictor (``locator``: a baseline
    name or a model's absolute path) play the episodes ``seeds`` in order."""
    env = make_env(env_id, scenario=scenario, **overrides)
    try:
        predictor = _predictor(locator, env)
        return [play(env, predictor, s) for s in seeds]
    finally:
        env.close()


def _portable(scenario: str, overrides: dict, names: Sequence[str]) -> tuple[str, dict, list[str]]:
    """The scenario, overrides and policies with local files as absolute paths: Ray tasks may run
    in another folder or on another node (which must hold the same files)."""

    def absolute(value: str) -> str:
        return str(Path(value).resolve())

    if scenario not in scenario_names() and Path(scenario).exists():
        scenario = absolute(scenario)
    overrides = resolve_paths(overrides, Path.cwd())
    locators = [n if n.startswith(BASELINE_PREFIX) else absolute(model_location(n)) for n in names]
    return scenario, overrides, locators


def _evaluate_ray(
    env_id: str,
    scenario: str,
    names: Sequence[str],
    episodes: int,
    seed: int,
    overrides: dict,
    progress: Optional[Callable[[str, int], None]],
    address: str,
    workers: Optional[int],
) -> list[PolicyResult]:
    """``evaluate`` on Ray: tasks of consecutive episodes of one policy, reassembled in order."""
    scenario, overrides, locators = _portable(scenario, overrides, names)
    with ray_session(address, workers, what="blis evaluate --ray") as ray:
        # About two tasks per CPU: enough to balance uneven episodes, few enough that building
        # each task's env and loading its model stays a small share of the work.
        per_task = max(1, math.ceil(len(names) * episodes / (2 * cluster_cpus(ray))))
        task = ray.remote(num_cpus=1)(play_batch)
        pending = {}
        for i, locator in enumerate(locators):
            for start in range(0, episodes, per_task):
                seeds = [seed + k for k in range(start, min(start + per_task, episodes))]
                pending[task.remote(env_id, scenario, overrides, locator, seeds)] = (i, start)
        done: dict[tuple[int, int], list] = {}
        finished = [0] * len(names)
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                i, start = pending.pop(ready[0])
                try:
                    done[(i, start)] = ray.get(ready[0])
                except ray.exceptions.RayTaskError as exc:
                    cause = getattr(exc, "cause", None)
                    if isinstance(cause, BlisError):  # e.g. a node without the model file
                        raise ConfigError(f"--ray: {names[i]}: {cause}") from None
                    raise
                finished[i] += len(done[(i, start)])
                if progress is not None:
                    progress(names[i], finished[i])
        finally:
            for ref in pending:  # after an error or Ctrl-C: a shared cluster should not keep playing
                ray.cancel(ref)
    results = []
    for i, name in enumerate(names):
        res = PolicyResult(name)
        for start in range(0, episodes, per_task):
            for row, ttfts in done[(i, start)]:
                res.episodes.append(row)
                res.ttfts_ms.extend(ttfts)
        results.append(res)
    return results


def table(results: Sequence[PolicyResult]) -> str:
    """The summary as an aligned text table (means over episodes ± 95% confidence intervals)."""
    head = ["policy", "fitness", "TTFT mean", "TTFT p99", "E2E mean", "E2E p99", "req/s", "rejected"]
    summaries = [r.summary() for r in results]
    extra = [c for c in EXTRA_FIGURES if summaries and all(c in s for s in summaries)]
    head += [c.replace("_", " ") for c in extra]
    rows = []
    for s in summaries:
        ms = [
            f"{s[c]:.1f} ± {s[c + '_ci95']:.1f}" for c in ("ttft_mean_ms", "ttft_p99_ms", "e2e_mean_ms", "e2e_p99_ms")
        ]
        rows.append(
            [
                s["policy"],
                f"{s['fitness_mean']:.4f} ± {s['fitness_ci95']:.4f}",
                *ms,
                f"{s['throughput_rps']:.2f}",
                f"{s['rejected']:.1f}",
                *(f"{s[c]:.3f} ± {s[c + '_ci95']:.3f}" for c in extra),
            ]
        )
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]
    lines = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
        for row in [head, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n(times in ms; means over episodes ± 95% confidence intervals, Student t)\n"


def results_document(results: Sequence[PolicyResult], meta: dict) -> dict:
    return {**meta, "summary": [r.summary() for r in results], "episodes": {r.name: r.episodes for r in results}}


def results_csv(results: Sequence[PolicyResult]) -> str:
    """One row per policy and episode."""
    buf = io.StringIO()
    cols = ["policy", "seed", "fitness", *(c for c, _ in FIGURES), "rejected", "completed"]
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in results:
        for e in r.episodes:
            w.writerow({"policy": r.name, **{c: e[c] for c in cols[1:]}})
    return buf.getvalue()


def write_results(results: Sequence[PolicyResult], out: Path, meta: dict) -> list[Path]:
    """results.json, results.csv and (with matplotlib) results.png in ``out``; returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "results.json", out / "results.csv"]
    write_atomic(str(paths[0]), json.dumps(results_document(results, meta), indent=2) + "\n", "--out")
    write_atomic(str(paths[1]), results_csv(results), "--out")
    chart = out / "results.png"
    if plot_results(results, ci95, chart):
        paths.append(chart)
    return paths
