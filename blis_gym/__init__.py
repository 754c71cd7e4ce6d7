"""blis-gym: a Python reimplementation of BLIS, the Blackbox Inference Simulator.

The simulator lives in :mod:`blis_gym.engine` (one instance) and
:mod:`blis_gym.cluster` (instances behind admission and routing); policies in
:mod:`blis_gym.policies`; the ``blis`` command in :mod:`blis_gym.cli`.
"""

__version__ = "0.1.0"
