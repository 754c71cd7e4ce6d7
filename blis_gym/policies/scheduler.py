"""Instance schedulers: the order in which waiting requests are considered each step.

``fcfs`` builds no scheduler: the queue keeps its arrival order. Every other
ordering is a stable sort with arrival time, then request id, as tie breaks,
so results never depend on the queue's previous order. Request ids
compare as strings, as the reference compares them.
"""

from __future__ import annotations

from typing import Optional

from ..engine.request import Request
from .base import InstanceScheduler
from .registry import Registry

SCHEDULER: Registry = Registry("scheduler", "--scheduler")


@SCHEDULER.register("fcfs")
def fcfs() -> Optional[InstanceScheduler]:
    """First come, first served: the queue's own order. ``None`` tells the engine to skip reordering."""
    return None


class _SortScheduler:
    """Sort the queue by a key; subclasses define ``key``."""

    @staticmethod
    def key(req: Request):  # pragma: no cover - abstract
        raise NotImplementedError

    def order(self, requests: list[Request], clock: int) -> None:
        requests.sort(key=self.key)


@SCHEDULER.register("priority-fcfs")
class PriorityFCFS(_SortScheduler):
    """Highest priority first, then earliest arrival."""

    @staticmethod
    def key(req: Request):
        return (-req.priority, req.arrival, req.id)


@SCHEDULER.register("sjf")
class ShortestJobFirst(_SortScheduler):
    """Shortest input first, then earliest arrival (long requests can starve)."""

    @staticmethod
    def key(req: Request):
        return (req.n_in, req.arrival, req.id)


@SCHEDULER.register("reverse-priority")
class ReversePriority(_SortScheduler):
    """Lowest priority first (a pathological template that causes inversions)."""

    @staticmethod
    def key(req: Request):
        return (req.priority, req.arrival, req.id)
