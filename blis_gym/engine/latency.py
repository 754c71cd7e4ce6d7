"""Step-time models. Every result is an integer number of ticks (microseconds),
truncated toward zero from the float estimate, as the reference does."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from ..errors import ConfigError
from .overheads import AlphaOverheads
from .roofline import RooflineLatency
from .trained_physics import TrainedPhysicsLatency, TrainedPhysicsSpec


@dataclass(frozen=True)
class BlackboxLatency(AlphaOverheads):
    """Trained alpha/beta regression.

    step = beta0 + beta1 * (prefill tokens this step) + beta2 * (decode tokens this step);
    queueing delay = alpha0 + alpha1 * input length; per-output-token overhead = alpha2.
    """

    alpha: tuple[float, ...]
    beta: tuple[float, ...]
    # What a step time needs to know of the batch: its token counts (see Instance.step).
    batch_view = "counts"

    def __post_init__(self) -> None:
        for name, coeffs in (("alpha", self.alpha), ("beta", self.beta)):
            if len(coeffs) < 3:
                raise ConfigError(f"--{name}-coeffs needs at least 3 values, got {len(coeffs)}")
            for i, c in enumerate(coeffs):
                if not math.isfinite(c):
                    raise ConfigError(f"--{name}-coeffs[{i}] must be finite, got {c}")

    def step_time(self, batch: Sequence) -> int:
        miss = 0
        decode = 0
        for req in batch:
            if req.progress < req.n_in:
                miss += req.num_new
            elif req.n_out > 0:
                decode += req.num_new
        return self.step_time_counts(miss, decode)

    def step_time_counts(self, miss: int, decode: int) -> int:
        """Step time for ``miss`` prefill tokens and ``decode`` decode tokens."""
        b = self.beta
        return int(b[0] + b[1] * float(miss) + b[2] * float(decode))


def latency_model(alpha: tuple[float, ...], beta: tuple[float, ...], roofline=None):
    """The step-time model for an instance: the analytical model ``roofline`` specifies when
    given (a :class:`RooflineSpec`, or a :class:`TrainedPhysicsSpec` carrying its own
    coefficients), else blackbox with ``alpha`` and ``beta``."""
    if isinstance(roofline, TrainedPhysicsSpec):
        return TrainedPhysicsLatency(roofline)
    if roofline is not None:
        return RooflineLatency(roofline, alpha)
    return BlackboxLatency(alpha, beta)
