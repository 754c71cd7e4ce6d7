"""The production-trace scenarios: episodes are windows of a recorded trace, training seeds and
held-out seeds draw them from different parts of it, every env passes the checkers, and every
routing baseline equals ``blis run`` on the same window."""

from __future__ import annotations

import json
import warnings

import gymnasium as gym
import pytest

import blis_gym  # noqa: F401
from blis_gym.baselines import cli_options_for, make_baseline
from blis_gym.envs import load_scenario
from blis_gym.plan import cli_flags, resolve, simulate
from blis_gym.plan.options import HELD_OUT_SEED
from blis_gym.policies import ROUTING
from blis_gym.report.summary import result_metrics
from blis_gym.workload.windows import TraceWindow, parse_spans

TRACE_SCENARIOS = ("mooncake-conversation", "azure-conversation", "azure-code")
IDS = ("blis_gym/Routing-v0", "blis_gym/Admission-v0", "blis_gym/AdmissionRouting-v0")


@pytest.mark.parametrize("scenario", TRACE_SCENARIOS)
def test_training_and_held_out_seeds_draw_windows_from_their_own_spans(scenario):
    run = load_scenario(scenario).run
    duration = int(run.trace_duration * 1e6)
    (train_from, train_to), (held_from, held_to) = parse_spans(run.trace_window_spans, duration)
    assert train_to == held_from == 2_400_000_000  # the first 40 minutes train, the rest evaluate

    def start(seed: int) -> int:
        w = TraceWindow.from_flags(
            0, run.trace_duration, run.trace_speedup, run.trace_window_spans, seed, HELD_OUT_SEED
        )
        assert w.duration_us == duration
        return w.start_us

    train = {start(s) for s in range(200)}
    held = {start(s) for s in range(HELD_OUT_SEED, HELD_OUT_SEED + 200)}
    assert all(train_from <= s and s + duration <= train_to for s in train) and len(train) > 150
    assert all(held_from <= s and s + duration <= held_to for s in held) and len(held) > 150
    assert all(s % 1_000_000 == 0 for s in train | held)


# Routing-v0 on each trace scenario; the other two envs (the same classes) on the cheapest.
@pytest.mark.parametrize(
    "scenario, env_id", [*((s, IDS[0]) for s in TRACE_SCENARIOS), ("azure-code", IDS[1]), ("azure-code", IDS[2])]
)
def test_env_checkers_pass(scenario, env_id):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(gym.make(env_id, scenario=scenario).unwrapped, skip_render_check=False)
        sb3_check_env(gym.make(env_id, scenario=scenario).unwrapped)


def _episode(env, agent, seed):
    obs, _ = env.reset(seed=seed)
    done = False
    while not done:
        action, _ = agent.predict(obs, deterministic=True)
        obs, _, terminated, truncated, info = env.step(action)
        done = terminated or truncated
    return info


@pytest.mark.parametrize("scenario", TRACE_SCENARIOS)
def test_every_routing_baseline_equals_blis_run_on_the_same_window(scenario):
    env = gym.make("blis_gym/Routing-v0", scenario=scenario)
    for name, seed in zip(ROUTING.names(), (3, HELD_OUT_SEED, 11, HELD_OUT_SEED + 7, 5)):
        agent = make_baseline(name, env)
        info = _episode(env, agent, seed)
        run = cli_options_for(agent, env.unwrapped.scenario.run).with_seed(seed)
        assert info["metrics"] == result_metrics(simulate(resolve(run))), (name, seed)
        assert "--trace-window-spans" in cli_flags(run) and "--seed" in cli_flags(run)


def test_blis_evaluate_plays_a_trace_scenario(blis, tmp_path):
    code, out, err = blis(
        "evaluate",
        "--scenario",
        "azure-code",
        "--baselines",
        "round-robin,least-loaded",
        "--episodes",
        "2",
        "--out",
        str(tmp_path),
    )
    assert code == 0, err
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["first_seed"] == HELD_OUT_SEED and doc["scenario"] == "azure-code"
    assert "--trace-window-spans" in doc["blis_run_args"]
    assert [e["seed"] for e in doc["episodes"]["baseline:round-robin"]] == [HELD_OUT_SEED, HELD_OUT_SEED + 1]
    assert {row["policy"] for row in doc["summary"]} == {"baseline:round-robin", "baseline:least-loaded"}
    assert "round-robin" in out
