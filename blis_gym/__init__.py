"""blis-gym: a Python reimplementation of BLIS, the Blackbox Inference Simulator.

The simulator lives in :mod:`blis_gym.engine` (one instance) and
:mod:`blis_gym.cluster` (instances behind admission and routing); workloads
(distributions, traces, workload specs) in :mod:`blis_gym.workload`; a run built
from options in :mod:`blis_gym.plan`; policies in
:mod:`blis_gym.policies`; the ``blis`` command in :mod:`blis_gym.cli`;
Gymnasium environments in :mod:`blis_gym.envs` (registered on import as
``blis_gym/Routing-v0``, ``blis_gym/Admission-v0`` and
``blis_gym/AdmissionRouting-v0``) and baseline agents in
:mod:`blis_gym.baselines`.
"""

__version__ = "0.1.0"

#: Gymnasium id -> environment class in :mod:`blis_gym.envs.cluster_env`
ENV_IDS = {
    "blis_gym/Routing-v0": "RoutingEnv",
    "blis_gym/Admission-v0": "AdmissionEnv",
    "blis_gym/AdmissionRouting-v0": "AdmissionRoutingEnv",
}


def _register_envs() -> None:
    # Entry points are strings, so registering imports nothing of ours.
    from gymnasium.envs.registration import register, registry

    for env_id, cls in ENV_IDS.items():
        if env_id not in registry:
            register(id=env_id, entry_point=f"blis_gym.envs.cluster_env:{cls}")


_register_envs()
