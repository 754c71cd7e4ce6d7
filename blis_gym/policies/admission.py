"""Admission policies: admit or reject each arriving request."""

from __future__ import annotations

import math

from ..engine.batching import SLO_PRIORITY, STANDARD_PRIORITY
from ..engine.request import Request
from ..errors import ConfigError
from .base import RouterState
from .registry import Registry

ADMISSION: Registry = Registry("admission policy", "--admission-policy")


@ADMISSION.register("always-admit")
class AlwaysAdmit:
    """Admit everything."""

    reads_snapshots = False  # only the clock, if anything: the loop may skip building snapshots

    def admit(self, req: Request, state: RouterState) -> tuple[bool, str]:
        return True, ""


@ADMISSION.register("token-bucket")
class TokenBucket:
    """Rate limiting by input tokens.

    The bucket starts full at ``capacity`` tokens and refills continuously at
    ``refill_rate`` tokens per second of simulated time (refilled lazily at
    each decision). A request costs its input length; it is rejected, and
    costs nothing, when the bucket holds less.
    """

    reads_snapshots = False

    def __init__(self, token_bucket_capacity: float = 10000.0, token_bucket_refill_rate: float = 1000.0) -> None:
        for flag, v in (
            ("--token-bucket-capacity", token_bucket_capacity),
            ("--token-bucket-refill-rate", token_bucket_refill_rate),
        ):
            if not (v > 0 and math.isfinite(v)):
                raise ConfigError(f"{flag} must be a finite value > 0, got {v}")
        self.capacity = float(token_bucket_capacity)
        self.refill_rate = float(token_bucket_refill_rate)  # tokens per second
        self.tokens = self.capacity
        self.last_refill = 0  # ticks

    def admit(self, req: Request, state: RouterState) -> tuple[bool, str]:
        elapsed = state.clock - self.last_refill
        if elapsed > 0:
            self.tokens = min(self.capacity, self.tokens + float(elapsed) * self.refill_rate / 1e6)
            self.last_refill = state.clock
        cost = float(req.n_in)
        if self.tokens >= cost:
            self.tokens -= cost
            return True, ""
        return False, "insufficient tokens"


@ADMISSION.register("gaie-legacy")
class GAIELegacy:
    """Upstream BLIS's model of llm-d's (GAIE's) admission: sheddable requests (class priority
    below 0: batch, sheddable, background) are rejected while the pool is saturated; the rest
    always pass. Saturation is the mean over instances of max(queue depth / 5, KV utilization
    / 0.8), GAIE's default thresholds; 1.0 with no instance."""

    QUEUE_DEPTH_THRESHOLD = 5.0
    KV_THRESHOLD = 0.8

    def admit(self, req: Request, state: RouterState) -> tuple[bool, str]:
        if SLO_PRIORITY.get(req.slo_class, STANDARD_PRIORITY) >= 0:
            return True, ""
        sat = self.saturation(state.snapshots)
        if sat >= 1.0:
            return False, f"gaie-saturated: class={req.slo_class} saturation={sat:.2f}"
        return True, ""

    def saturation(self, snapshots) -> float:
        if not snapshots:
            return 1.0
        total = 0.0
        for s in snapshots:
            total += max(s.queue_depth / self.QUEUE_DEPTH_THRESHOLD, s.kv_utilization / self.KV_THRESHOLD)
        return total / len(snapshots)


@ADMISSION.register("reject-all")
class RejectAll:
    """Reject everything (a pathological template for testing)."""

    reads_snapshots = False

    def admit(self, req: Request, state: RouterState) -> tuple[bool, str]:
        return False, "reject-all"
