"""A tiny RLlib PPO run on Routing-v0, trained once per test session through ``blis train``.

test_rllib.py and test_evaluate_ray.py both use it; RLlib takes 10-20 s to start its actors
on two cores, so the run is trained once and shared (call it from a fixture that uses
``ray_local``, so the command joins the session's Ray instead of starting one).
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

import yaml

from blis_gym.cli.app import main

ROUTING = "blis_gym/Routing-v0"
SMALL = {"num_requests": 60}
TIMESTEPS = 384  # three iterations of 128 steps


@dataclass(frozen=True)
class CliRun:
    code: int
    out: str
    err: str


def run_cli(*args: str) -> CliRun:
    """``blis ARGS...`` in this process, its stdout and stderr captured."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return CliRun(code, out.getvalue(), err.getvalue())


def tiny_ppo_config(folder: Path) -> Path:
    """A PPO recipe whose RLlib iterations take a fraction of a second: 128 steps, 60-request episodes."""
    doc = {
        "algo": "ppo",
        "n_envs": 1,
        "normalize_observations": False,
        "checkpoint_every": 0,
        "env": {"reward": "ttft", **SMALL},
        "policy_kwargs": {"net_arch": [16]},
        "hyperparameters": {"n_steps": 128, "batch_size": 64, "n_epochs": 2, "learning_rate": 0.001, "gamma": 0.9},
    }
    path = folder / "ppo-tiny.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


_RUNS: dict[str, tuple[Path, CliRun]] = {}


def trained_rllib_run(tmp_path_factory) -> tuple[Path, CliRun]:
    """(run folder, the training command's result): trained on the first call of the session."""
    if "routing" not in _RUNS:
        tmp = tmp_path_factory.mktemp("rllib")
        run = tmp / "run"
        result = run_cli(
            "train",
            "--backend",
            "rllib",
            "--config",
            str(tiny_ppo_config(tmp)),
            "--env",
            ROUTING,
            "--timesteps",
            str(TIMESTEPS),
            "--seed",
            "3",
            "--env-runners",
            "1",
            "--out",
            str(run),
            "--no-progress",
        )
        _RUNS["routing"] = (run, result)
    return _RUNS["routing"]
