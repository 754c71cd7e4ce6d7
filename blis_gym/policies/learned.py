"""The learned policies, ``rl`` in both families: a trained model decides (see blis_gym.agents.deploy).

Registered here so the CLI and the registries know the name; the model code
(and torch) is imported only when such a policy is built.
"""

from __future__ import annotations

from .admission import ADMISSION
from .routing import ROUTING


@ROUTING.register("rl", learned=True)
def _rl_routing(routing_model: str, block_size: int, num_instances: int, max_running: int,
                total_kv_blocks: int):
    from ..agents.deploy import LearnedRouting

    return LearnedRouting(routing_model, block_size=block_size, num_instances=num_instances,
                          max_running=max_running, total_kv_blocks=total_kv_blocks)


@ADMISSION.register("rl", learned=True)
def _rl_admission(admission_model: str, block_size: int, num_instances: int, max_running: int,
                  total_kv_blocks: int):
    from ..agents.deploy import LearnedAdmission

    return LearnedAdmission(admission_model, block_size=block_size, num_instances=num_instances,
                            max_running=max_running, total_kv_blocks=total_kv_blocks)
