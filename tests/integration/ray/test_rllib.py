"""RLlib: the envs under env runners, ``blis train --backend rllib``, and its agent in evaluate and run."""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import replace

import numpy as np
import pytest
import yaml

pytest.importorskip("ray.rllib", reason="needs the distributed extra (pip install 'blis-gym[distributed]')")
pytest.importorskip("torch", reason="needs the rl extra")

import gymnasium as gym
from testkit.rllib import ROUTING, SMALL, TIMESTEPS, run_cli, tiny_ppo_config, trained_rllib_run

from blis_gym.agents.config import load_agent_config, parse_agent_config
from blis_gym.agents.model import TrainedAgent
from blis_gym.agents.rllib_backend import (
    CHECKPOINT_DIR,
    METRICS_COLUMNS,
    METRICS_FILE,
    SEED_STRIDE,
    RLlibAgent,
    make_rllib_env,
    module_path,
    ppo_config,
    ppo_settings,
    quiet_rllib_logs,
    register_envs,
)
from blis_gym.envs.cluster_env import HELD_OUT_SEED
from blis_gym.envs.scenario import load_scenario
from blis_gym.errors import ConfigError
from blis_gym.plan import cli_flags

ADMISSION, JOINT = "blis_gym/Admission-v0", "blis_gym/AdmissionRouting-v0"

# A stalled env runner (seen once on a machine running four trainings besides) fails the test
# instead of hanging the suite; alone, the slowest test here takes about 15 s.
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def rllib_run(ray_local, tmp_path_factory):
    run, result = trained_rllib_run(tmp_path_factory)
    assert result.code == 0, result.err
    return run


# --- training -------------------------------------------------------------------------------------


def test_training_writes_the_run_folder(rllib_run, tmp_path_factory):
    _, result = trained_rllib_run(tmp_path_factory)
    assert result.out.startswith("done: ") and str(rllib_run / CHECKPOINT_DIR) in result.out
    meta = yaml.safe_load((rllib_run / "config.yaml").read_text())
    assert (meta["backend"], meta["env"], meta["algo"], meta["seed"]) == ("rllib", ROUTING, "ppo", 3)
    assert meta["num_instances"] == 4 and meta["observation_size"] == 47 and meta["n_actions"] == 4
    assert meta["timesteps"] == TIMESTEPS and meta["steps_done"] >= TIMESTEPS and meta["iterations"] >= 3
    assert meta["wall_seconds"] > 0 and meta["steps_per_second"] > 0 and meta["interrupted"] is False
    # The recipe's hyperparameters reached RLlib.
    rl = meta["rllib"]
    assert (rl["lr"], rl["gamma"], rl["num_epochs"], rl["minibatch_size"]) == (0.001, 0.9, 2, 64)
    assert rl["train_batch_size_per_learner"] == 128 and rl["fcnet_hiddens"] == [16]
    assert rl["env_config"] == {"scenario": "default", "reward": "ttft", **SMALL}
    with open(rllib_run / METRICS_FILE) as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == METRICS_COLUMNS and len(rows) == meta["iterations"]
    steps = [int(r["env_steps"]) for r in rows]
    assert steps == sorted(steps) and steps[0] > 0 and steps[-1] == meta["steps_done"]
    assert [int(r["iteration"]) for r in rows] == list(range(1, len(rows) + 1))
    # 60-request episodes end within each 128-step iteration: every row has a mean return.
    assert all(float(r["episode_return_mean"]) < 0 for r in rows)  # ttft reward: minus waiting time
    assert module_path(rllib_run / CHECKPOINT_DIR).is_dir()


def test_recipe_hyperparameters_map_to_rllib():
    training, hiddens, not_mapped = ppo_settings(load_agent_config("ppo"), total_envs=4, timesteps=100_000)
    recipe = load_agent_config("ppo").hyperparameters
    assert training["lr"] == recipe["learning_rate"] and training["gamma"] == recipe["gamma"]
    assert training["lambda_"] == recipe["gae_lambda"] and training["clip_param"] == recipe["clip_range"]
    assert training["num_epochs"] == recipe["n_epochs"] and training["minibatch_size"] == recipe["batch_size"]
    assert training["train_batch_size_per_learner"] == recipe["n_steps"] * 4
    assert training["entropy_coeff"] == [[0, 0.01], [100_000, 0.0]]  # the recipe's entropy_schedule
    assert training["vf_loss_coeff"] == 0.5 and training["grad_clip"] == 0.5  # stable-baselines3's defaults
    assert training["use_kl_loss"] is False and hiddens == [128, 128]
    assert set(not_mapped) == {"normalize_observations", "normalize_rewards", "warm_start", "checkpoint_every"}
    # A short run samples no more than asked for (in whole steps per env).
    small, _, _ = ppo_settings(load_agent_config("ppo"), total_envs=4, timesteps=1000)
    assert small["train_batch_size_per_learner"] == 1000 and small["minibatch_size"] == 512


@pytest.mark.parametrize(
    "doc,needle",
    [
        ({"algo": "a2c"}, "--backend rllib trains ppo only, not a2c (valid: ppo"),
        ({"algo": "ppo", "hyperparameters": {"n_steps": 0}}, "n_steps: expected an integer >= 1"),
        ({"algo": "ppo", "hyperparameters": {"gamma": "high"}}, "gamma: expected a finite number >= 0"),
    ],
)
def test_unmappable_configs_fail_clearly(doc, needle):
    with pytest.raises(ConfigError) as exc:
        ppo_settings(parse_agent_config(doc, "x.yaml"), total_envs=1, timesteps=100)
    assert needle in str(exc.value)


# --- envs under RLlib -----------------------------------------------------------------------------


def test_runner_seeds_give_each_env_its_own_workloads():
    from ray.rllib.env.env_context import EnvContext

    base = 7
    seen = set()
    for worker in range(3):
        for i in range(2):
            env = make_rllib_env(ROUTING, EnvContext({"scenario": "default", **SMALL}, worker_index=worker))
            env.reset(seed=base + worker + i)  # what RLlib passes to env i of env runner `worker`
            assert env.unwrapped.workload_seed == base + worker * SEED_STRIDE + i
            seen.add(env.unwrapped.workload_seed)
            env.reset()  # later episodes draw their own seeds, below the held-out range
            assert 0 <= env.unwrapped.workload_seed < HELD_OUT_SEED
    assert len(seen) == 6
    env = make_rllib_env(ROUTING, EnvContext({**SMALL}, worker_index=2))
    env.reset(seed=HELD_OUT_SEED - 1)
    assert env.unwrapped.workload_seed < HELD_OUT_SEED  # never a held-out evaluation seed


def test_env_runners_play_distinct_training_seeds(ray_local):
    """Two env runners with two envs each: every episode's workload seed is distinct and below 2**30."""
    cfg = parse_agent_config(
        {
            "algo": "ppo",
            "env": {"num_requests": 30, "reward": "ttft"},
            "hyperparameters": {"n_steps": 32, "batch_size": 64, "n_epochs": 1},
            "policy_kwargs": {"net_arch": [8]},
        },
        "test",
    )

    def record_workload_seed(*, env, env_index, metrics_logger, **_):
        # Nested, so Ray pickles it by value: the env runners cannot import this test module.
        metrics_logger.log_value(
            "workload_seeds", env.unwrapped.envs[env_index].unwrapped.workload_seed, reduce="item_series"
        )

    register_envs()
    quiet_rllib_logs()
    rl, _, _ = ppo_config(cfg, env_id=ROUTING, scenario="default", seed=11, timesteps=256, env_runners=2, n_envs=2)
    algo = rl.callbacks(on_episode_start=record_workload_seed).build_algo()
    try:
        seeds = []
        for _ in range(2):
            seeds += list(algo.train()["env_runners"]["workload_seeds"])
    finally:
        algo.stop()
    # The first episodes: seed + runner * SEED_STRIDE + env index, then the envs' own draws.
    assert {11 + SEED_STRIDE + 0, 11 + SEED_STRIDE + 1, 11 + 2 * SEED_STRIDE, 11 + 2 * SEED_STRIDE + 1} <= set(seeds)
    assert len(seeds) >= 8 and len(set(seeds)) == len(seeds)
    assert all(0 <= s < HELD_OUT_SEED for s in seeds)


@pytest.mark.filterwarnings("ignore:.*Overriding environment rllib-single-agent-env-v0")  # RLlib's own
@pytest.mark.parametrize("env_id,scenario,n_actions", [(ADMISSION, "overload", 2), (JOINT, "default", 5)])
def test_admission_envs_sample_under_rllib(env_id, scenario, n_actions):
    from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

    cfg = parse_agent_config(
        {
            "algo": "ppo",
            "env": {"num_requests": 30, "reward": "ttft"},
            "hyperparameters": {"n_steps": 32, "batch_size": 32, "n_epochs": 1},
            "policy_kwargs": {"net_arch": [8]},
        },
        "test",
    )
    register_envs()
    quiet_rllib_logs()
    rl, _, _ = ppo_config(cfg, env_id=env_id, scenario=scenario, seed=5, timesteps=64, env_runners=0, n_envs=2)
    runner = SingleAgentEnvRunner(config=rl, worker_index=0)
    try:
        assert runner.env.single_observation_space.shape == (47,)
        assert runner.env.single_action_space.n == n_actions == runner.module.action_space.n
        episodes = runner.sample(num_timesteps=64)
        actions = np.concatenate([np.asarray(e.get_actions()) for e in episodes])
        assert sum(len(e) for e in episodes) == 64 and any(e.is_done for e in episodes)
        assert actions.min() >= 0 and actions.max() < n_actions
    finally:
        runner.stop()


# --- the agent ------------------------------------------------------------------------------------


def test_the_run_folder_loads_as_an_agent(rllib_run):
    agent = TrainedAgent.load(rllib_run)
    assert isinstance(agent, RLlibAgent) and agent.env_id == ROUTING and agent.meta["backend"] == "rllib"
    env = gym.make(ROUTING, **SMALL)
    obs, _ = env.reset(seed=HELD_OUT_SEED)
    batch = [obs]
    for _ in range(20):
        obs, *_ = env.step(agent.act(obs))
        batch.append(obs)
    batch = np.array(batch)
    actions, state = agent.predict(batch)
    assert state is None and actions.shape == (len(batch),)
    assert [agent.act(o) for o in batch] == actions.tolist()  # a batch and single observations agree
    assert all(0 <= a < 4 for a in actions)
    # The checkpoint folder loads the same policy.
    other = TrainedAgent.load(rllib_run / CHECKPOINT_DIR)
    assert other.path == agent.path and other.predict(batch)[0].tolist() == actions.tolist()
    agent.check(ROUTING, 47, 4, "--agent")
    with pytest.raises(ConfigError, match="trained on blis_gym/Routing-v0, not blis_gym/Admission-v0"):
        agent.check(ADMISSION, 47, 2, "--agent")
    with pytest.raises(ConfigError, match="it was trained for 4 instances"):
        agent.check(ROUTING, 87, 8, "--agent")


def test_blis_evaluate_scores_the_rllib_agent_deterministically(rllib_run, tmp_path):
    runs = []
    for name in ("a", "b"):
        r = run_cli(
            "evaluate",
            "--agent",
            str(rllib_run),
            "--baselines",
            "none",
            "--episodes",
            "2",
            "--set",
            "num_requests=60",
            "--out",
            str(tmp_path / name),
        )
        assert r.code == 0, r.err
        runs.append(r)
    assert runs[0].out == runs[1].out
    assert runs[0].out.splitlines()[2].split()[0] == str(rllib_run)
    a, b = (json.loads((tmp_path / n / "results.json").read_text()) for n in "ab")
    assert a == b and [s["policy"] for s in a["summary"]] == [str(rllib_run)]
    assert [e["seed"] for e in a["episodes"][str(rllib_run)]] == [HELD_OUT_SEED, HELD_OUT_SEED + 1]
    assert all(e["completed"] == 60 for e in a["episodes"][str(rllib_run)])


def test_blis_run_with_the_rllib_router_reproduces_evaluate(rllib_run, tmp_path):
    r = run_cli(
        "evaluate",
        "--agent",
        str(rllib_run),
        "--baselines",
        "none",
        "--episodes",
        "2",
        "--set",
        "num_requests=60",
        "--out",
        str(tmp_path),
    )
    assert r.code == 0, r.err
    row = json.loads((tmp_path / "results.json").read_text())["episodes"][str(rllib_run)][1]
    flags = cli_flags(replace(load_scenario("default", **SMALL).run, seed=row["seed"]))
    results = tmp_path / "run.json"
    r = run_cli(
        "run", *flags, "--routing-policy", "rl", "--routing-model", str(rllib_run), "--results-path", str(results)
    )
    assert r.code == 0, r.err
    cluster = json.loads(results.read_text())
    cluster = cluster.get("cluster", cluster)
    assert (cluster["ttft_p99_ms"], cluster["e2e_mean_ms"], cluster["responses_per_sec"]) == (
        row["ttft_p99_ms"],
        row["e2e_mean_ms"],
        row["throughput_rps"],
    )


# --- clear errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--algo", "a2c"], "--algo a2c: --backend rllib trains ppo only (valid: ppo"),
        (["--algo", "dqn"], "--backend rllib trains ppo only"),
        (["--config", "a2c"], "--backend rllib trains ppo only, not a2c"),
        (["--subproc"], "--subproc is used only with --backend sb3"),
        (["--env-runners", "-1"], "--env-runners must be >= 0"),
        (["--n-envs", "1001"], "--n-envs must be in [1, 1000]"),
        (["--timesteps", "0"], "--timesteps must be > 0"),
        (["--seed", str(HELD_OUT_SEED)], "held out for evaluation"),
        (["--env", "blis_gym/Nope-v0"], "--env: unknown environment"),
        (["--scenario", "nope"], "scenario 'nope'"),
    ],
)
def test_bad_rllib_training_input_fails_clearly(args, needle, tmp_path):
    r = run_cli("train", "--backend", "rllib", "--out", str(tmp_path / "x"), *args)
    assert r.code == 2 and needle in r.err and "Traceback" not in r.err
    assert r.out == "" and not (tmp_path / "x").exists()


def test_backend_flags_fail_clearly(tmp_path):
    for args, needle in (
        (["--backend", "tf"], "--backend: unknown backend 'tf' (valid: sb3, rllib)"),
        (["--env-runners", "2"], "--env-runners is used only with --backend rllib"),
        (["--address", "127.0.0.1:6379"], "--address is used only with --backend rllib"),
    ):
        r = run_cli("train", "--out", str(tmp_path / "x"), *args)
        assert r.code == 2 and needle in r.err, r.err


def test_rllib_training_refuses_what_it_cannot_do(rllib_run, ray_local, tmp_path):
    r = run_cli("train", "--backend", "rllib", "--out", str(rllib_run), "--timesteps", "10")
    assert r.code == 2 and "already holds a rllib_checkpoint" in r.err
    config = tiny_ppo_config(tmp_path)
    r = run_cli(
        "train", "--backend", "rllib", "--config", str(config), "--env-runners", "5", "--out", str(tmp_path / "x")
    )  # the session's Ray has 2 CPUs
    assert r.code == 2 and "--env-runners 5: the Ray cluster offers 2 CPUs" in r.err
    assert not (tmp_path / "x").exists()


def _flags() -> list[str]:
    return cli_flags(load_scenario("default", **SMALL).run.with_seed(HELD_OUT_SEED))


def test_broken_rllib_folders_fail_clearly(rllib_run, tmp_path):
    import shutil

    meta = (rllib_run / "config.yaml").read_text()
    cases = {}
    missing = tmp_path / "missing"  # training never saved its checkpoint
    missing.mkdir()
    (missing / "config.yaml").write_text(meta)
    cases[missing] = "config.yaml says backend rllib but"
    empty = tmp_path / "empty"  # a checkpoint without its RLModule
    (empty / CHECKPOINT_DIR).mkdir(parents=True)
    (empty / "config.yaml").write_text(meta)
    cases[empty] = "holds no RLModule"
    corrupt = tmp_path / "corrupt"
    shutil.copytree(rllib_run, corrupt)
    for f in module_path(corrupt / CHECKPOINT_DIR).glob("*.pkl"):
        f.write_bytes(b"not a pickle")
    cases[corrupt] = "cannot load the RLlib module"
    for folder, needle in cases.items():
        r = run_cli("evaluate", "--agent", str(folder), "--baselines", "none", "--out", str(tmp_path / "out"))
        assert r.code == 2 and needle in r.err and "Traceback" not in r.err, r.err
        r = run_cli("run", *_flags(), "--routing-policy", "rl", "--routing-model", str(folder))
        assert r.code == 2 and needle in r.err and r.out == "", r.err
    assert not (tmp_path / "out").exists()


def test_an_rllib_agent_without_ray_says_how_to_install_it(rllib_run, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ConfigError, match=r"needs Ray: pip install 'blis-gym\[distributed\]'"):
        TrainedAgent.load(rllib_run)
