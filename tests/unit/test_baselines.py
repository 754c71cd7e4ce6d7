"""Baseline agents: each built-in policy, played through the env, equals ``blis run`` with it."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import blis_gym  # noqa: F401
from blis_gym.baselines import baseline_names, cli_options_for, make_baseline
from blis_gym.errors import ConfigError
from blis_gym.plan import resolve, simulate
from blis_gym.policies import ADMISSION, ROUTING
from blis_gym.report.summary import result_metrics

SEED = 17


def episode(env, agent, seed=SEED):
    obs, _ = env.reset(seed=seed)
    done = False
    total = 0.0
    while not done:
        action, _ = agent.predict(obs, deterministic=True)
        obs, reward, terminated, truncated, info = env.step(action)
        total += reward
        done = terminated or truncated
    return total, info


def cli_metrics(agent, env, seed=SEED):
    """What ``blis run`` prints for the same scenario, seed and policies."""
    run = cli_options_for(agent, env.unwrapped.scenario.run).with_seed(seed)
    return result_metrics(simulate(resolve(run)))


@pytest.mark.parametrize("name", ROUTING.names())
@pytest.mark.parametrize("scenario", ["default", "stale-signals"])
def test_routing_baseline_equals_blis_run(name, scenario):
    env = gym.make(
        "blis_gym/Routing-v0",
        scenario=scenario,
        num_requests=250,
        admission_policy="token-bucket",
        token_bucket_capacity=60000.0,
        token_bucket_refill_rate=200000.0,
    )
    agent = make_baseline(name, env)
    _, info = episode(env, agent)
    assert info["metrics"] == cli_metrics(agent, env)


def test_routing_baseline_equals_blis_run_on_prefix_heavy():
    env = gym.make("blis_gym/Routing-v0", scenario="prefix-heavy", num_requests=300)
    for name in ("weighted", "prefix-affinity"):
        agent = make_baseline(name, env)
        _, info = episode(env, agent)
        assert info["metrics"] == cli_metrics(agent, env)


@pytest.mark.parametrize("name", ROUTING.names())
@pytest.mark.parametrize("scenario", ["multi-tenant-slo", "multiturn-chat"])
def test_routing_baseline_equals_blis_run_on_spec_scenarios(name, scenario):
    env = gym.make("blis_gym/Routing-v0", scenario=scenario, num_requests=200)
    agent = make_baseline(name, env)
    _, info = episode(env, agent)
    assert info["metrics"] == cli_metrics(agent, env)
    assert len(info["metrics"]["per_slo"]) >= 2


def test_admission_baseline_equals_blis_run_on_a_spec_scenario():
    env = gym.make("blis_gym/Admission-v0", scenario="multi-tenant-slo", num_requests=200)
    agent = make_baseline("token-bucket", env, token_bucket_capacity=30000.0, token_bucket_refill_rate=60000.0)
    _, info = episode(env, agent)
    expected = cli_metrics(agent, env)
    assert info["metrics"] == expected and expected["rejected_requests"] > 0


@pytest.mark.parametrize("scenario", ["default", "stale-signals"])
def test_lookahead_oracle_baseline_equals_blis_run(scenario):
    """The oracle forks the env's paused simulation as blis run's forks its own."""
    env = gym.make("blis_gym/Routing-v0", scenario=scenario, num_requests=100)
    agent = make_baseline("lookahead", env)
    _, info = episode(env, agent)
    assert info["metrics"] == cli_metrics(agent, env)
    assert "lookahead" in baseline_names(env)


def test_weighted_baseline_with_a_scorer_profile_equals_blis_run():
    env = gym.make("blis_gym/Routing-v0", num_requests=250)
    agent = make_baseline("weighted", env, scorers="kv-utilization:1,load-balance:2")
    _, info = episode(env, agent)
    assert info["metrics"] == cli_metrics(agent, env)


@pytest.mark.parametrize("delay", [0, 50_000])
def test_profile_baselines_equal_blis_run_with_their_profiles(delay):
    """weighted-upstream asks the instances' caches (as stale as the delay); weighted-tuned is the
    scenario's shipped bundle. Played through the env, each equals blis run with its profile."""
    env = gym.make("blis_gym/Routing-v0", scenario="prefix-heavy", num_requests=300, cache_signal_delay=delay)
    assert {"weighted-upstream", "weighted-tuned"} <= set(baseline_names(env))
    for name in ("weighted-upstream", "weighted-tuned"):
        agent = make_baseline(name, env)
        _, info = episode(env, agent)
        run = cli_options_for(agent, env.unwrapped.scenario.run)
        assert run.routing_policy == "weighted" and run.cache_signal_delay == delay
        assert info["metrics"] == cli_metrics(agent, env), name
    upstream = cli_options_for(make_baseline("weighted-upstream", env), env.unwrapped.scenario.run)
    assert upstream.routing_scorers == "precise-prefix-cache:2.0,queue-depth:1.0,kv-utilization:1.0"


def test_weighted_tuned_is_offered_only_where_a_tuned_profile_is_shipped():
    env = gym.make("blis_gym/Routing-v0", num_requests=50)  # the default scenario: none
    assert "weighted-tuned" not in baseline_names(env) and "weighted-upstream" in baseline_names(env)
    with pytest.raises(ConfigError, match="unknown baseline 'weighted-tuned'"):
        make_baseline("weighted-tuned", env)
    with pytest.raises(ConfigError, match="a scorer profile of its own"):
        make_baseline("weighted-upstream", env, scorers="queue-depth:1")


@pytest.mark.parametrize("name", ADMISSION.names())
def test_admission_baseline_equals_blis_run(name):
    env = gym.make("blis_gym/Admission-v0", scenario="overload", num_requests=300)
    agent = make_baseline(name, env, token_bucket_capacity=20000.0, token_bucket_refill_rate=300000.0)
    _, info = episode(env, agent)
    expected = cli_metrics(agent, env)
    assert info["metrics"] == expected
    if name == "token-bucket":
        assert 0 < expected["rejected_requests"] < 300  # the bucket really bit


@pytest.mark.parametrize(
    "env_id,name",
    [("blis_gym/Admission-v0", "token-bucket"), ("blis_gym/AdmissionRouting-v0", "token-bucket+weighted")],
)
def test_admission_with_stale_signals_equals_blis_run(env_id, name):
    """An answered admission routes at once with the admission's (stale) view, as blis run does."""
    env = gym.make(env_id, scenario="stale-signals", reward="fitness", num_requests=250)
    agent = make_baseline(name, env, token_bucket_capacity=30000.0, token_bucket_refill_rate=150000.0)
    _, info = episode(env, agent)
    expected = cli_metrics(agent, env)
    assert info["metrics"] == expected
    assert 0 < expected["rejected_requests"] < 250


@pytest.mark.parametrize(
    "pair",
    ["always-admit+least-loaded", "token-bucket+weighted", "reject-all+round-robin", "token-bucket+always-busiest"],
)
def test_joint_baseline_equals_blis_run(pair):
    env = gym.make("blis_gym/AdmissionRouting-v0", num_requests=250)
    agent = make_baseline(pair, env, token_bucket_capacity=30000.0, token_bucket_refill_rate=150000.0)
    _, info = episode(env, agent)
    assert info["metrics"] == cli_metrics(agent, env)


def test_evaluate_policy_plays_baselines_like_a_model():
    from stable_baselines3.common.evaluation import evaluate_policy

    env = gym.make("blis_gym/Routing-v0", num_requests=80, reward="time-in-system")
    agent = make_baseline("least-loaded", env)
    rewards, lengths = evaluate_policy(agent, env, n_eval_episodes=3, return_episode_rewards=True, warn=False)
    assert len(rewards) == 3 and lengths == [80, 80, 80]
    # The first evaluated episode is the env's seeded one; replaying it by hand gives the same return.
    fresh = gym.make("blis_gym/Routing-v0", num_requests=80, reward="time-in-system")
    total, _ = episode(fresh, make_baseline("least-loaded", fresh), seed=fresh.unwrapped.scenario.run.seed)
    assert rewards[0] == pytest.approx(total)


def test_baselines_drive_sb3_vector_envs():
    from stable_baselines3.common.vec_env import DummyVecEnv

    venv = DummyVecEnv([lambda: gym.make("blis_gym/Routing-v0", num_requests=30) for _ in range(3)])
    agent = make_baseline("round-robin", venv)
    obs = venv.reset()
    ended = 0
    for k in range(100):  # crosses episode ends (auto-reset)
        actions, _ = agent.predict(obs)
        assert actions.shape == (3,)
        if k < 30:  # within each first episode (30 decisions), round-robin cycles 0, 1, 2, 3, ...
            assert (actions == k % 4).all()
        obs, _, done, _ = venv.step(actions)
        ended += int(done.sum())
    assert ended >= 6  # every sub-env played past two episode ends


def test_single_observation_gives_a_scalar_action():
    env = gym.make("blis_gym/Routing-v0", num_requests=10)
    obs, _ = env.reset(seed=1)
    action, state = make_baseline("round-robin", env).predict(obs)
    assert np.ndim(action) == 0 and int(action) == 0 and state is None


def test_baseline_errors_are_clear():
    env = gym.make("blis_gym/Routing-v0", num_requests=10)
    with pytest.raises(ConfigError, match="unknown baseline 'token-bucket'.*least-loaded"):
        make_baseline("token-bucket", env)
    with pytest.raises(ConfigError, match="unknown option"):
        make_baseline("weighted", env, colour="blue")
    with pytest.raises(ConfigError, match="scorers"):
        make_baseline("weighted", env, scorers="nosuch:1")
    joint = gym.make("blis_gym/AdmissionRouting-v0", num_requests=10)
    assert "token-bucket+least-loaded" in baseline_names(joint)
    with pytest.raises(ConfigError, match="unknown baseline"):
        make_baseline("least-loaded", joint)


@pytest.mark.parametrize("name", ROUTING.names())
def test_routing_baseline_equals_blis_run_on_long_context_offload(name):
    """The tiered-KV scenario: CPU offload and reload run identically under the env."""
    env = gym.make("blis_gym/Routing-v0", scenario="long-context-offload", num_requests=200)
    agent = make_baseline(name, env)
    _, info = episode(env, agent)
    assert info["metrics"] == cli_metrics(agent, env)


def test_long_context_offload_offloads_reloads_and_rewards_affinity():
    """The scenario does what it says: blocks go to the CPU tier and come back, and routing
    that keeps contexts in place (weighted, with its prefix scorer) beats round-robin."""
    from blis_gym.cluster.simulator import ClusterSimulator
    from blis_gym.envs.scenario import load_scenario

    ttft = {}
    for policy in ("round-robin", "weighted"):
        plan = load_scenario("long-context-offload", num_requests=200, routing_policy=policy).plan
        sim = ClusterSimulator.from_config(plan.config, plan.requests)
        result = sim.run()
        assert sum(inst.kv.offloads for inst in sim.instances) > 0
        assert sum(inst.kv.cpu_hits for inst in sim.instances) > 0
        ttft[policy] = sum(sum(m.ttfts.values()) for m in result.instances) / 200  # mean, ticks
    assert ttft["weighted"] < ttft["round-robin"] / 2
