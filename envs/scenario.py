"""Scenarios: a ``blis run`` configuration plus the environment's own options.

A scenario is a flat YAML mapping in ``configs/scenarios/`` (or any file).
Keys are either ``blis run`` options, named like the CLI flags with
underscores (``num_instances``, ``rate``, ``routing_policy``...), or env
options (:class:`EnvOptions`). Keyword arguments to ``gym.make`` override
single keys the same way. Everything is validated once, here, and errors
name the scenario and the key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Mapping, Optional, Union

from ..config import yamlio
from ..config.datafiles import shipped_dir, shipped_names
from ..config.fitness import parse_fitness_weights
from ..config.pool import pool_text
from ..errors import BlisError, ConfigError
from ..plan import RunOptions, RunPlan, resolve
from ..plan.options import FILE_OPTIONS, coerce_option, option_types, resolve_paths
from ..policies.scorers import parse_scorers
from .rewards import TIME_REWARDS

REWARDS = ("regret", "fitness", *TIME_REWARDS, "lookahead", "goodput")
DEFAULT_SCENARIO = "default"
RUN_KEYS = FILE_OPTIONS


@dataclass(frozen=True)
class EnvOptions:
    """How the environment pays the agent.

    * ``reward``: ``regret`` (per routing decision, minus the regret of the
      chosen instance under the ``regret_scorers`` profile), ``fitness`` (the
      episode's fitness score under ``fitness_weights``, paid at the end) or
      ``time-in-system`` (per decision, minus the request-seconds spent in the
      system since the previous decision, divided by ``time_scale``) or ``ttft``
      (the same for request-seconds spent waiting for a first token: the return
      is minus the sum of TTFTs) or ``lookahead`` (per routing decision, minus the
      request-seconds the choice loses against the best one, by simulating each:
      the scenario's ``lookahead_*`` settings; privileged, for training) or
      ``goodput`` (+1 per request meeting its class's SLO targets, the run's
      ``slo_ttft``/``slo_itl``/``slo_e2e`` or its spec's ``goodput_slo_targets``).
    * ``rejection_penalty``: subtracted for each request the agent rejects.
      ``None`` picks a default per reward (:func:`default_rejection_penalty`).
    * ``cache_observation``: each instance's observation gains ``cached_prefix``
      (what its real KV cache holds of the request; see :mod:`blis_gym.envs.observation`).
    * ``gpu_cost`` (Autoscaling-v0): reward units subtracted per GPU-second the instances
      hold, the trade-off against the time reward; ``slo_ttft_ms``: the TTFT its metrics
      count as met (``slo_attainment``; 0 = not reported).
    """

    reward: str = "regret"
    regret_scorers: str = ""  # "" = the weighted default profile
    fitness_weights: str = "throughput:1,p99_ttft:1,mean_e2e:1"
    rejection_penalty: Optional[float] = None
    time_scale: float = 1.0  # request-seconds per reward unit
    cache_observation: bool = False
    # Autoscaling-v0: reward units lost per GPU-second, and the TTFT SLO its metrics report.
    gpu_cost: float = 0.0
    slo_ttft_ms: float = 0.0

    def validate(self, where: str) -> None:
        if self.reward not in REWARDS:
            raise ConfigError(f"{where}: reward: unknown reward {self.reward!r} (valid: {', '.join(REWARDS)})")
        parse_scorers(self.regret_scorers, f"{where}: regret_scorers")
        if not self.fitness_weights:
            raise ConfigError(f"{where}: fitness_weights: must name at least one key:weight")
        parse_fitness_weights(self.fitness_weights, f"{where}: fitness_weights")
        if self.rejection_penalty is not None and not (
            self.rejection_penalty >= 0 and math.isfinite(self.rejection_penalty)
        ):
            raise ConfigError(f"{where}: rejection_penalty must be a finite number >= 0, got {self.rejection_penalty}")
        if not (self.time_scale > 0 and math.isfinite(self.time_scale)):
            raise ConfigError(f"{where}: time_scale must be a finite number > 0, got {self.time_scale}")
        for key in ("gpu_cost", "slo_ttft_ms"):
            value = getattr(self, key)
            if not (value >= 0 and math.isfinite(value)):
                raise ConfigError(f"{where}: {key} must be a finite number >= 0, got {value}")


ENV_KEYS: tuple[str, ...] = tuple(f.name for f in fields(EnvOptions))


def default_rejection_penalty(opts: EnvOptions, num_requests: int) -> float:
    """Per rejection: the largest possible regret (1.0); ten request-seconds; or, for fitness,
    the sum of the weights spread over the workload (rejecting everything then costs at least
    what a perfect latency score could gain)."""
    if opts.rejection_penalty is not None:
        return opts.rejection_penalty
    if opts.reward == "regret":
        return 1.0
    if opts.reward in TIME_REWARDS or opts.reward == "lookahead":
        return 10.0 / opts.time_scale
    if opts.reward == "goodput":
        return 0.0  # a rejected request earns nothing: that is its cost
    total = sum(parse_fitness_weights(opts.fitness_weights).values())
    return total / max(num_requests, 1)


@dataclass(frozen=True)
class Scenario:
    """A validated scenario: its ``blis run`` options, the resolved plan and the env options."""

    name: str
    description: str
    run: RunOptions
    env: EnvOptions
    plan: RunPlan  # the run resolved for ``run.seed`` (config and first workload)


def scenario_dir():
    return shipped_dir("scenarios")


def scenario_names() -> list[str]:
    """Scenarios shipped with the package."""
    return shipped_names("scenarios")


def _read(name_or_path: Union[str, Path]) -> tuple[str, Mapping[str, Any]]:
    """(display name, raw mapping) of a shipped scenario name or a YAML file path; a file's
    relative paths are made relative to its folder."""
    text: Optional[str] = None
    name = str(name_or_path)
    folder: Optional[Path] = None
    if name in scenario_names():
        text = (scenario_dir() / f"{name}.yaml").read_text("utf-8")
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise ConfigError(
                f"scenario {name!r}: no such file or shipped scenario (shipped: {', '.join(scenario_names())})"
            )
        try:
            text = path.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"scenario {name}: cannot read ({exc})") from None
        folder = path.resolve().parent
    doc = yamlio.parse(text, f"scenario {name}")
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError(f"scenario {name}: expected a mapping of option: value")
    if folder is not None:
        doc = resolve_paths(doc, folder)
    return name, doc


_TYPES = {**option_types(RunOptions), **option_types(EnvOptions)}


def _coerce(where: str, key: str, value: Any) -> Any:
    return coerce_option(f"{where}: {key}", _TYPES[key], value)


def load_scenario(name_or_path: Union[str, Path] = DEFAULT_SCENARIO, **overrides: Any) -> Scenario:
    """Load, override and validate a scenario; raises :class:`ConfigError` naming the bad key."""
    name, doc = _read(name_or_path)
    where = f"scenario {name}"
    values = dict(doc)
    description = values.pop("description", "")
    for source, mapping in ((where, values), (f"{where} (keyword override)", overrides)):
        for key in mapping:
            if key not in RUN_KEYS and key not in ENV_KEYS:
                raise ConfigError(
                    f"{source}: unknown option {key!r} (blis run options: "
                    f"{', '.join(RUN_KEYS)}; env options: {', '.join(ENV_KEYS)})"
                )
    values.update(overrides)
    if "instance_pool" in values:  # the YAML list form becomes the flag's string
        values["instance_pool"] = pool_text(values["instance_pool"], f"{where}: instance_pool")
    run_kw = {k: _coerce(where, k, v) for k, v in values.items() if k in RUN_KEYS}
    env_kw = {k: _coerce(where, k, v) for k, v in values.items() if k in ENV_KEYS}
    # Keys a scenario sets count as given on the command line (they beat a policy bundle's and a
    # workload spec's values); the seed always does, since it is the episode's workload seed.
    run = replace(RunOptions(log="error"), **run_kw, explicit=frozenset(run_kw) | {"seed"})
    env = EnvOptions(**env_kw)
    env.validate(where)
    try:
        plan = resolve(run)
    except BlisError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if env.reward == "goodput" and not plan.slo_targets:
        raise ConfigError(
            f"{where}: reward goodput needs SLO targets: slo_ttft, slo_itl or slo_e2e "
            "(e.g. slo_ttft: critical=100ms,standard=500ms), or a workload spec's goodput_slo_targets"
        )
    return Scenario(name, str(description), run, env, plan)


def env_for(scenario: Scenario) -> str:
    """The environment id that poses this scenario's decisions (Routing-v0 for a plain cluster)."""
    config = scenario.plan.config
    if config.pd is not None:
        return "blis_gym/Disaggregation-v0"
    if config.autoscale is not None and config.autoscale.enabled:
        return "blis_gym/Autoscaling-v0"
    return "blis_gym/Routing-v0"
