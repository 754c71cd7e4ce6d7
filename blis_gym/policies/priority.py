"""Priority policies: a score per waiting request, recomputed every step (higher runs first)."""

from __future__ import annotations

from ..engine.request import Request
from .registry import Registry

PRIORITY: Registry = Registry("priority policy", "--priority-policy")


@PRIORITY.register("constant")
class ConstantPriority:
    """Every request gets the same score."""

    def __init__(self, score: float = 0.0) -> None:
        self.score = score

    def compute(self, req: Request, clock: int) -> float:
        return self.score


class _AgePriority:
    """``base + sign * age_weight * age``, age in ticks (age_weight 1e-6: one unit per second waited)."""

    sign = 1.0

    def __init__(self, base: float = 0.0, age_weight: float = 1e-6) -> None:
        self.base = base
        self.age_weight = self.sign * age_weight

    def compute(self, req: Request, clock: int) -> float:
        return self.base + self.age_weight * float(clock - req.arrival)


@PRIORITY.register("slo-based")
class SLOBasedPriority(_AgePriority):
    """Older requests first."""


@PRIORITY.register("inverted-slo")
class InvertedSLOPriority(_AgePriority):
    """Newest requests first, starving old ones (a pathological template)."""

    sign = -1.0
