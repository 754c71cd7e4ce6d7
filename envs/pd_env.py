"""``blis_gym/Disaggregation-v0``: split or not, at each admitted request of a prefill/decode cluster.

The scenario must have prefill and decode pools (``prefill_instances``/``decode_instances``).
As upstream BLIS does, the decode pool's router picks each request's decode instance first;
the agent then decides where its prompt is prefilled.

**Action**: ``Discrete(P + 2)`` for a prefill pool of P instances: ``0`` serves the request
whole on its decode instance (local); ``1`` splits it and lets the prefill pool's router pick
the prefill instance (as ``blis run`` does); ``2 + k`` splits it onto the pool's k-th instance.

**Observation**: Routing-v0's ``10 N + 7`` values, then the decode instance chosen (one-hot
over the N instances) and the share of the prompt its cache lacks (what ``prefix-threshold``
reads, through the same ``--cache-signal-delay`` view): ``Box(0, 1e6, (11 N + 8,))``.

**Reward**: ``ttft`` by default (minus request-seconds waiting for a first token since the
previous decision), or ``time-in-system``/``fitness``; routing regret does not apply.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from ..cluster.disaggregation import disaggregated_router
from ..cluster.simulator import Decision
from ..policies.base import PREFILL_ROUTER
from .cluster_env import OBS_HIGH, ROUTING_KIND, ClusterEnv
from .observation import observation_size

LOCAL, SPLIT = 0, 1


class DisaggregationEnv(ClusterEnv):
    """The agent decides local or split (and where to prefill) for every admitted request."""

    agent_kinds = (ROUTING_KIND,)
    unfit_rewards = ("regret", "lookahead")  # they price routing choices among all instances
    pools = True
    default_reward = "ttft"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        pd = self.config.pd
        if pd is None:
            raise ValueError(
                f"scenario {self.scenario.name!r} has no prefill/decode pools "
                "(set prefill_instances and decode_instances)"
            )
        self.prefill_pool = pd.prefill_pool()
        size = observation_size(self.num_instances, self.scenario.env.cache_observation) + self.num_instances + 1
        self.observation_space = spaces.Box(0.0, OBS_HIGH, (size,), np.float32)

    def _check_reward(self) -> None:
        if self.scenario.env.reward in self.unfit_rewards:
            raise ValueError(
                f"reward {self.scenario.env.reward!r} prices routing choices; blis_gym/Disaggregation-v0 "
                "pays 'ttft', 'time-in-system' or 'fitness'"
            )

    def _make_action_space(self) -> spaces.Discrete:
        pd = self.config.pd
        return spaces.Discrete(len(pd.prefill_pool()) + 2 if pd is not None else 2)

    def _start(self, requests) -> None:
        super()._start(requests)
        self.router = disaggregated_router(self.config)
        self.router.bind_views(self.sim.snapshots.cache_views(watch=self.config.pd.decode_pool()))
        self.decode_target = -1

    def _observe(self, d: Decision) -> np.ndarray:
        base = super()._observe(d)
        self.decode_target = target = self.router.decode.route(d.request, d.state)
        extra = np.zeros(self.num_instances + 1, np.float32)
        extra[target] = 1.0
        n_in = d.request.n_in
        extra[-1] = self.router.uncached_tokens(d.request, target) / n_in if n_in else 0.0
        self._info["decode"] = target
        return np.concatenate((base, extra))

    def _act(self, decision: Decision, action: int) -> None:
        if action == LOCAL:
            split = None
        elif action == SPLIT:
            split = PREFILL_ROUTER
        else:
            split = self.prefill_pool[action - 2]
        self._info.update(target=self.decode_target, split=split)
        self.sim.route(decision, self.decode_target, split=split)
