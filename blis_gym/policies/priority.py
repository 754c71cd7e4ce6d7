"""Priority policies: a score per waiting request, recomputed every step."""

from __future__ import annotations

from ..engine.request import Request
from .registry import Registry

PRIORITY: Registry = Registry("priority policy", "--priority-policy", planned=("slo-based", "inverted-slo"))


@PRIORITY.register("constant")
class ConstantPriority:
    """Every request gets the same score."""

    def __init__(self, score: float = 0.0) -> None:
        self.score = score

    def compute(self, req: Request, clock: int) -> float:
        return self.score
