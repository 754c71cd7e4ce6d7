"""Routing policies: choose an instance for each admitted request."""

from __future__ import annotations

from ..engine.request import Request
from .base import RouterState, RoutingDecision
from .registry import Registry

ROUTING: Registry = Registry("routing policy", "--routing-policy",
                             planned=("least-loaded", "weighted", "prefix-affinity", "always-busiest"))


@ROUTING.register("round-robin")
class RoundRobin:
    """Cycle through instances in index order."""

    def __init__(self) -> None:
        self.counter = 0

    def route(self, req: Request, state: RouterState) -> RoutingDecision:
        n = len(state.snapshots)
        target = self.counter % n
        self.counter += 1
        return RoutingDecision(target, f"round-robin[{self.counter - 1}]")
