"""The learned policies, ``rl`` in both families: a trained model decides.

Registered here by name, so that validation, help and the registries know them; each factory
is an entry point into the RL layer (:mod:`blis_gym.agents.deploy`), imported only when such
a policy is built. The simulator core never imports the RL layer (or torch).
"""

from __future__ import annotations

from .admission import ADMISSION
from .routing import ROUTING

ROUTING.register_entry_point("rl", "blis_gym.agents.deploy:learned_routing", learned=True)
ADMISSION.register_entry_point("rl", "blis_gym.agents.deploy:learned_admission", learned=True)
