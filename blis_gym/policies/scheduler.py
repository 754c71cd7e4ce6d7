"""Instance schedulers: the order in which waiting requests are considered."""

from __future__ import annotations

from typing import Optional

from .base import InstanceScheduler
from .registry import Registry

SCHEDULER: Registry = Registry("scheduler", "--scheduler", planned=("priority-fcfs", "sjf", "reverse-priority"))


@SCHEDULER.register("fcfs")
def fcfs() -> Optional[InstanceScheduler]:
    """First come, first served: the queue's own order. ``None`` tells the engine to skip reordering."""
    return None
