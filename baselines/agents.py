"""Every built-in BLIS policy as an agent that plays the environments.

A baseline is a heuristic, not a learner: it reads the paused decision (the
request and the router's snapshots) from the environment and asks the very
policy object ``blis run`` would use. ``predict`` follows stable-baselines3's
signature, so ``evaluate_policy`` treats baselines and trained models alike.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import replace
from typing import Any, Optional, Sequence

import numpy as np

from ..cluster.simulator import Decision
from ..config.bundle import load_policy_bundle, shipped_bundles
from ..errors import ConfigError
from ..plan import RunOptions
from ..policies import ADMISSION, PD_DECIDER, ROUTING
from ..policies.autoscaling import AUTOSCALER, StabilizationGate
from ..policies.scorers import UPSTREAM_DEFAULT_SCORERS, ScorerConfig, parse_scorers

#: Weighted profiles played as baselines of their own, beside ``weighted`` (the reference's default):
UPSTREAM_BASELINE = "weighted-upstream"  # upstream BLIS's default profile
TUNED_BASELINE = "weighted-tuned"  # the scenario's tuned profile (blis sweep tune-SCENARIO)


def tuned_profile(scenario: str) -> Optional[tuple[ScorerConfig, ...]]:
    """The shipped tuned profile of ``scenario`` (``configs/policies/tuned-SCENARIO.yaml``), if any."""
    name = f"tuned-{scenario}"
    return load_policy_bundle(name).scorers if name in shipped_bundles() else None


def _envs_of(env) -> list:
    """The unwrapped environments behind ``env``: one, or one per sub-env of a DummyVecEnv."""
    subs = getattr(env, "envs", None)  # stable-baselines3 DummyVecEnv, gymnasium SyncVectorEnv
    return [e.unwrapped for e in subs] if subs is not None else [env.unwrapped]


class Baseline:
    """Base class: one policy object per sub-environment and episode."""

    #: the environment class (in blis_gym.envs) this kind of baseline plays
    env_class = ""

    def __init__(self, name: str, env, options: dict) -> None:
        self.name = name
        self.env = env
        self.options = options
        self._envs = _envs_of(env)
        kinds = {type(e).__name__ for e in self._envs}
        if kinds != {self.env_class}:
            raise ConfigError(f"baseline {name!r} plays {self.env_class}, not {', '.join(sorted(kinds))}")
        self._live: dict[int, tuple[int, Any]] = {}  # sub-env index -> (episode, policy state)

    def _policy_options(self, u) -> dict:
        opts = u.config.policy_options()
        opts.update(self.options)
        # The env's router-side prefix index records every routing decision, which is
        # exactly what a weighted policy's own index would record: share it, once.
        opts["prefix_index"] = u.index
        return opts

    def _state_for(self, i: int):
        u = self._envs[i]
        live = self._live.get(i)
        if live is None or live[0] != u.episode:
            live = (u.episode, self._new_policies(u))
            self._live[i] = live
        return u, live[1]

    @classmethod
    def names(cls) -> list[str]:
        """The policy names this kind of baseline accepts."""
        raise NotImplementedError

    @classmethod
    def names_for(cls, env) -> list[str]:
        """The names it accepts on ``env`` (some depend on the scenario)."""
        return cls.names()

    def cli_policies(self) -> dict:
        """The ``blis run`` policy options that select this baseline's policies."""
        raise NotImplementedError

    def _new_policies(self, u) -> Any:
        raise NotImplementedError

    def _decide(self, u, policies, decision: Decision) -> int:
        raise NotImplementedError

    def predict(
        self,
        observation: np.ndarray,
        state: Optional[Any] = None,
        episode_start: Optional[np.ndarray] = None,
        deterministic: bool = True,
    ):
        """Actions for ``observation`` (one, or a batch from a vectorized env), and ``state`` unchanged."""
        obs = np.asarray(observation)
        if obs.ndim == 1 and len(self._envs) == 1:  # one env, one observation: the hot path
            u, policies = self._state_for(0)
            d = u.decision
            a = self._decide(u, policies, d) if d is not None else 0
            return (np.int64(a) if np.ndim(a) == 0 else a), state
        batched = obs.ndim == 2
        n = obs.shape[0] if batched else 1
        if n != len(self._envs):
            raise ValueError(f"got {n} observations for {len(self._envs)} environments")
        chosen = []
        for i in range(n):
            u, policies = self._state_for(i)
            d = u.decision
            # A finished episode (or one with no decision at all) takes any action.
            chosen.append(self._decide(u, policies, d) if d is not None else 0)
        if any(np.ndim(a) for a in chosen):  # MultiDiscrete: a finished episode's 0 fills its row
            width = max(np.size(a) for a in chosen)
            chosen = [a if np.ndim(a) else np.zeros(width, dtype=np.int64) for a in chosen]
        actions = np.asarray(chosen, dtype=np.int64)
        return (actions if batched else actions[0]), state

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class RoutingBaseline(Baseline):
    """A routing heuristic, a named weighted profile (upstream's default; the scenario's tuned
    one), or the lookahead oracle (which forks the env's paused simulation)."""

    env_class = "RoutingEnv"

    def __init__(self, name: str, env, options: dict) -> None:
        self.policy = name
        if name in (UPSTREAM_BASELINE, TUNED_BASELINE):
            if "scorers" in options:
                raise ConfigError(f"baseline {name!r} is a scorer profile of its own; give scorers to 'weighted'")
            scenario = _envs_of(env)[0].scenario.name
            profile = UPSTREAM_DEFAULT_SCORERS if name == UPSTREAM_BASELINE else tuned_profile(scenario)
            if profile is None:
                raise ConfigError(f"baseline {name!r}: scenario {scenario!r} has no tuned profile")
            self.policy = "weighted"
            options = {**options, "scorers": profile}
        super().__init__(name, env, options)

    @classmethod
    def names(cls) -> list[str]:
        return ROUTING.names() + [UPSTREAM_BASELINE] + ROUTING.oracles()

    @classmethod
    def names_for(cls, env) -> list[str]:
        names = cls.names()
        if tuned_profile(_envs_of(env)[0].scenario.name) is not None:
            names.insert(names.index(UPSTREAM_BASELINE) + 1, TUNED_BASELINE)
        return names

    def cli_policies(self) -> dict:
        return {"routing_policy": self.policy}

    def _new_policies(self, u):
        policy = ROUTING.make(self.policy, **self._policy_options(u))
        bind = getattr(policy, "bind_simulator", None)
        if bind is not None:
            bind(u.sim)
        return policy

    def _decide(self, u, policy, d: Decision) -> int:
        return policy.route(d.request, d.state).target


class AdmissionBaseline(Baseline):
    env_class = "AdmissionEnv"

    @classmethod
    def names(cls) -> list[str]:
        return ADMISSION.names()

    def cli_policies(self) -> dict:
        return {"admission_policy": self.name}

    def _new_policies(self, u):
        return ADMISSION.make(self.name, **self._policy_options(u))

    def _decide(self, u, policy, d: Decision) -> int:
        admitted, _ = policy.admit(d.request, d.state)
        return 1 if admitted else 0


class JointBaseline(Baseline):
    """``ADMISSION+ROUTING``: admit with the first, route with the second, from the same view."""

    env_class = "AdmissionRoutingEnv"

    def __init__(self, name: str, env, options: dict) -> None:
        admission, _, routing = name.partition("+")
        self.admission_name, self.routing_name = admission, routing
        super().__init__(name, env, options)

    @classmethod
    def names(cls) -> list[str]:
        return [f"{a}+{r}" for a in ADMISSION.names() for r in ROUTING.names()]

    def cli_policies(self) -> dict:
        return {"admission_policy": self.admission_name, "routing_policy": self.routing_name}

    def _new_policies(self, u):
        opts = self._policy_options(u)
        return ADMISSION.make(self.admission_name, **opts), ROUTING.make(self.routing_name, **opts)

    def _decide(self, u, policies, d: Decision) -> int:
        admission, routing = policies
        admitted, _ = admission.admit(d.request, d.state)
        if not admitted:
            return u.num_instances
        return routing.route(d.request, d.state).target


class DisaggregationBaseline(Baseline):
    """A disaggregation decider with the pool routers, as ``blis run --pd-decider NAME``: the
    decider reads the env's decode pick; a split leaves the prefill instance to the pool's router."""

    env_class = "DisaggregationEnv"

    @classmethod
    def names(cls) -> list[str]:
        return PD_DECIDER.names()

    def cli_policies(self) -> dict:
        return {"pd_decider": self.name}

    def _new_policies(self, u):
        pd = u.config.pd
        return PD_DECIDER.make(self.name, pd_prefix_threshold=pd.prefix_threshold)

    def _decide(self, u, decider, d: Decision) -> int:
        target = u.decode_target
        uncached = u.router.uncached_tokens(d.request, target) if decider.reads_cache else d.request.n_in
        return 1 if decider.split(d.request.n_in, uncached) else 0


FUTURE_RATE = "future-rate"
FUTURE_RATE_PER_INSTANCE = 12.0  # requests per second one instance is given


class FutureRate:
    """An oracle (a teacher, not a heuristic): it reads the workload's future arrivals and asks for
    one instance per ``per_instance`` requests per second, at the busier of the interval after a
    new instance would be serving (scrape and loading delays from now) and the time until then."""

    def __init__(self, per_instance: float) -> None:
        self.per_instance = per_instance

    def target(self, u, now: int):
        cfg = u.config.autoscale
        lead = cfg.scrape_delay.mean + cfg.loading_delay.mean
        # The busier of the next interval once new instances would serve, and the time until then.
        rate = max(self._rate(u, now + lead, cfg.interval), self._rate(u, now, lead))
        want = max(1, math.ceil(rate / self.per_instance))
        limit = u.action_space.n - 1 if hasattr(u.action_space, "n") else want
        out = [min(want, limit)] + [0] * (len(u.kinds) - 1)  # the first GPU type carries it
        return out[0] if len(out) == 1 else np.asarray(out, dtype=np.int64)

    @staticmethod
    def _rate(u, start: int, span: int) -> float:
        """Requests per second arriving in ``[start, start + span)``."""
        lo = bisect.bisect_left(u.arrivals, start)
        hi = bisect.bisect_left(u.arrivals, start + span)
        return (hi - lo) / max(span / 1e6, 1e-6)


class AutoscalingBaseline(Baseline):
    """``saturation`` (upstream's analyzer with its stabilization windows, as ``blis run`` with
    the scenario's bundle), ``fixed`` (never scales: the starting fleet), or the
    ``future-rate`` oracle (a teacher for imitation; option ``requests_per_instance``)."""

    env_class = "AutoscalingEnv"

    @classmethod
    def names(cls) -> list[str]:
        return AUTOSCALER.names() + ["fixed", FUTURE_RATE]

    def cli_policies(self) -> dict:
        if self.name == FUTURE_RATE:
            raise ConfigError(f"baseline {FUTURE_RATE!r} reads the future workload: blis run has no such policy")
        return {} if self.name != "fixed" else {"model_autoscaler_interval_us": 0.0}

    def _new_policies(self, u):
        if self.name == "fixed":
            return None
        if self.name == FUTURE_RATE:
            return FutureRate(self.options.get("requests_per_instance", FUTURE_RATE_PER_INSTANCE))
        cfg = u.config.autoscale
        return AUTOSCALER.make(self.name, analyzer=cfg.analyzer), StabilizationGate(
            cfg.scale_up_window, cfg.scale_down_window
        )

    def _decide(self, u, policies, d: Decision):
        wanted = u.wanted()
        if isinstance(policies, FutureRate):
            return policies.target(u, d.time)
        if policies is not None:
            policy, gate = policies
            deltas = gate(d.time, policy.decide(d.state))
            wanted = [n + deltas.get(kind, 0) for kind, n in zip(u.kinds, wanted)]
        # Within the space: a scale-up past the node pools' capacity would fail in blis run too.
        space = u.action_space
        limits = [space.n - 1] if hasattr(space, "n") else [int(m) - 1 for m in space.nvec]
        wanted = [min(max(n, 0), m) for n, m in zip(wanted, limits)]
        return wanted[0] if len(wanted) == 1 else np.asarray(wanted, dtype=np.int64)


_KINDS = {
    cls.env_class: cls
    for cls in (RoutingBaseline, AdmissionBaseline, JointBaseline, DisaggregationBaseline, AutoscalingBaseline)
}
_OPTIONS = ("scorers", "token_bucket_capacity", "token_bucket_refill_rate", "requests_per_instance")


def _kind(env) -> type[Baseline]:
    name = type(_envs_of(env)[0]).__name__
    if name not in _KINDS:
        raise ConfigError(f"make_baseline needs a blis_gym environment, got {name}")
    return _KINDS[name]


def baseline_names(env) -> list[str]:
    """Names ``make_baseline`` accepts for ``env``."""
    return _kind(env).names_for(env)


def make_baseline(name: str, env, **options: Any) -> Baseline:
    """The built-in policy ``name`` as an agent for ``env`` (a blis_gym env or a vector of them).

    ``name`` is a CLI policy name: a routing policy for Routing-v0 (or ``weighted-upstream``,
    upstream BLIS's default profile, or ``weighted-tuned``, the scenario's tuned profile where
    one is shipped), an admission policy for Admission-v0, ``ADMISSION+ROUTING`` for
    AdmissionRouting-v0.
    Options override the scenario's policy settings, named like the CLI flags:
    ``scorers="queue-depth:1"`` (or ``routing_scorers=``) for ``weighted``,
    ``token_bucket_capacity=``, ``token_bucket_refill_rate=``.
    """
    kind = _kind(env)
    valid = kind.names_for(env)
    if name not in valid:
        first = _envs_of(env)[0]
        raise ConfigError(
            f"unknown baseline {name!r} for {first.spec.id if first.spec else kind.env_class} "
            f"(valid: {', '.join(valid)})"
        )
    opts = dict(options)
    scorers = opts.pop("routing_scorers", opts.pop("scorers", None))
    if scorers is not None:
        opts["scorers"] = parse_scorers(scorers, "scorers") if isinstance(scorers, str) else tuple(scorers)
    unknown = set(opts) - set(_OPTIONS)
    if unknown:
        raise ConfigError(
            f"make_baseline: unknown option(s) {', '.join(sorted(unknown))} (valid: {', '.join(_OPTIONS)})"
        )
    return kind(name, env, opts)


def cli_options_for(baseline: Baseline, scenario_run: RunOptions) -> RunOptions:
    """The ``blis run`` options that run ``baseline``'s policies on a scenario (for comparisons)."""
    changes: dict[str, Any] = baseline.cli_policies()
    opts = baseline.options
    if "scorers" in opts:
        changes["routing_scorers"] = ",".join(f"{c.name}:{c.weight!r}" for c in opts["scorers"])
    for key in ("token_bucket_capacity", "token_bucket_refill_rate"):
        if key in opts:
            changes[key] = opts[key]
    return replace(scenario_run, explicit=scenario_run.explicit | frozenset(changes), **changes)


__all__: Sequence[str] = (
    "Baseline",
    "RoutingBaseline",
    "AdmissionBaseline",
    "JointBaseline",
    "DisaggregationBaseline",
    "AutoscalingBaseline",
    "make_baseline",
    "baseline_names",
    "cli_options_for",
)
