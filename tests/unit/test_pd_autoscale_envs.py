"""Disaggregation-v0 and Autoscaling-v0: spaces, checkers, baselines equal to blis run, forks."""

from __future__ import annotations

import warnings

import gymnasium as gym
import pytest

import blis_gym  # noqa: F401 - registers the ids
from blis_gym.baselines import baseline_names, cli_options_for, make_baseline
from blis_gym.errors import ConfigError
from blis_gym.plan import resolve, simulate
from blis_gym.report.summary import result_metrics

PD = "blis_gym/Disaggregation-v0"
SCALE = "blis_gym/Autoscaling-v0"
SMALL = {PD: dict(scenario="pd-mixed", num_requests=300), SCALE: dict(scenario="autoscale-day", num_requests=1500)}


def play(env, agent, seed: int) -> dict:
    obs, _ = env.reset(seed=seed)
    done = False
    info: dict = {}
    while not done:
        action, _ = agent.predict(obs)
        obs, _, done, _, info = env.step(action)
    return info


@pytest.mark.parametrize("env_id", [PD, SCALE])
def test_gymnasium_and_sb3_env_checkers_pass(env_id):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(gym.make(env_id, **SMALL[env_id]).unwrapped, skip_render_check=False)
        sb3_check_env(gym.make(env_id, **SMALL[env_id]).unwrapped)


def test_the_spaces_are_as_documented():
    pd = gym.make(PD, **SMALL[PD]).unwrapped
    assert pd.action_space == gym.spaces.Discrete(2 + 2)  # local, split (pool router), 2 prefill instances
    assert pd.observation_space.shape == (11 * 4 + 8,)
    obs, info = pd.reset(seed=1)
    assert obs[47 + info["decode"]] == 1.0 and info["decode"] in (2, 3)
    scale = gym.make(SCALE, **SMALL[SCALE]).unwrapped
    assert scale.action_space == gym.spaces.Discrete(2 * 4 + 1)  # up to 8 TP-2 instances on 2 nodes
    assert scale.observation_space.shape == (4 + 6,)
    obs, info = scale.reset(seed=1)
    assert info["kind"] == "scaling" and info["wanted"] == [2] and obs[0] == pytest.approx(2 / 8)


@pytest.mark.parametrize("name", ["never", "always", "prefix-threshold"])
def test_every_decider_baseline_equals_blis_run(name):
    env = gym.make(PD, **SMALL[PD])
    agent = make_baseline(name, env)
    info = play(env, agent, 5)
    run = cli_options_for(agent, env.unwrapped.scenario.run).with_seed(5)
    assert info["metrics"] == result_metrics(simulate(resolve(run)))


@pytest.mark.parametrize("name", ["saturation", "fixed"])
def test_every_scaling_baseline_equals_blis_run(name):
    env = gym.make(SCALE, **SMALL[SCALE])
    agent = make_baseline(name, env)
    info = play(env, agent, 5)
    run = cli_options_for(agent, env.unwrapped.scenario.run).with_seed(5)
    expected = result_metrics(simulate(resolve(run)))
    got = {k: v for k, v in info["metrics"].items() if k in expected}
    assert got == expected
    if name == "saturation":
        assert len(info["metrics"]["instances"]) > 2  # it did scale


def test_the_oracle_teacher_is_no_blis_run_policy():
    env = gym.make(SCALE, **SMALL[SCALE])
    assert "future-rate" in baseline_names(env)
    agent = make_baseline("future-rate", env)
    info = play(env, agent, 2)
    assert 0.0 <= info["metrics"]["slo_attainment"] <= 1.0 and info["metrics"]["gpu_seconds"] > 0
    with pytest.raises(ConfigError, match="future"):
        cli_options_for(agent, env.unwrapped.scenario.run)


def test_gpu_cost_is_paid_per_gpu_second():
    """With no time reward to speak of (huge time scale), the return is minus the cost of the
    GPU-seconds held."""
    env = gym.make(SCALE, **SMALL[SCALE], time_scale=1e12, gpu_cost=2.0)
    obs, _ = env.reset(seed=3)
    total, done = 0.0, False
    while not done:
        obs, r, done, _, info = env.step(2)
        total += r
    assert total == pytest.approx(-2.0 * info["metrics"]["gpu_seconds"], rel=1e-6, abs=1e-3)


def test_routing_envs_refuse_the_new_shapes():
    with pytest.raises(ValueError, match="Disaggregation-v0"):
        gym.make("blis_gym/Routing-v0", scenario="pd-mixed")
    with pytest.raises(ValueError, match="Autoscaling-v0"):
        gym.make("blis_gym/Routing-v0", scenario="autoscale-day")
    with pytest.raises(ValueError, match="no prefill/decode pools"):
        gym.make(PD, scenario="default")
    with pytest.raises(ValueError, match="no autoscaler"):
        gym.make(SCALE, scenario="default")


def test_an_agent_can_split_onto_a_chosen_prefill_instance():
    env = gym.make(PD, **SMALL[PD]).unwrapped
    env.reset(seed=4)
    done = False
    while not done:
        _, _, done, _, info = env.step(3)  # always the pool's second instance (instance_1)
    m = info["metrics"]["instances"]
    assert m["instance_0"]["completed_requests"] == 0 and m["instance_1"]["completed_requests"] == 300


def test_evaluate_plays_both_envs():
    from blis_gym.agents.evaluate import evaluate

    results = evaluate(
        SCALE, "autoscale-day", [], "saturation,fixed", episodes=1, seed=2**30, overrides={"num_requests": 800}
    )
    rows = {r.name: r.summary() for r in results}
    assert set(rows) == {"baseline:saturation", "baseline:fixed"}
    assert all("gpu_seconds" in s and "slo_attainment" in s for s in rows.values())
    results = evaluate(PD, "pd-mixed", [], "never,always", episodes=1, seed=2**30, overrides={"num_requests": 200})
    assert [r.episodes[0]["completed"] for r in results] == [200, 200]
