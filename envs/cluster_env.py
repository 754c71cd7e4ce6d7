"""Gymnasium environments over the full cluster simulator.

The simulator runs until the next decision the agent owns, shows the agent the
router's view of every instance, and pays the scenario's reward. Three ids:

=============================  ==================================  ==================
id                             the agent decides                   action space
=============================  ==================================  ==================
``blis_gym/Routing-v0``        the instance for each admitted      ``Discrete(N)``
                               request (admission: the scenario's)
``blis_gym/Admission-v0``      admit (1) or reject (0) each        ``Discrete(2)``
                               arrival (routing: the scenario's)
``blis_gym/AdmissionRouting-v0`` both at once, at admission:       ``Discrete(N + 1)``
                               an instance, or N to reject
=============================  ==================================  ==================

**Observation**: ``Box(0, 1e6, (10 N + 7,), float32)``; per instance queue depth,
batch size, pending requests, KV utilization, free KV blocks, cache hit rate,
this request's prefix match on the router-side index, the instance's speed
class, its prefill backlog and the time until its running step ends; then the request's
input length, cacheable prefix, SLO class (one-hot over 4) and the clock.
See :mod:`blis_gym.envs.observation` for the scaling.

**Reward** (``reward=``): ``regret`` (minus the counterfactual regret of each
routing choice under ``regret_scorers``), ``fitness`` (the episode's fitness
score, paid at the end), ``time-in-system`` (minus request-seconds in the
system since the previous decision, / ``time_scale``), ``ttft`` (the same for
request-seconds waiting for a first token) or ``goodput`` (+1 for each request
that meets every SLO target of its class, ``slo_ttft``/``slo_itl``/``slo_e2e`` or
the spec's ``goodput_slo_targets``, paid once the clock passes its completion).
Each rejection by the agent costs ``rejection_penalty``.

**Episode**: one workload, drawn with the reset seed (``reset(seed=S)`` runs the
same workload as ``blis run --seed S``; without a seed, the workload seed is drawn
below ``HELD_OUT_SEED``). After the last decision the simulation
runs to the end; the final step pays what remains and terminates. A workload
with no decision for the agent (say, every request rejected by the scenario's
admission policy) gives an all-zero first observation and ends at the first
step, whatever its action.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any, Optional

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ..cluster.simulator import ClusterResult, ClusterSimulator, Decision
from ..config.fitness import parse_fitness_weights
from ..gcpause import gc_paused
from ..plan import generate_requests
from ..plan.options import HELD_OUT_SEED
from ..policies import ADMISSION, ROUTING
from ..policies.prefix_index import PrefixCacheIndex
from ..policies.scorers import parse_scorers
from ..report.fitness import compute_fitness, raw_metrics
from ..report.goodput import compute_goodput
from ..report.summary import result_metrics
from .observation import ObservationBuilder, observation_size
from .rewards import TIME_REWARDS, GoodputCredit, LookaheadCritic, RegretCritic
from .scenario import DEFAULT_SCENARIO, Scenario, default_rejection_penalty, load_scenario

ADMISSION_KIND, ROUTING_KIND = "admission", "routing"
OBS_HIGH = 1e6
# reset() without a seed draws workload seeds below HELD_OUT_SEED; seeds from there up are never
# drawn, so episodes seeded with them are held out from training (blis evaluate's default).


class ClusterEnv(gym.Env):
    """Base class: one decision family (or both) answered by the agent; see the module docstring."""

    metadata = {"render_modes": ["ansi"], "render_fps": 4}
    #: decision kinds that pause for the agent
    agent_kinds: tuple[str, ...] = ()
    #: rewards this env cannot pay, and the one it uses when a scenario names one of them
    unfit_rewards: tuple[str, ...] = ()
    default_reward = "regret"
    #: cluster shapes this env poses decisions for (the others refuse such scenarios)
    pools = False  # prefill/decode pools
    scaling = False  # an autoscaler

    def __init__(self, scenario: str = DEFAULT_SCENARIO, render_mode: Optional[str] = None, **overrides: Any):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.render_mode = render_mode
        loaded = load_scenario(scenario, **overrides)
        if loaded.env.reward in self.unfit_rewards and "reward" not in overrides:
            # The scenario's reward is for another env (say regret, for routing): use this env's own.
            loaded = replace(loaded, env=replace(loaded.env, reward=self.default_reward))
        self.scenario: Scenario = loaded
        self._check_reward()
        config = self.scenario.plan.config
        self._check_shape(config)
        self.config = config
        self.num_instances = config.num_instances
        # Features are scaled to about 1; the bound only has to be finite and never reached.
        size = observation_size(self.num_instances, self.scenario.env.cache_observation)
        self.observation_space = spaces.Box(0.0, OBS_HIGH, (size,), np.float32)
        self.action_space = self._make_action_space()
        opts = self.scenario.env
        self.weights = parse_fitness_weights(opts.fitness_weights)
        self.regret_profile = parse_scorers(opts.regret_scorers)
        self.rejection_penalty = default_rejection_penalty(opts, len(self.scenario.plan.requests))
        self.sim: Optional[ClusterSimulator] = None
        self.decision: Optional[Decision] = None
        self.result: Optional[ClusterResult] = None
        self.episode = 0  # counts resets; baselines use it to know when to start afresh
        self._ended = False
        self._seeded = False
        self._reward = 0.0
        self._info: dict = {}

    def _check_shape(self, config) -> None:
        name = self.scenario.name
        if config.pd is not None and not self.pools:
            raise ValueError(f"scenario {name!r} has prefill/decode pools: play it with blis_gym/Disaggregation-v0")
        if config.autoscale is not None and config.autoscale.enabled and not self.scaling:
            raise ValueError(f"scenario {name!r} runs an autoscaler: play it with blis_gym/Autoscaling-v0")

    # --- hooks for the three variants -------------------------------------------------------
    def _make_action_space(self) -> spaces.Discrete:
        raise NotImplementedError

    def _check_reward(self) -> None:
        pass

    def _policies(self) -> tuple:
        """(admission, routing) built-in policies; None where the agent decides."""
        opts = self.config.policy_options()
        admission = None if ADMISSION_KIND in self.agent_kinds else ADMISSION.make(self.config.admission_policy, **opts)
        routing = None if ROUTING_KIND in self.agent_kinds else ROUTING.make(self.config.routing_policy, **opts)
        return admission, routing

    def _act(self, decision: Decision, action: int) -> None:
        raise NotImplementedError

    # --- Gymnasium API ------------------------------------------------------------------------
    @gc_paused
    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None):
        if seed is None and not self._seeded:
            seed = self.scenario.run.seed
        super().reset(seed=seed)
        if seed is not None:
            self._seeded = True
            workload_seed = int(seed)
        else:
            workload_seed = int(self.np_random.integers(0, HELD_OUT_SEED))
        run = self.scenario.run
        requests = (
            self.scenario.plan.requests
            if workload_seed == run.seed and self.episode == 0
            else generate_requests(run.with_seed(workload_seed))
        )
        self.episode += 1
        self.workload_seed = workload_seed
        self._info = {}
        self._ended = False
        self._start(requests)
        obs = self._advance()
        info = self._info
        self._info = {}
        # Time in system before the first decision is paid with the first step.
        self._reward = 0.0
        self._area = 0
        return obs, info

    @gc_paused
    def step(self, action):
        if self.sim is None:
            raise RuntimeError("call reset() before step()")
        if self._ended:
            raise RuntimeError("the episode has ended; call reset()")
        if not self._valid_action(action):
            raise ValueError(f"action {action!r} is outside the action space {self.action_space}")
        self._reward = 0.0
        self._info = {}
        if self.decision is not None:
            multi = isinstance(self.action_space, spaces.MultiDiscrete)
            self._act(self.decision, np.asarray(action, dtype=np.int64) if multi else int(action))
            self.decision = None
        obs = self._advance()
        terminated = self.result is not None
        if terminated:
            self._settle()
            self._ended = True
        info = self._info
        return obs, float(self._reward), terminated, False, info

    @gc_paused
    def fork(self) -> "ClusterEnv":
        """An exact, independent copy of this env mid-episode (the env itself, without Gymnasium's
        wrappers): stepping both with the same actions gives the same observations, rewards and
        metrics, and stepping either never changes the other. Scenario and spaces are shared."""
        memo = {id(x): x for x in (self.scenario, self.config, self.observation_space, self.action_space)}
        return copy.deepcopy(self, memo)

    def _valid_action(self, action) -> bool:
        # Integers are checked directly (the hot path); anything else by the space itself.
        if type(action) is int or isinstance(action, np.integer):
            return 0 <= action < self.action_space.n
        return self.action_space.contains(action)

    def render(self):
        if self.render_mode != "ansi":
            return None
        return self.ansi()

    # --- the loop ---------------------------------------------------------------------------
    def _start(self, requests) -> None:
        admission, routing = self._policies()
        sim = self._simulator(requests, admission, routing)
        self.sim = sim
        self.decision = None
        self.result = None
        self.index = PrefixCacheIndex(self.config.engine.block_size)
        sim.routing_observers.append(self.index.observe)
        # The critic reads the same router-side index the observation shows.
        self.critic = RegretCritic(self.regret_profile, self.config.engine.block_size, self.index)
        if self.scenario.env.reward == "lookahead":
            self.lookahead = LookaheadCritic(
                ROUTING.make("lookahead", **{**self.config.policy_options(), "prefix_index": self.index})
            )
            self.lookahead.start(sim)
        self._area = 0
        reward = self.scenario.env.reward
        if reward in TIME_REWARDS:
            self.time = TIME_REWARDS[reward]([r.arrival for r in requests])
            self.time.attach(sim)
        elif reward == "goodput":
            self.goodput = GoodputCredit(self.scenario.plan.slo_targets)
            self.goodput.attach(sim)
        e = self.config.engine
        views = sim.snapshots.cache_views() if self.scenario.env.cache_observation else None
        self.obs_builder = ObservationBuilder.for_workload(
            requests, self.num_instances, e.max_running, e.block_size, self.config.max_kv_blocks, views
        )

    def _simulator(self, requests, admission, routing) -> ClusterSimulator:
        return ClusterSimulator(self.config, requests, admission=admission, routing=routing)

    def _advance(self) -> np.ndarray:
        """Run to the next decision the agent owns; answer the others. Returns the observation."""
        sim = self.sim
        while True:
            d = sim.advance()
            if d is None:
                self.result = sim.result()
                return self.empty_observation()
            if d.kind in self.agent_kinds:
                self.decision = d
                self._pay_time(d.time)
                self._info.update(clock=d.time, kind=d.kind)
                return self._observe(d)
            self._auto(d)

    def empty_observation(self) -> np.ndarray:
        """The all-zero observation (after the last decision)."""
        return np.zeros(self.observation_space.shape, np.float32)

    def _observe(self, d: Decision) -> np.ndarray:
        """The observation at a decision the agent owns."""
        self._info["request_id"] = d.request.id
        return self.obs_builder.build(d.request, d.state.snapshots, self.index, d.time, self.sim.instances)

    def _auto(self, decision: Decision) -> None:
        raise RuntimeError(f"unexpected {decision.kind} decision")  # pragma: no cover

    def route(self, decision: Decision, target: int) -> None:
        """Route a paused decision, paying regret when that is the reward."""
        reward = self.scenario.env.reward
        if reward == "regret":
            regret, scores = self.critic.regret(decision.request, decision.state.snapshots, target)
            self._reward -= regret
            self._info.update(regret=regret, scores=scores)
        elif reward == "lookahead":
            lost, costs = self.lookahead.regret(decision.request, decision.state, target)
            self._reward -= lost / 1e6 / self.scenario.env.time_scale
            self._info.update(lookahead_costs=costs)
        self._info["target"] = target
        self.sim.route(decision, target)

    def reject(self, decision: Decision) -> None:
        self._reward -= self.rejection_penalty
        self._info.update(target=-1, admitted=False)
        self.sim.admit(decision, False, "agent")

    def _pay_time(self, tick: int) -> None:
        reward = self.scenario.env.reward
        if reward in TIME_REWARDS:
            area = self.time.area(tick)
            self._reward -= (area - self._area) / 1e6 / self.scenario.env.time_scale
            self._area = area
        elif reward == "goodput":
            self._reward += self.goodput.collect(tick)

    def _settle(self) -> None:
        """Final payment: the rest of the time in system, or the fitness score; the CLI's metrics."""
        result = self.result
        reward = self.scenario.env.reward
        if reward in TIME_REWARDS:
            self._pay_time(self.time.end_tick(self.sim.clock))
        elif reward == "goodput":
            self._reward += self.goodput.rest()
        elif reward == "fitness":
            fitness = compute_fitness(raw_metrics(result.aggregate), self.weights)
            self._reward += fitness.score
            self._info["fitness"] = fitness.score
        self._info["metrics"] = result_metrics(result)
        targets = self.scenario.plan.slo_targets
        if targets:  # the run's goodput, as --slo-* prints it
            goodput = compute_goodput(result.aggregate, result.arrived_by_class, targets)
            self._info["metrics"].update(goodput_rps=goodput.goodput_rps, slo_attainment=goodput.attainment)

    def ansi(self) -> str:
        """The cluster as text: the pending decision, then one line per instance."""
        sim = self.sim
        if sim is None:
            return "(not started: call reset())\n"
        lines = []
        if self.decision is not None:
            d = self.decision
            if d.request is None:
                lines.append(f"t={d.time / 1e6:.6f}s  {d.kind} decision")
            else:
                lines.append(
                    f"t={d.time / 1e6:.6f}s  {d.kind} decision for {d.request.id} ({d.request.n_in} input tokens)"
                )
        else:
            lines.append(f"t={sim.clock / 1e6:.6f}s  finished")
        for i, inst in enumerate(sim.instances):
            util = inst.kv.used / inst.kv.total
            bar = "#" * int(round(util * 20))
            state = f"  {sim.autoscaler.replicas[i].state}" if sim.autoscaler is not None else ""
            lines.append(
                f"{inst.id:<12} queue {len(inst.waitq):>4}  batch {len(inst.running):>4}  "
                f"pending {sim.pending[i]:>3}  kv [{bar:<20}] {util:5.1%}{state}"
            )
        return "\n".join(lines) + "\n"


class RoutingEnv(ClusterEnv):
    """The agent routes every admitted request (``Discrete(N)``); admission is the scenario's."""

    agent_kinds = (ROUTING_KIND,)

    def _make_action_space(self) -> spaces.Discrete:
        return spaces.Discrete(self.num_instances)

    def _act(self, decision: Decision, action: int) -> None:
        self.route(decision, action)


class AdmissionEnv(ClusterEnv):
    """The agent admits (1) or rejects (0) every arrival; routing is the scenario's."""

    agent_kinds = (ADMISSION_KIND,)
    unfit_rewards = ("regret", "lookahead")  # they price routing choices
    default_reward = "time-in-system"

    def _make_action_space(self) -> spaces.Discrete:
        return spaces.Discrete(2)

    def _check_reward(self) -> None:
        if self.scenario.env.reward in self.unfit_rewards:
            raise ValueError(
                f"reward {self.scenario.env.reward!r} scores routing choices; blis_gym/Admission-v0 "
                f"makes none (use 'fitness', 'time-in-system' or 'ttft')"
            )

    def _act(self, decision: Decision, action: int) -> None:
        if action == 1:
            self._info["admitted"] = True
            self.sim.admit(decision, True)
        else:
            self.reject(decision)


class AdmissionRoutingEnv(ClusterEnv):
    """The agent admits and routes at once: an instance index, or N to reject (``Discrete(N + 1)``).

    The instance is chosen with the view at the admission decision and applied
    when the routing decision comes due (``routing_latency`` later).
    """

    agent_kinds = (ADMISSION_KIND,)

    def _make_action_space(self) -> spaces.Discrete:
        return spaces.Discrete(self.num_instances + 1)

    def _policies(self) -> tuple:
        return None, None

    def _start(self, requests) -> None:
        super()._start(requests)
        self._targets: dict[str, int] = {}

    def _act(self, decision: Decision, action: int) -> None:
        if action == self.num_instances:
            self.reject(decision)
        else:
            self._targets[decision.request.id] = action
            self.sim.admit(decision, True)

    def _auto(self, decision: Decision) -> None:
        self.route(decision, self._targets.pop(decision.request.id))
