"""Synthetic requests from a :class:`DistributionWorkload`, bit-for-bit as the reference draws them.

Draw order per run: the shared prefix tokens; then per request the prompt
length (one normal draw, unless min == max), its tokens, the output length
and its tokens. Token ids are uniform in [0, 128000). Arrivals are evenly
spaced ``int(1 / (rate / 1e6))`` ticks apart (the reference's rounding), starting at 0.

``prefix_groups`` > 1 (a blis-gym extension) draws that many prefixes up
front and one group per request, just before its prompt length.
"""

from __future__ import annotations

import numpy as np

from ..config.schema import MAX_INT64, DistributionWorkload
from ..engine.request import Request
from ..gorand import GoRand, IntnStream

MAX_TOKEN_ID = 128000


def clamped_gauss(rng: GoRand | IntnStream, mean: int, std: int, lo: int, hi: int) -> int:
    """A normal draw clamped to [lo, hi] and rounded half away from zero."""
    if lo == hi:
        return lo
    val = rng.norm_float64() * float(std) + float(mean)
    val = max(float(lo), min(float(hi), val))
    # Go's math.Round: half away from zero (Python's round() is half to even).
    whole = float(int(val))
    if abs(val - whole) >= 0.5:
        whole += 1.0 if val > 0 else -1.0
    return int(whole)


def generate(spec: DistributionWorkload, seed: int, horizon: int = MAX_INT64) -> list[Request]:
    """Requests ``request_0 ...`` for ``spec``, drawn from the "workload" stream (the seed itself)."""
    rng = IntnStream(GoRand(seed), MAX_TOKEN_ID)  # every draw but group picks is a normal or a token run
    # The reference keeps the rate per tick and adds int64(1 / rate_per_tick).
    spacing = int(1.0 / (spec.rate / 1e6))
    groups = spec.prefix_groups
    prefixes = [rng.take(spec.prefix_tokens) for _ in range(groups)]
    prefix = prefixes[0]
    out: list[Request] = []
    t = 0
    idx = 0
    while t < horizon and idx < spec.num_requests:
        if groups > 1:  # our extension; one group draws nothing, as BLIS
            prefix = prefixes[rng.intn(groups)]
        n_prompt = clamped_gauss(rng, spec.prompt_mean, spec.prompt_stdev, spec.prompt_min, spec.prompt_max)
        tokens = np.concatenate((prefix, rng.take(n_prompt)))
        n_out = clamped_gauss(rng, spec.output_mean, spec.output_stdev, spec.output_min, spec.output_max)
        out.append(Request(f"request_{idx}", idx, t, tokens, rng.take(n_out)))
        t += spacing
        idx += 1
    return out
