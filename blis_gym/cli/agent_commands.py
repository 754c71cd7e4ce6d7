"""``blis train`` and ``blis evaluate`` (need the ``rl`` extra: stable-baselines3 and torch)."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Optional

import typer

from ..config import yamlio
from ..errors import ConfigError
from ..plan import cli_flags

ROUTING_ENV = "blis_gym/Routing-v0"


def _need_rl() -> None:
    try:
        import stable_baselines3  # noqa: F401
    except ImportError:
        raise ConfigError("this command needs the rl extra: pip install 'blis-gym[rl]'") from None


def _overrides(items: list[str]) -> dict:
    """``--set key=value`` pairs (values read as YAML scalars) for the scenario."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set num_requests=500")
        out[key.strip()] = yamlio.parse(value, f"--set {key.strip()}")
    return out


def train_cmd(
    out: str = typer.Option(..., "--out", help="Folder for model.zip, config.yaml, vecnormalize.pkl, checkpoints/ and tb/ (TensorBoard)."),
    algo: Optional[str] = typer.Option(None, "--algo", help="ppo (default), a2c, dqn, or dagger (imitation of the lookahead oracle; --timesteps caps its labels): trains with the shipped recipe configs/agents/ALGO.yaml."),
    config: str = typer.Option("", "--config", help="Agent config: a shipped recipe (ppo, ppo-plain, ppo-prefix, a2c, dqn, dagger) or a YAML file."),
    env: str = typer.Option(ROUTING_ENV, "--env", help="blis_gym/Routing-v0, blis_gym/Admission-v0 or blis_gym/AdmissionRouting-v0."),
    scenario: str = typer.Option("default", "--scenario", help="A shipped scenario (default, prefix-heavy, overload, stale-signals) or a YAML file."),
    timesteps: int = typer.Option(100_000, "--timesteps", help="Environment steps (decisions) to train for."),
    seed: int = typer.Option(0, "--seed", help="Seed of the model and of the first training workloads."),
    n_envs: Optional[int] = typer.Option(None, "--n-envs", help="Parallel environments (default: the config's)."),
    subproc: bool = typer.Option(False, "--subproc", help="Run the parallel environments in subprocesses."),
    torch_threads: int = typer.Option(1, "--torch-threads", help="Threads for torch (1 is fastest for these small networks)."),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help="Progress bar (default: on a terminal)."),
) -> None:
    """Train a stable-baselines3 agent; Ctrl-C saves the model as it is."""
    _need_rl()
    from ..agents.config import load_agent_config
    from ..agents.train import train

    cfg = load_agent_config(config or algo or "ppo")
    if config and algo and algo != cfg.algo:
        raise ConfigError(f"--algo {algo} disagrees with --config {config} (algo: {cfg.algo})")
    report = train(cfg, env_id=env, scenario=scenario, timesteps=timesteps, seed=seed, out=Path(out),
                   n_envs=n_envs, subproc=subproc, torch_threads=torch_threads, progress=sys.stderr.isatty() if progress is None else progress,
                   log=lambda msg: print(msg, file=sys.stderr))
    state = "interrupted" if report.interrupted else "done"
    print(f"{state}: {report.steps} steps in {report.seconds:.1f} s ({report.steps_per_second:.0f} steps/s); "
          f"model: {report.out / 'model.zip'}")


def evaluate_cmd(
    agent: list[str] = typer.Option([], "--agent", help="A model.zip (or its folder), or baseline:NAME; repeatable."),
    baselines: str = typer.Option("all", "--baselines", help="all, none, or comma-separated baseline names."),
    env: str = typer.Option(ROUTING_ENV, "--env", help="The environment the agents play."),
    scenario: str = typer.Option("default", "--scenario", help="A shipped scenario or a YAML file."),
    episodes: int = typer.Option(5, "--episodes", help="Episodes per policy (workload seeds SEED, SEED+1, ...)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="First workload seed (default: 2**30, never drawn in training)."),
    out: str = typer.Option(".", "--out", help="Folder for results.json, results.csv and results.png."),
    set_: list[str] = typer.Option([], "--set", help="Scenario override key=value (e.g. num_requests=500); repeatable."),
) -> None:
    """Play trained agents and baselines on the same episodes; print a table, write results files."""
    from ..envs.cluster_env import HELD_OUT_SEED
    from ..envs.scenario import load_scenario

    if any(not a.startswith("baseline:") for a in agent):
        _need_rl()
    from ..agents.evaluate import evaluate, table, write_results

    first = HELD_OUT_SEED if seed is None else seed
    overrides = _overrides(set_)
    shown = {"n": 0}

    def progress(name: str, k: int) -> None:
        if sys.stderr.isatty():
            shown["n"] += 1
            sys.stderr.write(f"\r{name}: episode {k}/{episodes}   ")
            sys.stderr.flush()

    results = evaluate(env, scenario, agent, baselines, episodes, first, overrides, progress)
    if shown["n"]:
        sys.stderr.write("\n")
    sys.stdout.write(table(results))
    # The blis run arguments of the first episode's workload (the next episodes add 1 to --seed);
    # add --routing-policy rl --routing-model MODEL to replay an agent's episode headless.
    run = replace(load_scenario(scenario, **overrides).run, seed=first)
    meta = {"env": env, "scenario": scenario, "overrides": overrides, "episodes": episodes, "first_seed": first,
            "blis_run_args": cli_flags(run)}
    for path in write_results(results, Path(out), meta):
        print(f"wrote {path}", file=sys.stderr)
