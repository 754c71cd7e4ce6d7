"""blis-gym: a Python reimplementation of BLIS, the Blackbox Inference Simulator.

The simulator lives in :mod:`blis_gym.engine` (one instance) and
:mod:`blis_gym.cluster` (instances behind admission and routing); workloads
(distributions, traces, workload specs) in :mod:`blis_gym.workload`; a run built
from options in :mod:`blis_gym.plan`; policies in
:mod:`blis_gym.policies`; the ``blis`` command in :mod:`blis_gym.cli`;
Gymnasium environments in :mod:`blis_gym.envs` (``blis_gym/Routing-v0``,
``blis_gym/Admission-v0`` and ``blis_gym/AdmissionRouting-v0``) and baseline
agents in :mod:`blis_gym.baselines`.

Importing this package does not import Gymnasium (the command line starts faster
without it): the environment ids are registered with Gymnasium, by entry point, as
soon as Gymnasium is imported, before or after this package.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys

__version__ = "0.1.0"

#: Gymnasium id -> environment class, as ``module:Class`` in :mod:`blis_gym.envs`
ENV_IDS = {
    "blis_gym/Routing-v0": "cluster_env:RoutingEnv",
    "blis_gym/Admission-v0": "cluster_env:AdmissionEnv",
    "blis_gym/AdmissionRouting-v0": "cluster_env:AdmissionRoutingEnv",
    "blis_gym/Disaggregation-v0": "pd_env:DisaggregationEnv",
    "blis_gym/Autoscaling-v0": "autoscaling_env:AutoscalingEnv",
}


def register_envs() -> None:
    """Register the environment ids with Gymnasium (entry points are strings: this imports
    nothing of ours). Idempotent."""
    from gymnasium.envs.registration import register, registry

    for env_id, cls in ENV_IDS.items():
        if env_id not in registry:
            register(id=env_id, entry_point=f"blis_gym.envs.{cls}")


class _RegisterWhenGymnasiumLoads(importlib.abc.MetaPathFinder):
    """Finds nothing itself: when ``gymnasium`` is first imported, it wraps that module's
    loader so that :func:`register_envs` runs right after Gymnasium has loaded."""

    def find_spec(self, name, path, target=None):
        if name != "gymnasium":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)  # the real finders
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            load = spec.loader.exec_module

            def exec_module(module) -> None:
                load(module)
                register_envs()

            spec.loader.exec_module = exec_module
        return spec


if "gymnasium" in sys.modules:
    register_envs()
elif not any(isinstance(f, _RegisterWhenGymnasiumLoads) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterWhenGymnasiumLoads())
