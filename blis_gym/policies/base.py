"""The four policy interfaces and the data they see.

Cluster-level policies (admission, routing) see a :class:`RouterState`: one
:class:`Snapshot` per instance plus the clock. Instance-level policies
(priority, scheduler) see requests directly.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Protocol, Sequence

from ..engine.request import Request


class Snapshot:
    """What the router knows about one instance; KV fields may be stale.

    ``kv_utilization`` is a fraction in [0, 1]; ``pending_requests`` counts
    requests routed to the instance but not yet in its queue; ``speed`` is the
    instance's decode speed relative to the fleet's fastest (1.0 in a
    homogeneous cluster).
    """

    __slots__ = (
        "id",
        "index",
        "queue_depth",
        "batch_size",
        "kv_utilization",
        "free_kv_blocks",
        "cache_hit_rate",
        "pending_requests",
        "speed",
    )

    def __init__(
        self,
        id: str,
        index: int,
        queue_depth: int = 0,
        batch_size: int = 0,
        kv_utilization: float = 0.0,
        free_kv_blocks: int = 0,
        cache_hit_rate: float = 0.0,
        pending_requests: int = 0,
        speed: float = 1.0,
    ) -> None:
        self.id = id
        self.index = index
        self.queue_depth = queue_depth
        self.batch_size = batch_size
        self.kv_utilization = kv_utilization
        self.free_kv_blocks = free_kv_blocks
        self.cache_hit_rate = cache_hit_rate
        self.pending_requests = pending_requests
        self.speed = speed

    def copy(self) -> "Snapshot":
        return Snapshot(
            self.id,
            self.index,
            self.queue_depth,
            self.batch_size,
            self.kv_utilization,
            self.free_kv_blocks,
            self.cache_hit_rate,
            self.pending_requests,
            self.speed,
        )

    @property
    def effective_load(self) -> int:
        """Queue depth + batch size + pending requests."""
        return self.queue_depth + self.batch_size + self.pending_requests

    def __repr__(self) -> str:
        return (
            f"Snapshot({self.id}, queue={self.queue_depth}, batch={self.batch_size}, "
            f"pending={self.pending_requests}, kv={self.kv_utilization:.3f})"
        )


class RouterState(NamedTuple):
    """Cluster-wide view at a decision: snapshots in instance order, clock in ticks.

    Named tuples, not dataclasses, for this and ``RoutingDecision``: one of each is
    made per decision, and a frozen dataclass costs several times more to build.
    """

    snapshots: Sequence[Snapshot]
    clock: int


class RoutingDecision(NamedTuple):
    """Where a request goes (instance index) and why.

    ``scores`` holds one composite score per instance for scoring policies;
    ``priority`` is a one-shot priority hint (0 = none). With prefill/decode pools
    ``target`` is the decode instance and ``split`` says where the prompt is prefilled:
    ``None`` on the target itself, an instance index, or ``PREFILL_ROUTER`` (the prefill
    pool's router picks when the prefill is routed).
    """

    target: int
    reason: str = ""
    scores: Optional[Sequence[float]] = None
    priority: float = 0.0
    split: Optional[int] = None


#: ``RoutingDecision.split``: the prefill pool's own router chooses the prefill instance.
PREFILL_ROUTER = -1


class AdmissionPolicy(Protocol):
    """Admits or rejects a request.

    A policy may set ``reads_snapshots = False`` when it looks only at the
    request and the clock; the loop then skips building snapshots for it
    (unless stale snapshots need the refresh).
    """

    def admit(self, req: Request, state: RouterState) -> tuple[bool, str]:
        """Return (admitted, reason)."""


class RoutingPolicy(Protocol):
    def route(self, req: Request, state: RouterState) -> RoutingDecision:
        """Pick an instance for an admitted request."""


class PriorityPolicy(Protocol):
    def compute(self, req: Request, clock: int) -> float:
        """Priority of a waiting request at ``clock``; higher runs first."""


class InstanceScheduler(Protocol):
    def order(self, requests: list[Request], clock: int) -> None:
        """Reorder the wait queue in place."""
