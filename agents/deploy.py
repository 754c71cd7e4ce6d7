"""Trained agents as ``blis run`` policies: ``--routing-policy rl`` and ``--admission-policy rl``.

Each policy builds, at every decision, the observation the environment would
show its agent (same builder, same snapshots, same router-side prefix index
recording every routing decision, same clock scale from the workload's last
arrival), so a run with seed S gives the metrics of ``blis evaluate`` on the
episode with seed S.
"""

from __future__ import annotations

from typing import Sequence

from ..engine.request import Request
from ..envs.observation import ObservationBuilder, observation_size
from ..policies.base import RouterState, RoutingDecision
from ..policies.prefix_index import PrefixCacheIndex
from .model import TrainedAgent

ROUTING_ENV, ADMISSION_ENV = "blis_gym/Routing-v0", "blis_gym/Admission-v0"


class _Learned:
    """What both learned policies share: the model, the observation builder and the prefix index."""

    env_id = ""
    flag = ""
    n_actions = 0  # 0: one per instance

    def __init__(
        self, model_path: str, *, block_size: int, num_instances: int, max_running: int, total_kv_blocks: int
    ) -> None:
        self.agent = TrainedAgent.load(model_path)
        # A model trained with cache_observation reads the instances' caches as the env showed them.
        self.reads_caches = bool(self.agent.meta.get("cache_observation", False))
        size = observation_size(num_instances, self.reads_caches)
        self.agent.check(self.env_id, size, self.n_actions or num_instances, self.flag)
        self.index = PrefixCacheIndex(block_size)
        self._shape = (num_instances, max_running, block_size, total_kv_blocks)
        self.builder = ObservationBuilder.for_workload((), *self._shape)
        self.instances: Sequence = ()
        self.views = None

    def bind_simulator(self, sim) -> None:
        """The run's instances: the observation reads their work in flight (and caches, if trained so)."""
        self.instances = sim.instances
        if self.reads_caches:  # on_workload, which the simulator calls next, builds with them
            self.views = sim.snapshots.cache_views()

    def on_workload(self, requests: Sequence[Request]) -> None:
        """A new run: forget the index; scale the clock by its last arrival, as the env does."""
        self.index = PrefixCacheIndex(self.index.block_size)
        self.builder = ObservationBuilder.for_workload(requests, *self._shape, self.views)

    def on_routed(self, req: Request, target: int) -> None:
        self.index.observe(req, target)

    def _action(self, req: Request, state: RouterState) -> int:
        return self.agent.act(self.builder.build(req, state.snapshots, self.index, state.clock, self.instances))


class LearnedRouting(_Learned):
    """``--routing-policy rl``: a model trained on ``blis_gym/Routing-v0`` picks the instance."""

    env_id = ROUTING_ENV
    flag = "--routing-model"

    def route(self, req: Request, state: RouterState) -> RoutingDecision:
        return RoutingDecision(self._action(req, state), "rl")


class LearnedAdmission(_Learned):
    """``--admission-policy rl``: a model trained on ``blis_gym/Admission-v0`` admits (1) or rejects (0)."""

    env_id = ADMISSION_ENV
    flag = "--admission-model"
    n_actions = 2
    reads_snapshots = True

    def admit(self, req: Request, state: RouterState) -> tuple[bool, str]:
        admitted = self._action(req, state) == 1
        return admitted, "rl" if admitted else "rl: rejected"


# Entry points of the ``rl`` policies (registered by name in :mod:`blis_gym.policies.learned`);
# the registry passes each the options its signature names.
def learned_routing(
    routing_model: str, block_size: int, num_instances: int, max_running: int, total_kv_blocks: int
) -> LearnedRouting:
    return LearnedRouting(
        routing_model,
        block_size=block_size,
        num_instances=num_instances,
        max_running=max_running,
        total_kv_blocks=total_kv_blocks,
    )


def learned_admission(
    admission_model: str, block_size: int, num_instances: int, max_running: int, total_kv_blocks: int
) -> LearnedAdmission:
    return LearnedAdmission(
        admission_model,
        block_size=block_size,
        num_instances=num_instances,
        max_running=max_running,
        total_kv_blocks=total_kv_blocks,
    )
