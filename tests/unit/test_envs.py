"""The Gymnasium environments: spaces, checkers, determinism, vector envs, rewards, errors."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest

import blis_gym  # noqa: F401 - registers the ids
from blis_gym.config.fitness import parse_fitness_weights
from blis_gym.envs import load_scenario, scenario_names
from blis_gym.envs.observation import INSTANCE_FEATURES, REQUEST_FEATURES, SLO_CLASSES
from blis_gym.errors import ConfigError
from blis_gym.plan import generate_requests
from blis_gym.report.fitness import compute_fitness, raw_metrics
from blis_gym.workload.spec_loader import load_workload_spec

IDS = ("blis_gym/Routing-v0", "blis_gym/Admission-v0", "blis_gym/AdmissionRouting-v0")
SMALL = {"num_requests": 60}


def make(env_id, **kw):
    if env_id.endswith("/Admission-v0"):
        kw.setdefault("reward", "time-in-system")  # regret needs routing decisions
    return gym.make(env_id, **{**SMALL, **kw})


def play(env, policy, seed=None):
    """Run one episode; returns (observations, rewards, final info)."""
    obs, info = env.reset(seed=seed)
    observations, rewards = [obs], []
    done = False
    while not done:
        obs, reward, terminated, truncated, info = env.step(policy(obs, env))
        observations.append(obs)
        rewards.append(reward)
        done = terminated or truncated
    return observations, rewards, info


def first_instance(obs, env):
    return 0


# --- registration, spaces, checkers ------------------------------------------------------------


@pytest.mark.parametrize("env_id, n_actions", [(IDS[0], 4), (IDS[1], 2), (IDS[2], 5)])
def test_make_with_no_arguments_loads_the_default_scenario(env_id, n_actions):
    env = make(env_id)
    assert env.unwrapped.scenario.name == "default"
    assert env.action_space == gym.spaces.Discrete(n_actions)
    assert env.observation_space.shape == (4 * len(INSTANCE_FEATURES) + len(REQUEST_FEATURES),)
    obs, info = env.reset(seed=3)
    assert env.observation_space.contains(obs)
    assert info["kind"] in ("routing", "admission") and info["request_id"] == "request_0"


@pytest.mark.parametrize("env_id", IDS)
def test_gymnasium_and_sb3_env_checkers_pass(env_id):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any checker warning fails the test
        check_env(make(env_id).unwrapped, skip_render_check=False)
        sb3_check_env(make(env_id).unwrapped)


def test_every_shipped_scenario_loads():
    assert {"default", "prefix-heavy", "overload", "stale-signals"} <= set(scenario_names())
    for name in scenario_names():
        s = load_scenario(name, num_requests=20)
        assert s.description and s.plan.config.num_instances >= 2
    assert load_scenario("stale-signals").plan.config.snapshot_refresh_interval > 0


# --- determinism -------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", IDS)
def test_same_seed_same_episode_byte_for_byte(env_id):
    rng = np.random.default_rng(0)
    actions = rng.integers(0, make(env_id).action_space.n, size=200)

    def scripted(obs, env, it=None):
        scripted.i += 1
        return int(actions[scripted.i % len(actions)])

    runs = []
    for _ in range(2):
        scripted.i = -1
        env = make(env_id)
        obs, rewards, info = play(env, scripted, seed=11)
        runs.append((np.stack(obs).tobytes(), np.array(rewards).tobytes(), info["metrics"]))
    assert runs[0] == runs[1]


def test_unseeded_resets_draw_new_workloads_deterministically():
    env = make(IDS[0])
    env.reset(seed=5)
    seeds = []
    for _ in range(3):
        env.reset()
        seeds.append(env.unwrapped.workload_seed)
    env.reset(seed=5)
    again = []
    for _ in range(3):
        env.reset()
        again.append(env.unwrapped.workload_seed)
    assert seeds == again and len(set(seeds)) == 3


# --- vector environments ------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", IDS)
def test_gymnasium_vector_envs(env_id):
    for cls in (gym.vector.SyncVectorEnv, gym.vector.AsyncVectorEnv):
        venv = cls([lambda: make(env_id, num_requests=20) for _ in range(2)])
        obs, _ = venv.reset(seed=1)
        assert obs.shape == (2, venv.single_observation_space.shape[0])
        ended = 0
        for _ in range(30):  # past the end of an episode: autoreset
            obs, reward, term, trunc, info = venv.step(venv.action_space.sample())
            ended += int(term.sum())
            assert venv.observation_space.contains(obs)
        venv.close()
        assert ended >= 2  # each sub-env finished an episode (at most 20 decisions) and went on


@pytest.mark.parametrize("env_id", IDS)
def test_sb3_vector_envs(env_id):
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    for cls in (DummyVecEnv, SubprocVecEnv):
        venv = cls([lambda: make(env_id, num_requests=20) for _ in range(2)])
        venv.seed(1)
        obs = venv.reset()
        assert obs.shape == (2, venv.observation_space.shape[0])
        ended = 0
        for _ in range(30):
            obs, reward, done, info = venv.step(np.array([venv.action_space.sample() for _ in range(2)]))
            ended += int(done.sum())
            assert all(venv.observation_space.contains(o) for o in obs)
        venv.close()
        assert ended >= 2  # each sub-env finished an episode and was reset


# --- rewards: small hand-worked cases ----------------------------------------------------------


def test_regret_reward_hand_case():
    # Two instances, queue-depth as the reference profile, everything sent to instance 0 with
    # arrivals 1 tick apart (all still pending): after the first decision instance 0 is always the
    # busier one, queue-depth scores it 0 and instance 1 1, so each later decision regrets 1.
    env = gym.make(IDS[0], num_instances=2, rate=1e6, num_requests=8, regret_scorers="queue-depth:1")
    obs, rewards, info = play(env, first_instance, seed=1)
    assert rewards == [0.0] + [-1.0] * 7


def test_regret_reward_is_zero_for_the_reference_profile_itself():
    from blis_gym.baselines import make_baseline

    env = make(IDS[0], num_requests=100)
    agent = make_baseline("weighted", env)  # the default profile, as is the default regret profile
    _, rewards, _ = play(env, lambda obs, e: agent.predict(obs)[0], seed=2)
    assert rewards == [0.0] * len(rewards)


def test_fitness_reward_is_paid_once_at_the_end():
    env = make(IDS[0], reward="fitness", fitness_weights="throughput:1")
    _, rewards, info = play(env, first_instance, seed=4)
    assert rewards[:-1] == [0.0] * (len(rewards) - 1)
    rps = info["metrics"]["cluster"]["responses_per_sec"]
    assert rewards[-1] == pytest.approx(rps / (rps + 100.0), rel=1e-12)
    assert info["fitness"] == rewards[-1]


def test_time_in_system_return_is_minus_total_e2e():
    env = make(IDS[0], reward="time-in-system", time_scale=2.0)
    _, rewards, info = play(env, lambda obs, e: e.action_space.sample(), seed=6)
    cluster = info["metrics"]["cluster"]
    assert cluster["completed_requests"] == 60
    total_s = cluster["e2e_mean_ms"] * 60 / 1000.0
    assert sum(rewards) == pytest.approx(-total_s / 2.0, rel=1e-9)
    assert all(r <= 0 for r in rewards)


@pytest.mark.parametrize("reward", ["time-in-system", "fitness"])
def test_rejecting_everything_costs_the_penalty(reward):
    env = make(IDS[1], reward=reward, fitness_weights="throughput:1,p99_ttft:2")
    _, rewards, info = play(env, lambda obs, e: 0, seed=1)
    n = 60
    assert info["metrics"]["rejected_requests"] == n
    if reward == "time-in-system":
        # Rejected at arrival (no admission latency): no time in system, ten request-seconds each.
        assert sum(rewards) == pytest.approx(-10.0 * n)
    else:
        # Nothing served: throughput scores 0, latency terms 1 (weight 2); the default penalty
        # spreads the weight total (3) over the 60 requests.
        assert sum(rewards) == pytest.approx(2.0 - 3.0)


def test_custom_rejection_penalty_in_the_joint_env():
    env = make(IDS[2], rejection_penalty=0.25)
    _, rewards, info = play(env, lambda obs, e: e.unwrapped.num_instances, seed=1)
    assert sum(rewards) == pytest.approx(-0.25 * 60)


def test_final_info_carries_the_cli_metrics():
    from dataclasses import replace

    from blis_gym.plan import resolve, simulate
    from blis_gym.report.summary import metrics_block

    env = make(IDS[0], routing_policy="round-robin")
    _, _, info = play(env, lambda obs, e: e.unwrapped.decision.request.index % 4, seed=9)
    run = replace(env.unwrapped.scenario.run, seed=9, routing_policy="round-robin")
    result = simulate(resolve(run))
    assert info["metrics"]["cluster"] == metrics_block("cluster", result.aggregate)
    assert set(info["metrics"]["instances"]) == {f"instance_{i}" for i in range(4)}


def test_default_fitness_reward_is_the_cli_fitness_score():
    env = make(IDS[0], reward="fitness")  # default weights: throughput:1,p99_ttft:1,mean_e2e:1
    _, rewards, _ = play(env, first_instance, seed=3)
    weights = parse_fitness_weights("throughput:1,p99_ttft:1,mean_e2e:1")
    expected = compute_fitness(raw_metrics(env.unwrapped.result.aggregate), weights).score
    assert sum(rewards) == rewards[-1] == expected > 0


# --- observation contents ---------------------------------------------------------------------


def test_observation_reflects_pending_and_prefix_match():
    env = gym.make(IDS[0], num_instances=2, rate=1e6, num_requests=4, prefix_tokens=64)
    obs, _ = env.reset(seed=1)
    per = len(INSTANCE_FEATURES)
    assert obs[2] == 0.0 and obs[6] == 0.0  # nothing pending, nothing recorded yet
    obs, *_ = env.step(0)
    assert obs[2] == pytest.approx(1 / 8)  # one pending request on instance 0
    assert obs[6] > 0.0 and obs[per + 6] == 0.0  # the shared prefix was recorded on instance 0 only
    n_in = env.unwrapped.decision.request.n_in
    assert obs[2 * per] == pytest.approx(n_in / 1024)
    assert obs[2 * per + 2] == 1.0  # no SLO class: the "default" slot


def test_work_in_flight_features_describe_each_instance_exactly():
    """prefill_backlog and busy_for against the instances' own state, recomputed from scratch,
    at every decision of a busy episode."""
    env = gym.make(IDS[0], num_requests=300)
    u = env.unwrapped
    obs, _ = env.reset(seed=3)
    names = [n for n, _ in INSTANCE_FEATURES]
    per = len(names)
    col = {n: names.index(n) for n in ("prefill_backlog", "busy_for")}
    seen_busy = seen_wait = 0
    done = False
    step = 0
    while not done:
        clock = u.decision.time
        for i, inst in enumerate(u.sim.instances):
            row = obs[i * per : (i + 1) * per]
            backlog = sum(r.n_in for r in inst.waitq) + sum(max(r.n_in - r.progress, 0) for r in inst.running)
            busy = max(inst.step_end - clock, 0)
            assert row[col["prefill_backlog"]] == pytest.approx(backlog / 1024, rel=1e-6)
            assert row[col["busy_for"]] == pytest.approx(busy / 10_000, rel=1e-6)
            seen_busy += busy > 0
            seen_wait += bool(inst.waitq)
        obs, _, done, _, _ = env.step(step % 4)
        step += 1
    assert seen_busy > 100 and seen_wait > 100  # the episode exercised them


# --- conventions and errors -----------------------------------------------------------------------


def test_render_ansi_draws_every_instance():
    env = make(IDS[0], render_mode="ansi")
    env.reset(seed=1)
    text = env.render()
    assert "routing decision for request_0" in text
    assert all(f"instance_{i}" in text for i in range(4))


@pytest.mark.parametrize("env_id", IDS)
def test_out_of_space_action_is_a_value_error(env_id):
    env = make(env_id)
    env.reset(seed=1)
    with pytest.raises(ValueError, match="outside the action space"):
        env.step(env.action_space.n)
    with pytest.raises(ValueError, match="outside the action space"):
        env.step(-1)


def test_step_before_reset_and_after_the_end():
    env = make(IDS[0]).unwrapped
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    play(env, first_instance, seed=1)
    with pytest.raises(RuntimeError, match="ended"):
        env.step(0)


def test_no_decisions_for_the_agent_ends_at_the_first_step():
    env = make(IDS[0], admission_policy="reject-all")
    obs, info = env.reset(seed=1)
    assert not obs.any() and "request_id" not in info
    obs, reward, terminated, truncated, info = env.step(0)
    assert terminated and info["metrics"]["rejected_requests"] == 60


@pytest.mark.parametrize(
    "overrides, words",
    [
        ({"num_instance": 3}, ("num_instance", "unknown option", "num_instances")),
        ({"rate": "fast"}, ("rate", "expected float")),
        ({"rate": -1.0}, ("scenario default", "--rate")),
        ({"reward": "profit"}, ("reward", "profit", "time-in-system")),
        ({"regret_scorers": "queue-depth:0"}, ("regret_scorers", "positive")),
        ({"fitness_weights": "speed:1"}, ("fitness_weights", "speed")),
        ({"rejection_penalty": -1.0}, ("rejection_penalty",)),
        ({"time_scale": 0.0}, ("time_scale",)),
        ({"routing_policy": "fastest"}, ("routing", "fastest")),
        ({"model": "nosuch/model"}, ("nosuch/model",)),
    ],
)
def test_bad_scenario_fields_are_named(overrides, words):
    with pytest.raises(ConfigError) as err:
        gym.make(IDS[0], **overrides)
    for w in words:
        assert w in str(err.value)


def test_bad_scenario_files(tmp_path):
    with pytest.raises(ConfigError, match="shipped: .*default"):
        gym.make(IDS[0], scenario="nosuch")
    bad = tmp_path / "bad.yaml"
    bad.write_text("num_instances: [1\n")
    with pytest.raises(ConfigError, match="bad.yaml.*line"):
        gym.make(IDS[0], scenario=str(bad))
    bad.write_text("colour: blue\n")
    with pytest.raises(ConfigError, match="colour"):
        gym.make(IDS[0], scenario=str(bad))
    good = tmp_path / "mine.yaml"
    good.write_text("model: meta-llama/llama-3.1-8b-instruct\nnum_instances: 3\nnum_requests: 10\n")
    assert gym.make(IDS[0], scenario=str(good)).action_space.n == 3


@pytest.mark.parametrize("reward", ["regret", "lookahead"])
def test_routing_rewards_need_routing_decisions(reward):
    with pytest.raises(ValueError, match=f"reward '{reward}' scores routing choices"):
        gym.make(IDS[1], reward=reward)


@pytest.mark.parametrize("env_id", IDS)
@pytest.mark.parametrize(
    "overrides",
    [{}, {"rate": 200.0, "num_instances": 2, "num_requests": 80}],
    ids=["no-arguments", "workload-overrides"],
)
def test_every_env_builds_and_runs_with_no_arguments(env_id, overrides):
    """The default scenario's reward (regret) does not fit Admission-v0, which then uses its own."""
    env = gym.make(env_id, **overrides)
    reward = env.unwrapped.scenario.env.reward
    assert reward == ("time-in-system" if env_id.endswith("/Admission-v0") else "regret")
    _, rewards, info = play(env, lambda obs, e: e.action_space.n - 1)
    expected = overrides.get("num_requests", 1000)
    assert info["metrics"]["cluster"]["injected_requests"] + info["metrics"]["rejected_requests"] == expected
    assert all(np.isfinite(rewards))


# --- workload specs ----------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", ["multi-tenant-slo", "multiturn-chat"])
def test_spec_scenarios_show_slo_classes_and_report_them(scenario):
    env = gym.make(IDS[0], scenario=scenario, num_requests=150)
    n = env.unwrapped.num_instances
    classes = {c.slo_class for c in load_workload_spec(env.unwrapped.scenario.run.workload_spec).clients}
    seen = set()
    observations, _, info = play(env, first_instance, seed=5)
    slo_at = n * len(INSTANCE_FEATURES) + [name for name, _ in REQUEST_FEATURES].index("slo_default")
    for obs in observations[:-1]:
        one_hot = obs[slo_at : slo_at + len(SLO_CLASSES)]
        assert one_hot.sum() == 1.0
        seen.add(SLO_CLASSES[int(np.argmax(one_hot))])
    assert seen == classes
    per_slo = info["metrics"]["per_slo"]
    assert set(per_slo) == classes
    assert sum(m["completed"] for m in per_slo.values()) == info["metrics"]["cluster"]["completed_requests"]


def test_multiturn_chat_sessions_come_back_to_their_context():
    """Rounds of one session share their whole earlier conversation as a prefix."""
    env = gym.make(IDS[0], scenario="multiturn-chat", num_requests=200)
    reqs = generate_requests(env.unwrapped.scenario.run.with_seed(9))
    by_session: dict[str, list] = {}
    for r in reqs:
        by_session.setdefault(r.session_id, []).append(r)
    multi = [rs for s, rs in by_session.items() if s and len(rs) > 1]
    assert multi
    for rounds in multi:
        for earlier, later in zip(rounds, rounds[1:]):
            assert later.n_in > earlier.n_in + earlier.n_out - 1
            assert np.array_equal(later.input[: earlier.n_in], earlier.input)
            assert np.array_equal(later.input[earlier.n_in : earlier.n_in + earlier.n_out], earlier.output)


def test_critic_regret_is_the_counterfactual_regret():
    from blis_gym.cluster.trace import counterfactual
    from blis_gym.engine.request import Request
    from blis_gym.envs.rewards import RegretCritic
    from blis_gym.policies.base import Snapshot

    rng = np.random.default_rng(3)
    critic = RegretCritic((), 16)
    for trial in range(50):
        snaps = [
            Snapshot(f"instance_{i}", i, int(q), int(b), float(kv), 100, 0.0, int(p))
            for i, (q, b, kv, p) in enumerate(
                zip(rng.integers(0, 9, 5), rng.integers(0, 9, 5), rng.random(5), rng.integers(0, 3, 5))
            )
        ]
        req = Request(f"r{trial}", trial, 0, rng.integers(0, 1000, 64), [1])
        target = int(rng.integers(0, 5))
        scores = critic.profile.scores(req, snaps)
        regret, _ = critic.regret(req, snaps, target)
        assert regret == counterfactual(target, scores, snaps, 3)[1]


def test_time_in_system_integrates_arrivals_and_departures():
    from blis_gym.envs.rewards import TimeInSystem

    t = TimeInSystem([20, 0, 10])
    for tick in (15, 30, 20):  # departures are reported when decided, possibly for later ticks
        t.depart(None, tick)
    assert t.area(5) == 5  # only the first request has arrived
    assert t.area(25) == 15 + 15 + 0  # left at 15; 10..25; arrived and left at 20
    assert t.area(40) == 15 + 20 + 0
    assert t.end_tick(35) == 35


def test_ttft_reward_returns_minus_the_sum_of_ttfts():
    """reward="ttft" pays request-seconds spent waiting for a first token: over an episode with
    no preemption, the return is minus the sum of the TTFTs (seconds / time_scale)."""
    env = gym.make("blis_gym/Routing-v0", num_requests=80, reward="ttft", time_scale=0.5)
    obs, _ = env.reset(seed=11)
    total, done, k = 0.0, False, 0
    while not done:
        obs, reward, done, _, info = env.step(k % 4)
        total += reward
        k += 1
    agg = env.unwrapped.result.aggregate
    assert agg.preemptions == 0 and agg.completed == 80
    assert total == pytest.approx(-sum(agg.ttfts.values()) / 1e6 / 0.5, rel=1e-9)


def test_lookahead_reward_prices_each_choice_by_simulating_all():
    """Minus the request-seconds lost against the best candidate, by forks of the paused run."""
    from blis_gym.baselines import make_baseline
    from blis_gym.policies import ROUTING

    env = gym.make(IDS[0], num_requests=60, reward="lookahead")
    u = env.unwrapped
    env.reset(seed=5)
    rng = np.random.default_rng(0)
    done = False
    while not done:
        d = u.decision
        oracle = ROUTING.make("lookahead", **{**u.config.policy_options(), "prefix_index": u.index})
        oracle.bind_simulator(u.sim)
        costs = oracle.candidate_costs(d.request, d.state)
        action = int(rng.integers(4))
        _, reward, done, _, info = env.step(action)
        assert info["lookahead_costs"] == costs
        assert reward == pytest.approx(-(costs[action] - min(costs)) / 1e6)
    # The oracle itself never loses anything.
    agent = make_baseline("lookahead", env)
    _, rewards, _ = play(env, lambda obs, e: int(agent.predict(obs)[0]), seed=5)
    assert all(r == 0.0 for r in rewards)


def test_lookahead_reward_with_pruned_candidates_still_prices_the_choice():
    env = gym.make(IDS[0], num_requests=40, reward="lookahead", lookahead_candidates=2)
    env.reset(seed=5)
    rng = np.random.default_rng(1)
    done = False
    while not done:
        action = int(rng.integers(4))
        _, reward, done, _, info = env.step(action)
        costs = info["lookahead_costs"]
        simulated = [c for c in costs if c is not None]
        assert costs[action] is not None and 2 <= len(simulated) <= 3
        assert reward == pytest.approx(-(costs[action] - min(simulated)) / 1e6) and reward <= 0


def test_cache_observation_shows_what_each_instance_caches():
    """cached_prefix is the fraction of the request's full blocks each instance's real KV cache
    holds (the live table with --cache-signal-delay 0), recomputed from the caches at each
    decision; without the option the layout is unchanged."""
    plain = gym.make(IDS[0], scenario="prefix-heavy", num_requests=200, cache_observation=False, cache_signal_delay=0)
    env = gym.make(IDS[0], scenario="prefix-heavy", num_requests=200, cache_observation=True, cache_signal_delay=0)
    n = env.unwrapped.num_instances
    per = len(INSTANCE_FEATURES) + 1
    assert plain.observation_space.shape == (n * len(INSTANCE_FEATURES) + len(REQUEST_FEATURES),)
    assert env.observation_space.shape == (n * per + len(REQUEST_FEATURES),)
    obs_plain, _ = plain.reset(seed=2)
    obs, _ = env.reset(seed=2)
    u = env.unwrapped
    hits = 0
    done = False
    step = 0
    while not done:
        req = u.decision.request
        keys = req.input_keys(u.config.engine.block_size)
        rows = obs[: n * per].reshape(n, per)
        # Every other feature is the plain layout's, value for value.
        assert np.array_equal(np.delete(rows, per - 1, axis=1).ravel(), obs_plain[: n * (per - 1)])
        for i, inst in enumerate(u.sim.instances):
            held = 0
            for key in keys:
                if key not in inst.kv.hash_to_block:
                    break
                held += 1
            assert rows[i, per - 1] == pytest.approx(held / len(keys) if keys else 0.0)
            hits += held > 0
        action = step % 2  # two instances only: the others never cache anything
        obs, _, done, _, _ = env.step(action)
        obs_plain, *_ = plain.step(action)
        step += 1
    assert hits > 100


def test_cache_observation_is_stale_by_the_cache_signal_delay():
    """With a delay the feature reads the copy made at the last refresh, not the live cache."""
    fresh = gym.make(IDS[0], scenario="prefix-heavy", num_requests=150, cache_observation=True, cache_signal_delay=0)
    stale = gym.make(
        IDS[0], scenario="prefix-heavy", num_requests=150, cache_observation=True, cache_signal_delay=10**9
    )
    n = fresh.unwrapped.num_instances
    per = len(INSTANCE_FEATURES) + 1
    a, _ = fresh.reset(seed=4)
    b, _ = stale.reset(seed=4)
    differs = False
    done = False
    step = 0
    while not done:
        cached_a, cached_b = a[: n * per].reshape(n, per), b[: n * per].reshape(n, per)
        assert np.array_equal(np.delete(cached_a, per - 1, 1), np.delete(cached_b, per - 1, 1))
        assert not cached_b[:, per - 1].any()  # the copy made at the start, when every cache was empty
        differs |= bool(cached_a[:, per - 1].any())
        a, _, done, _, _ = fresh.step(step % n)
        b, *_ = stale.step(step % n)
        step += 1
    assert differs
