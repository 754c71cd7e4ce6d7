"""DAgger (``blis train --algo dagger``): imitation of the lookahead oracle saves a usable model."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml
from testkit import trained_twice

from blis_gym.agents.config import Dagger, load_agent_config, parse_agent_config
from blis_gym.agents.dagger import betas
from blis_gym.agents.evaluate import evaluate
from blis_gym.agents.model import TrainedAgent
from blis_gym.agents.train import train
from blis_gym.baselines import make_baseline
from blis_gym.envs.cluster_env import HELD_OUT_SEED
from blis_gym.envs.observation import observation_size
from blis_gym.envs.scenario import load_scenario
from blis_gym.errors import ConfigError
from blis_gym.plan import cli_flags

ROUTING = "blis_gym/Routing-v0"
SMALL = {"num_requests": 40, "num_instances": 2}


def tiny(tmp: Path, **dagger) -> Path:
    doc = {
        "algo": "dagger",
        "n_envs": 1,
        "env": dict(SMALL),
        "policy_kwargs": {"net_arch": [32]},
        "dagger": {
            "teacher": "lookahead",
            "iterations": 2,
            "episodes": 1,
            "epochs": 150,
            "learning_rate": 0.003,
            "batch_size": 32,
            "validation_episodes": 1,
            **dagger,
        },
    }
    path = tmp / "dagger-tiny.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture(scope="module")
def dagger_run(tmp_path_factory):
    """A tiny DAgger run through the CLI: (run folder, stdout, stderr)."""
    from blis_gym.cli.app import main

    tmp = tmp_path_factory.mktemp("dagger")
    out = tmp / "run"
    import contextlib
    import io

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            main(["train", "--config", str(tiny(tmp)), "--seed", "5", "--out", str(out), "--no-progress"])
        except SystemExit as exc:
            assert not exc.code, stderr.getvalue()
    return out, stdout.getvalue(), stderr.getvalue()


def test_a_dagger_run_saves_a_model_that_reloads_and_imitates_its_teacher(dagger_run):
    out, stdout, stderr = dagger_run
    assert stdout.startswith("done: 80 steps")  # 2 iterations x 1 episode x 40 labelled decisions
    for name in ("model.zip", "config.yaml", "vecnormalize.pkl", "dagger.csv", "dagger_data.npz"):
        assert (out / name).is_file()
    data = np.load(out / "dagger_data.npz")
    assert data["observations"].shape == (80, observation_size(2)) and set(data["actions"].tolist()) <= {0, 1}
    assert data["iteration"].tolist() == [0] * 40 + [1] * 40
    assert len(list((out / "checkpoints").glob("rl_model_*_steps.zip"))) == 2
    assert "iteration 1 episode 1/1 (seed 6)" in stderr and "learner agreed" in stderr
    meta = yaml.safe_load((out / "config.yaml").read_text())
    assert meta["algo"] == "dagger" and meta["steps_done"] == 80 and meta["interrupted"] is False
    history = meta["dagger_history"]
    assert [r["iteration"] for r in history] == [0, 1] and [r["beta"] for r in history] == [1.0, 0.5]
    assert meta["selected_iteration"] in (0, 1) and all("validation_ttft_p99_ms" in r for r in history)

    agent = TrainedAgent.load(out)
    assert type(agent.model).__name__ == "PPO" and agent.obs_stats is not None
    # It agrees with the teacher on most of the states it was trained on (iteration 0: seed 5).
    env = gym.make(ROUTING, **SMALL)
    teacher = make_baseline("lookahead", env)
    obs, _ = env.reset(seed=5)
    agree = n = 0
    done = False
    while not done:
        mine, want = agent.act(obs), int(teacher.predict(obs)[0])
        assert 0 <= mine < 2
        agree += mine == want
        n += 1
        obs, _, terminated, truncated, _ = env.step(want)
        done = terminated or truncated
    assert n == 40 and agree / n >= 0.75, f"agreement {agree}/{n}"


def test_a_dagger_model_plays_in_evaluate_and_in_blis_run(blis, dagger_run, tmp_path):
    out, _, _ = dagger_run
    [res] = evaluate(
        ROUTING, "default", [str(out / "model.zip")], "none", episodes=1, seed=HELD_OUT_SEED, overrides=SMALL
    )
    flags = cli_flags(replace(load_scenario("default", **SMALL).run, seed=HELD_OUT_SEED))
    results = tmp_path / "r.json"
    code, _, err = blis(
        "run", *flags, "--routing-policy", "rl", "--routing-model", str(out), "--results-path", str(results)
    )
    assert code == 0, err
    cluster = json.loads(results.read_text())
    cluster = cluster.get("cluster", cluster)
    assert cluster["ttft_p99_ms"] == res.episodes[0]["ttft_p99_ms"]


def test_dagger_is_deterministic_for_a_seed_and_ctrl_c_saves(tmp_path, monkeypatch):
    from blis_gym.agents import bc

    cfg = load_agent_config(tiny(tmp_path, epochs=5, validation_episodes=0))
    a, b = trained_twice(cfg, tmp_path, timesteps=1000, seed=2)
    assert np.array_equal(a.obs_stats.obs_rms.mean, b.obs_stats.obs_rms.mean)

    # Ctrl-C during the second training: the first iteration's model is saved.
    real_fit, calls = bc.fit, []

    def fit(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(bc, "fit", fit)
    report = train(
        cfg,
        env_id=ROUTING,
        scenario="default",
        timesteps=1000,
        seed=2,
        out=tmp_path / "c",
        progress=False,
        log=lambda _: None,
    )
    assert report.interrupted and report.steps == 80
    meta = yaml.safe_load((tmp_path / "c" / "config.yaml").read_text())
    assert meta["interrupted"] is True and meta["selected_iteration"] == 0
    c = TrainedAgent.load(tmp_path / "c")
    first = TrainedAgent.load(sorted((tmp_path / "a" / "checkpoints").glob("rl_model_40_steps.zip"))[0])
    for pc, pf in zip(c.model.policy.parameters(), first.model.policy.parameters()):
        assert np.array_equal(pc.detach().numpy(), pf.detach().numpy())


def test_timesteps_caps_the_labels(tmp_path):
    cfg = load_agent_config(tiny(tmp_path, epochs=1, iterations=5, validation_episodes=0))
    report = train(
        cfg,
        env_id=ROUTING,
        scenario="default",
        timesteps=50,
        seed=0,
        out=tmp_path / "run",
        progress=False,
        log=lambda _: None,
    )
    assert report.steps == 80  # stops before the iteration after the one that reached 50


def test_the_shipped_recipe_and_the_beta_schedule():
    cfg = load_agent_config("dagger")
    assert cfg.algo == "dagger" and cfg.dagger.teacher == "lookahead" and cfg.normalize_observations
    assert betas(Dagger(iterations=4, beta=0.5, beta_decay=0.5)) == [1.0, 0.5, 0.25, 0.125]


@pytest.mark.parametrize(
    "doc,needle",
    [
        ({"algo": "ppo", "dagger": {"iterations": 2}}, "dagger: applies to algo dagger, not ppo"),
        ({"algo": "dagger", "dagger": {"iteratons": 2}}, "dagger: unknown key(s) iteratons"),
        ({"algo": "dagger", "dagger": {"iterations": 0}}, "dagger: iterations: expected an integer >= 1, got 0"),
        ({"algo": "dagger", "dagger": {"episodes": 1.5}}, "dagger: episodes: expected an integer >= 1"),
        ({"algo": "dagger", "dagger": {"beta": 1.5}}, "dagger: beta: expected a number in [0, 1], got 1.5"),
        ({"algo": "dagger", "dagger": {"learning_rate": "fast"}}, "dagger: learning_rate: expected a number > 0"),
        ({"algo": "dagger", "dagger": {"teacher": 3}}, "dagger: teacher: expected a baseline name"),
        ({"algo": "dagger", "dagger": [1]}, "dagger: expected a mapping"),
        ({"algo": "dagger", "warm_start": {"baseline": "least-loaded"}}, "warm_start: not used by algo dagger"),
        ({"algo": "dagger", "hyperparameters": {"n_steps": 8}}, "hyperparameters: not used by algo dagger"),
    ],
)
def test_bad_dagger_recipes_fail_with_one_line(blis, tmp_path, doc, needle):
    with pytest.raises(ConfigError) as exc:
        parse_agent_config(doc, "agent config x.yaml")
    assert needle in str(exc.value)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc))
    code, out, err = blis("train", "--config", str(path), "--out", str(tmp_path / "run"))
    assert code == 2 and out == "" and needle in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    "dagger,needle",
    [
        ({"teacher": "fastest"}, "dagger: teacher: unknown baseline 'fastest'"),
        ({"validation_seed": 1, "validation_episodes": 1}, "overlap the validation seeds"),
        ({"policy_kwargs": {"net_arch": "wide"}}, "policy or policy_kwargs"),
    ],
)
def test_bad_dagger_runs_fail_with_one_line(blis, tmp_path, dagger, needle):
    path = tiny(tmp_path, **{k: v for k, v in dagger.items() if k != "policy_kwargs"})
    if "policy_kwargs" in dagger:
        doc = yaml.safe_load(path.read_text())
        doc["policy_kwargs"] = dagger["policy_kwargs"]
        path.write_text(yaml.safe_dump(doc))
    code, out, err = blis("train", "--config", str(path), "--out", str(tmp_path / "run"))
    assert code == 2 and out == "" and needle in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
