"""Forks of a paused simulation: exact, independent, picklable.

Every test plays a decision sequence fixed in advance (seeded), forks part-way
and finishes the original and the fork with the same answers: the results must
be identical, and equal to a run that never forked (forking changes nothing).
"""

from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pytest
from testkit.sim import config, workload

import blis_gym  # noqa: F401 - registers the ids
from blis_gym.cluster.simulator import ClusterSimulator
from blis_gym.envs import load_scenario, scenario_names
from blis_gym.envs.scenario import env_for
from blis_gym.policies import ADMISSION
from blis_gym.report.summary import result_metrics


def answers(n: int, seed: int = 0) -> list[int]:
    return np.random.default_rng(seed).integers(0, 1 << 30, n).tolist()


def finish(sim: ClusterSimulator, plan: list[int], start: int) -> dict:
    """Answer the remaining routing decisions of ``sim`` with ``plan[start:]`` (mod N); its metrics."""
    k = start
    d = sim.pending_decision
    while True:
        if d is None:
            d = sim.advance()
            if d is None:
                return result_metrics(sim.result())
        sim.route(d, plan[k] % sim.config.num_instances)
        k += 1
        d = None


def paused_sim(cfg, requests, plan: list[int], decisions: int) -> ClusterSimulator:
    """A simulator paused at routing decision number ``decisions`` (answered from ``plan``)."""
    sim = ClusterSimulator(cfg, requests, admission=ADMISSION.make("always-admit"), routing=None)
    for k in range(decisions):
        d = sim.advance()
        assert d is not None
        sim.route(d, plan[k] % cfg.num_instances)
    assert sim.advance() is not None  # now paused at decision number `decisions`
    return sim


CASES = {
    "plain": (dict(num_instances=3), dict(rate=60.0, n=150)),
    "preemption": (
        dict(total_kv_blocks=300, num_instances=2, max_running=64),
        dict(rate=40.0, n=160, prompt_mean=600, prompt_stdev=200, output_mean=300, output_stdev=100),
    ),
    "stale-snapshots": (
        dict(num_instances=4, snapshot_refresh_interval=50_000, routing_latency=300, admission_latency=100),
        dict(rate=200.0, n=200, prefix_tokens=64),
    ),
    "chunked-prefill": (
        dict(num_instances=2, long_prefill_threshold=128, max_scheduled_tokens=512),
        dict(rate=30.0, n=120, prompt_mean=900, prompt_stdev=300),
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_fork_continues_identically_and_leaves_the_original_alone(case):
    cfg_kw, wl_kw = CASES[case]
    cfg = config(**cfg_kw)
    plan = answers(1000, seed=len(case))
    unforked = finish(paused_sim(cfg, workload(**wl_kw), plan, 60), plan, 60)
    sim = paused_sim(cfg, workload(**wl_kw), plan, 60)
    fork = sim.fork()
    assert fork.pending_decision is not sim.pending_decision
    assert fork.pending_decision.request is not sim.pending_decision.request
    # The fork runs first and to the end; the original must not notice.
    assert finish(fork, plan, 60) == unforked
    assert finish(sim, plan, 60) == unforked
    if case == "preemption":
        assert unforked["cluster"]["preemption_count"] > 0


def test_a_fork_of_a_fork_and_diverging_forks():
    cfg = config(num_instances=3, total_kv_blocks=400)
    plan = answers(1000, seed=7)
    sim = paused_sim(cfg, workload(rate=80.0, n=150, prompt_mean=400), plan, 40)
    first = sim.fork()
    second = first.fork()
    other = sim.fork()
    other_plan = [x + 1 for x in plan]  # every later answer differs
    diverged = finish(other, other_plan, 40)
    results = [finish(s, plan, 40) for s in (second, first, sim)]
    assert results[0] == results[1] == results[2]
    assert diverged != results[0]


def test_pickle_round_trip_continues_identically():
    cfg = config(num_instances=2, snapshot_refresh_interval=20_000)
    plan = answers(1000, seed=3)
    sim = paused_sim(cfg, workload(rate=50.0, n=120), plan, 50)
    copy = pickle.loads(pickle.dumps(sim))
    assert finish(copy, plan, 50) == finish(sim, plan, 50)


@pytest.mark.parametrize("scenario", scenario_names())
def test_env_fork_steps_identically(scenario):
    """Every shipped scenario, in the env that poses its decisions."""
    env_id = env_for(load_scenario(scenario, num_requests=20))
    env = gym.make(env_id, scenario=scenario, num_requests=200).unwrapped
    env.reset(seed=11)
    acts = np.random.default_rng(1).integers(0, env.action_space.n, 2000).tolist()  # any episode ends
    if env_id == "blis_gym/Autoscaling-v0":  # a few ticks: fork after the third
        acts = [1, 3, 2] + acts[3:]
    k = 3 if env_id == "blis_gym/Autoscaling-v0" else 80
    for a in acts[:k]:
        env.step(a)
    fork = env.fork()
    trajectories = []
    for e in (fork, env):
        out = []
        for a in acts[k:]:
            obs, reward, terminated, _, info = e.step(a)
            out.append((obs.tobytes(), reward))
            if terminated:
                out.append(info["metrics"])
                break
        trajectories.append(out)
    assert trajectories[0] == trajectories[1]
    assert isinstance(trajectories[0][-1], dict)  # the episode ended


def test_env_fork_is_independent():
    env = gym.make("blis_gym/Routing-v0", num_requests=150).unwrapped
    env.reset(seed=2)
    for _ in range(30):
        env.step(0)
    fork = env.fork()
    for _ in range(50):
        fork.step(1)
    assert env.sim.clock < fork.sim.clock  # the original did not move
    obs_then = env.step(0)[0]
    replay = gym.make("blis_gym/Routing-v0", num_requests=150).unwrapped
    replay.reset(seed=2)
    for _ in range(30):
        replay.step(0)
    assert np.array_equal(replay.step(0)[0], obs_then)


@pytest.mark.parametrize("env_id", ["blis_gym/Routing-v0", "blis_gym/Admission-v0", "blis_gym/AdmissionRouting-v0"])
def test_envs_pickle_mid_episode_and_continue_identically(env_id):
    """Envs (weighted scorers, prefix index, reward trackers and all) travel to other processes."""
    env = gym.make(env_id, scenario="prefix-heavy", num_requests=150, reward="ttft").unwrapped
    env.reset(seed=4)
    acts = np.random.default_rng(2).integers(0, env.action_space.n, 400).tolist()
    for a in acts[:40]:
        env.step(a)
    copy = pickle.loads(pickle.dumps(env))
    runs = []
    for e in (copy, env):
        total = 0.0
        for a in acts[40:]:
            _, reward, terminated, _, info = e.step(a)
            total += reward
            if terminated:
                break
        runs.append((total, info["metrics"]))
    assert runs[0] == runs[1]
