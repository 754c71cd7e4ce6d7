"""Control policies, one registry per family.

>>> from blis_gym.policies import ROUTING
>>> ROUTING.make("round-robin")  # doctest: +ELLIPSIS
<...RoundRobin object at ...>
"""

from . import learned as _learned  # noqa: F401 - registers the rl policies
from . import lookahead as _lookahead  # noqa: F401 - registers the lookahead oracle
from .admission import ADMISSION
from .base import AdmissionPolicy, RouterState, RoutingDecision, RoutingPolicy, Snapshot
from .disaggregation import PD_DECIDER
from .priority import PRIORITY
from .routing import ROUTING
from .scheduler import SCHEDULER

__all__ = [
    "ADMISSION",
    "ROUTING",
    "PRIORITY",
    "SCHEDULER",
    "PD_DECIDER",
    "AdmissionPolicy",
    "RoutingPolicy",
    "RouterState",
    "RoutingDecision",
    "Snapshot",
]
