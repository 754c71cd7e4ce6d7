"""Gymnasium environments for routing and admission control (``blis_gym.envs``).

Importing :mod:`blis_gym` registers ``blis_gym/Routing-v0``,
``blis_gym/Admission-v0``, ``blis_gym/AdmissionRouting-v0``,
``blis_gym/Disaggregation-v0`` and ``blis_gym/Autoscaling-v0``.
"""

from .. import ENV_IDS
from .autoscaling_env import AutoscalingEnv
from .cluster_env import AdmissionEnv, AdmissionRoutingEnv, ClusterEnv, RoutingEnv
from .pd_env import DisaggregationEnv
from .scenario import EnvOptions, Scenario, load_scenario, scenario_names

__all__ = [
    "ClusterEnv",
    "RoutingEnv",
    "AdmissionEnv",
    "AdmissionRoutingEnv",
    "DisaggregationEnv",
    "AutoscalingEnv",
    "EnvOptions",
    "Scenario",
    "load_scenario",
    "scenario_names",
    "ENV_IDS",
]
