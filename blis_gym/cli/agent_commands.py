"""``blis train`` and ``blis evaluate`` (need the ``rl`` extra: stable-baselines3 and torch; RLlib
training and ``--ray`` need the ``distributed`` extra too)."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Optional

import typer

from .. import ENV_IDS
from ..config import yamlio
from ..config.datafiles import shipped_names
from ..distributed import need_ray
from ..errors import ConfigError
from ..plan.options import cli_flags

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


BACKENDS = ("sb3", "rllib")


def train_cmd(
    out: str = typer.Option(
        ...,
        "--out",
        help=(
            "Folder for model.zip, config.yaml, vecnormalize.pkl, checkpoints/ and tb/ "
            "(TensorBoard); with --backend rllib: config.yaml, rllib_checkpoint/ and metrics.csv."
        ),
    ),
    algo: Optional[str] = typer.Option(
        None,
        "--algo",
        help=(
            "ppo (default), a2c, dqn, or dagger (imitation of the lookahead oracle; --timesteps caps "
            "its labels): trains with the shipped recipe configs/agents/ALGO.yaml."
        ),
    ),
    config: str = typer.Option(
        "",
        "--config",
        help=f"Agent config: a shipped recipe ({', '.join(shipped_names('agents'))}) or a YAML file.",
    ),
    env: str = typer.Option(ROUTING_ENV, "--env", help=f"The environment: {', '.join(ENV_IDS)}."),
    scenario: str = typer.Option(
        "default",
        "--scenario",
        help=f"A shipped scenario ({', '.join(shipped_names('scenarios'))}) or a YAML file.",
    ),
    timesteps: int = typer.Option(100_000, "--timesteps", help="Environment steps (decisions) to train for."),
    seed: int = typer.Option(0, "--seed", help="Seed of the model and of the first training workloads."),
    n_envs: Optional[int] = typer.Option(
        None, "--n-envs", help="Parallel environments (default: the config's); with --backend rllib, per env runner."
    ),
    subproc: bool = typer.Option(
        False, "--subproc", help="Run the parallel environments in subprocesses (--backend sb3)."
    ),
    torch_threads: int = typer.Option(
        1, "--torch-threads", help="Threads for torch (1 is fastest for these small networks)."
    ),
    progress: Optional[bool] = typer.Option(
        None,
        "--progress/--no-progress",
        help="Progress bar (default: on a terminal); with --backend rllib, a line per iteration.",
    ),
    backend: str = typer.Option(
        "sb3", "--backend", help="sb3 (stable-baselines3: ppo, a2c, dqn, dagger) or rllib (Ray RLlib: ppo)."
    ),
    env_runners: Optional[int] = typer.Option(
        None,
        "--env-runners",
        help="--backend rllib: RLlib env runner actors, one CPU each (default 1; 0 samples in this process).",
    ),
    address: str = typer.Option(
        "",
        "--address",
        help="--backend rllib: a Ray cluster to join (HOST:PORT, ray://HOST:PORT or auto; default: an embedded Ray).",
    ),
) -> None:
    """Train an agent (stable-baselines3, or RLlib PPO with --backend rllib); Ctrl-C saves it as it is."""
    if backend not in BACKENDS:
        raise ConfigError(f"--backend: unknown backend {backend!r} (valid: {', '.join(BACKENDS)})")
    log = lambda msg: print(msg, file=sys.stderr)  # noqa: E731
    show = sys.stderr.isatty() if progress is None else progress
    if backend == "rllib":
        _train_rllib(
            out,
            algo,
            config,
            env,
            scenario,
            timesteps,
            seed,
            n_envs,
            subproc,
            torch_threads,
            show,
            env_runners,
            address,
            log,
        )
        return
    for flag, value in (("--env-runners", env_runners), ("--address", address or None)):
        if value is not None:
            raise ConfigError(f"{flag} is used only with --backend rllib")
    _need_rl()
    from ..agents.config import load_agent_config  # lazy, as every RL import here: gymnasium and torch
    from ..agents.train import train

    cfg = load_agent_config(config or algo or "ppo")
    if config and algo and algo != cfg.algo:
        raise ConfigError(f"--algo {algo} disagrees with --config {config} (algo: {cfg.algo})")
    report = train(
        cfg,
        env_id=env,
        scenario=scenario,
        timesteps=timesteps,
        seed=seed,
        out=Path(out),
        n_envs=n_envs,
        subproc=subproc,
        torch_threads=torch_threads,
        progress=show,
        log=log,
    )
    state = "interrupted" if report.interrupted else "done"
    print(
        f"{state}: {report.steps} steps in {report.seconds:.1f} s ({report.steps_per_second:.0f} steps/s); "
        f"model: {report.out / 'model.zip'}"
    )


def _train_rllib(
    out: str,
    algo: Optional[str],
    config: str,
    env: str,
    scenario: str,
    timesteps: int,
    seed: int,
    n_envs: Optional[int],
    subproc: bool,
    torch_threads: int,
    progress: bool,
    env_runners: Optional[int],
    address: str,
    log,
) -> None:
    """``blis train --backend rllib``: PPO from the agent config, trained by RLlib."""
    if algo is not None and algo != "ppo":
        raise ConfigError(
            f"--algo {algo}: --backend rllib trains ppo only (valid: ppo; use --backend sb3 for a2c, dqn and dagger)"
        )
    if subproc:
        raise ConfigError("--subproc is used only with --backend sb3 (RLlib runs its envs in --env-runners)")
    try:
        import torch  # noqa: F401  (RLlib's policies here are torch modules)
    except ImportError:
        raise ConfigError("blis train --backend rllib needs torch: pip install 'blis-gym[rl,distributed]'") from None
    from ..agents.config import load_agent_config
    from ..agents.rllib_backend import CHECKPOINT_DIR, train_rllib

    need_ray("blis train --backend rllib")
    cfg = load_agent_config(config or "ppo")
    report = train_rllib(
        cfg,
        env_id=env,
        scenario=scenario,
        timesteps=timesteps,
        seed=seed,
        out=Path(out),
        env_runners=1 if env_runners is None else env_runners,
        n_envs=n_envs,
        address=address,
        torch_threads=torch_threads,
        progress=progress,
        log=log,
    )
    state = "interrupted" if report.interrupted else "done"
    print(
        f"{state}: {report.steps} steps in {report.seconds:.1f} s ({report.steps_per_second:.0f} steps/s); "
        f"checkpoint: {report.out / CHECKPOINT_DIR}"
    )


def evaluate_cmd(
    agent: list[str] = typer.Option(
        [],
        "--agent",
        help="A model.zip or the folder blis train wrote (either --backend), or baseline:NAME; repeatable.",
    ),
    baselines: str = typer.Option("all", "--baselines", help="all, none, or comma-separated baseline names."),
    env: str = typer.Option(ROUTING_ENV, "--env", help="The environment the agents play."),
    scenario: str = typer.Option(
        "default", "--scenario", help=f"A shipped scenario ({', '.join(shipped_names('scenarios'))}) or a YAML file."
    ),
    episodes: int = typer.Option(5, "--episodes", help="Episodes per policy (workload seeds SEED, SEED+1, ...)."),
    seed: Optional[int] = typer.Option(
        None, "--seed", help="First workload seed (default: 2**30, never drawn in training)."
    ),
    out: str = typer.Option(".", "--out", help="Folder for results.json, results.csv and results.png."),
    set_: list[str] = typer.Option(
        [], "--set", help="Scenario override key=value (e.g. num_requests=500); repeatable."
    ),
    use_ray: bool = typer.Option(
        False, "--ray", help="Play the episodes as Ray tasks (the distributed extra); same results."
    ),
    address: str = typer.Option(
        "",
        "--address",
        help="With --ray: a Ray cluster to join (HOST:PORT, ray://HOST:PORT or auto; default: an embedded Ray).",
    ),
    workers: Optional[int] = typer.Option(
        None, "--workers", help="With --ray: CPUs of the embedded Ray (default: every core)."
    ),
    slo_ttft: str = typer.Option(
        "", "--slo-ttft", help="Goodput TTFT limits per SLO class (class=duration,...): adds goodput columns."
    ),
    slo_itl: str = typer.Option("", "--slo-itl", help="Goodput mean-ITL limits per SLO class."),
    slo_e2e: str = typer.Option("", "--slo-e2e", help="Goodput E2E limits per SLO class."),
) -> None:
    """Play trained agents and baselines on the same episodes; print a table, write results files."""
    from ..envs.cluster_env import HELD_OUT_SEED
    from ..envs.scenario import load_scenario

    if any(not a.startswith("baseline:") for a in agent):
        _need_rl()
    from ..agents.evaluate import evaluate, table, write_results

    first = HELD_OUT_SEED if seed is None else seed
    overrides = _overrides(set_)
    for key, value in (("slo_ttft", slo_ttft), ("slo_itl", slo_itl), ("slo_e2e", slo_e2e)):
        if value:
            overrides[key] = value
    shown = {"n": 0}

    def progress(name: str, k: int) -> None:
        if sys.stderr.isatty():
            shown["n"] += 1
            sys.stderr.write(f"\r{name}: episode {k}/{episodes}   ")
            sys.stderr.flush()

    if use_ray:
        need_ray("blis evaluate --ray")
    results = evaluate(
        env,
        scenario,
        agent,
        baselines,
        episodes,
        first,
        overrides,
        progress,
        use_ray=use_ray,
        address=address,
        workers=workers,
    )
    if shown["n"]:
        sys.stderr.write("\n")
    sys.stdout.write(table(results))
    # The blis run arguments of the first episode's workload (the next episodes add 1 to --seed);
    # add --routing-policy rl --routing-model MODEL to replay an agent's episode headless.
    run = replace(load_scenario(scenario, **overrides).run, seed=first)
    meta = {
        "env": env,
        "scenario": scenario,
        "overrides": overrides,
        "episodes": episodes,
        "first_seed": first,
        "blis_run_args": cli_flags(run),
    }
    for path in write_results(results, Path(out), meta):
        print(f"wrote {path}", file=sys.stderr)
