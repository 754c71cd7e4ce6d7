"""Real mode: send a workload to an OpenAI-compatible server and record what it did
(``blis observe``), as a trace v2 with ``mode: real``.

:mod:`.workload` turns a ``blis run`` workload into requests to send; :mod:`.client` sends
them on time and records each answer; :mod:`.itl` writes the chunk times of ``--record-itl``.
"""

from .client import EndpointUnreachable, Observation, PendingRequest, RealClient, Replay, ServerInfo
from .workload import pending_requests

__all__ = [
    "EndpointUnreachable",
    "Observation",
    "PendingRequest",
    "RealClient",
    "Replay",
    "ServerInfo",
    "pending_requests",
]
