"""``blis evaluate --ray``: the same episodes as Ray tasks give exactly the serial results."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="needs the distributed extra (pip install 'blis-gym[distributed]')")
pytest.importorskip("stable_baselines3", reason="needs the rl extra")

from testkit.rllib import ROUTING, SMALL, trained_rllib_run

from blis_gym.agents.config import parse_agent_config
from blis_gym.agents.evaluate import evaluate, results_csv, table
from blis_gym.agents.train import train
from blis_gym.envs.cluster_env import HELD_OUT_SEED


@pytest.fixture(scope="module")
def sb3_model(tmp_path_factory) -> Path:
    """A tiny stable-baselines3 PPO router (normalised observations, so the saved statistics matter)."""
    tmp = tmp_path_factory.mktemp("sb3")
    cfg = parse_agent_config(
        {
            "algo": "ppo",
            "n_envs": 2,
            "env": {"reward": "ttft", **SMALL},
            "policy_kwargs": {"net_arch": [16]},
            "checkpoint_every": 0,
            "hyperparameters": {"n_steps": 64, "batch_size": 64, "n_epochs": 2},
        },
        "test",
    )
    train(
        cfg,
        env_id=ROUTING,
        scenario="default",
        timesteps=256,
        seed=5,
        out=tmp / "run",
        progress=False,
        log=lambda _: None,
    )
    return tmp / "run"


@pytest.fixture(scope="module")
def rllib_model(ray_local, tmp_path_factory) -> Path:
    run, result = trained_rllib_run(tmp_path_factory)
    assert result.code == 0, result.err
    return run


def _same(serial, parallel) -> None:
    assert [r.name for r in parallel] == [r.name for r in serial]
    for s, p in zip(serial, parallel):
        assert p.episodes == s.episodes and p.ttfts_ms == s.ttfts_ms
    assert table(parallel) == table(serial) and results_csv(parallel) == results_csv(serial)


def test_ray_evaluation_equals_serial_for_baselines_and_trained_agents(ray_local, sb3_model, rllib_model):
    agents = [str(sb3_model), str(rllib_model), "baseline:round-robin"]
    kw = dict(baselines="least-loaded,weighted", episodes=3, seed=HELD_OUT_SEED, overrides=SMALL)
    serial = evaluate(ROUTING, "default", agents, **kw)
    seen: list[tuple[str, int]] = []
    parallel = evaluate(ROUTING, "default", agents, **kw, progress=lambda name, k: seen.append((name, k)), use_ray=True)
    _same(serial, parallel)
    assert len(serial) == 5 and all(len(r.episodes) == 3 for r in serial)
    # The policies differ, so equal results are not an accident of identical play.
    assert len({r.summary()["ttft_p99_ms"] for r in serial}) > 2
    # Progress reports reach every policy's last episode.
    assert {name: max(k for n, k in seen if n == name) for name, _ in seen} == {r.name: 3 for r in serial}


def test_several_tasks_per_policy_are_put_back_in_order(ray_local, sb3_model):
    # One policy, 5 episodes on 2 CPUs: tasks of 2, 2 and 1 episodes.
    kw = dict(baselines="none", episodes=5, seed=17, overrides=SMALL)
    serial = evaluate(ROUTING, "default", [str(sb3_model)], **kw)
    parallel = evaluate(ROUTING, "default", [str(sb3_model)], **kw, use_ray=True)
    _same(serial, parallel)
    assert [e["seed"] for e in parallel[0].episodes] == list(range(17, 22))


def test_blis_evaluate_ray_writes_the_serial_files(ray_local, blis, sb3_model, tmp_path, monkeypatch):
    monkeypatch.chdir(sb3_model.parent)  # a relative model path: the tasks get it absolute
    common = ["--agent", sb3_model.name, "--baselines", "least-loaded", "--episodes", "2", "--set", "num_requests=60"]
    code, serial_out, err = blis("evaluate", *common, "--out", str(tmp_path / "serial"))
    assert code == 0, err
    code, ray_out, err = blis("evaluate", *common, "--ray", "--out", str(tmp_path / "ray"))
    assert code == 0, err
    assert ray_out == serial_out and serial_out.splitlines()[2].split()[0] == sb3_model.name
    for name in ("results.json", "results.csv"):
        assert (tmp_path / "ray" / name).read_text() == (tmp_path / "serial" / name).read_text()


def test_ray_flags_fail_clearly(blis, tmp_path):
    code, out, err = blis("evaluate", "--baselines", "least-loaded", "--address", "127.0.0.1:1", "--out", str(tmp_path))
    assert code == 2 and "--address is used only with --ray" in err
    code, out, err = blis("evaluate", "--baselines", "least-loaded", "--workers", "2", "--out", str(tmp_path))
    assert code == 2 and "--workers is used only with --ray" in err
    assert not (tmp_path / "results.json").exists()


def test_an_unreachable_cluster_fails_fast_with_one_error_line(tmp_path):
    # A fresh process: in this one the session's Ray may already be connected (and would be used).
    started = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "blis_gym",
            "evaluate",
            "--ray",
            "--address",
            "127.0.0.1:1",
            "--baselines",
            "least-loaded",
            "--episodes",
            "1",
            "--set",
            "num_requests=60",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.perf_counter() - started
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --address 127.0.0.1:1: cannot connect"), proc.stderr
    assert proc.stdout == "" and not (tmp_path / "results.json").exists()
    assert elapsed < 30  # the TCP check, not Ray's minutes of retries


def test_without_ray_the_commands_say_how_to_install_it(blis, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets without the extra
    code, out, err = blis("evaluate", "--ray", "--baselines", "least-loaded", "--out", str(tmp_path))
    assert code == 2 and out == "" and "blis evaluate --ray needs Ray: pip install 'blis-gym[distributed]'" in err
    code, out, err = blis("train", "--backend", "rllib", "--out", str(tmp_path / "x"))
    assert code == 2 and "blis train --backend rllib needs Ray: pip install 'blis-gym[distributed]'" in err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "env_id, scenario, baselines, overrides",
    [
        ("blis_gym/Disaggregation-v0", "pd-mixed", "never,always", {"num_requests": 150}),
        ("blis_gym/Autoscaling-v0", "autoscale-day", "saturation,fixed", {"num_requests": 600}),
    ],
)
def test_the_cluster_shape_envs_evaluate_on_ray_as_serially(ray_local, env_id, scenario, baselines, overrides):
    kw = dict(baselines=baselines, episodes=2, seed=HELD_OUT_SEED, overrides=overrides)
    _same(evaluate(env_id, scenario, [], **kw), evaluate(env_id, scenario, [], **kw, use_ray=True))
