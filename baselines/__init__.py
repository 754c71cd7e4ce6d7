"""Every built-in policy as a baseline agent (``blis_gym.baselines``).

>>> import gymnasium as gym, blis_gym
>>> from blis_gym.baselines import make_baseline
>>> env = gym.make("blis_gym/Routing-v0")
>>> agent = make_baseline("least-loaded", env)  # predict(obs) -> (action, state)
"""

from .agents import (
    AdmissionBaseline,
    Baseline,
    JointBaseline,
    RoutingBaseline,
    baseline_names,
    cli_options_for,
    make_baseline,
)

__all__ = [
    "make_baseline",
    "baseline_names",
    "cli_options_for",
    "Baseline",
    "RoutingBaseline",
    "AdmissionBaseline",
    "JointBaseline",
]
