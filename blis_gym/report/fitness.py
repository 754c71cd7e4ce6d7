"""Fitness score of a finished run: a weighted sum of normalised metrics.

``--fitness-weights throughput:0.5,p99_ttft:0.3`` asks for the section::

    === Fitness Evaluation ===
    Score: 0.412345
      p99_ttft: 0.501234
      throughput: 0.321456

Each metric is squashed into [0, 1] before weighting, so that throughput (tens
to hundreds of requests/s) and latency (thousands of ticks) can be combined:

* higher-is-better rates use ``v / (v + reference)``;
* lower-is-better latencies use ``1 / (1 + ticks / 1000)`` (1 ms scores 0.5).

Latency figures stay in ticks (microseconds) throughout this module; nothing is
converted to milliseconds. Floating-point operations are done in the same
order as the reference so that scores agree to the last bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from ..config.fitness import FITNESS_KEYS, unknown_key_error
from ..engine.metrics import InstanceMetrics

REFERENCE_RPS = 100.0  # requests/s scoring 0.5
REFERENCE_TPS = 10000.0  # output tokens/s scoring 0.5
REFERENCE_TICKS = 1000.0  # latency (1 ms) scoring 0.5

HEADER = "=== Fitness Evaluation ==="


# --- distributions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Distribution:
    """Summary of a set of values, in the values' own unit (ticks for latencies).

    The all-zero default (``count == 0``) stands for an empty set.
    """

    mean: float = 0.0
    p50: float = 0.0
    p95: float = 0.0
    p99: float = 0.0
    min: float = 0.0
    max: float = 0.0
    count: int = 0


def percentile(sorted_values: list[float], p: float) -> float:
    """The ``p``-th percentile (0..100) of ascending values, interpolating linearly between ranks.

    Returns 0.0 for no values; the value is in the input's unit (no ms conversion).
    """
    n = len(sorted_values)
    if n == 0:
        return 0.0
    if n == 1:
        return sorted_values[0]
    rank = p / 100.0 * float(n - 1)
    lo = math.floor(rank)
    hi = math.ceil(rank)
    if lo == hi:
        return sorted_values[lo]
    frac = rank - float(lo)
    return sorted_values[lo] + frac * (sorted_values[hi] - sorted_values[lo])


def distribution(values: Iterable[float]) -> Distribution:
    """Mean, median, p95, p99, min, max and count of ``values`` (any order, any unit)."""
    ordered = sorted(float(v) for v in values)
    if not ordered:
        return Distribution()
    # Left-to-right float64 addition over the ascending values: the reference
    # sums in exactly this order (and sum()/fsum/numpy would round differently).
    total = 0.0
    for v in ordered:
        total += v
    return Distribution(
        mean=total / float(len(ordered)),
        p50=percentile(ordered, 50),
        p95=percentile(ordered, 95),
        p99=percentile(ordered, 99),
        min=ordered[0],
        max=ordered[-1],
        count=len(ordered),
    )


# --- cluster figures --------------------------------------------------------------------------


@dataclass(frozen=True)
class RawMetrics:
    """The latency and throughput figures that fitness is computed from.

    ``ttft``/``e2e`` are distributions in ticks (microseconds); the rates are per
    simulated second.
    """

    ttft: Distribution = field(default_factory=Distribution)
    e2e: Distribution = field(default_factory=Distribution)
    requests_per_sec: float = 0.0
    tokens_per_sec: float = 0.0


def raw_metrics(aggregate: InstanceMetrics) -> RawMetrics:
    """Latency distributions and throughput of the whole cluster (``aggregate`` = merged metrics).

    Rates stay 0.0 unless the run advanced the clock and completed something;
    the duration is ``sim_ended`` ticks / 1e6 seconds.
    """
    rps = 0.0
    tps = 0.0
    if aggregate.sim_ended > 0 and aggregate.completed > 0:
        seconds = float(aggregate.sim_ended) / 1e6
        rps = float(aggregate.completed) / seconds
        tps = float(aggregate.total_output_tokens) / seconds
    return RawMetrics(
        ttft=distribution(aggregate.ttfts.values()),
        e2e=distribution(aggregate.e2es.values()),
        requests_per_sec=rps,
        tokens_per_sec=tps,
    )


# --- score ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FitnessResult:
    """Weighted score and the normalised (unweighted) value of each weighted metric."""

    score: float
    components: dict[str, float]


def metric_value(raw: RawMetrics, key: str) -> float:
    """The normalised [0, 1] value of metric ``key`` (one of :data:`FITNESS_KEYS`)."""
    if key == "throughput":
        return raw.requests_per_sec / (raw.requests_per_sec + REFERENCE_RPS)
    if key == "tokens_per_sec":
        return raw.tokens_per_sec / (raw.tokens_per_sec + REFERENCE_TPS)
    latency = {
        "p99_ttft": raw.ttft.p99,
        "p50_ttft": raw.ttft.p50,
        "mean_ttft": raw.ttft.mean,
        "p99_e2e": raw.e2e.p99,
        "p50_e2e": raw.e2e.p50,
        "mean_e2e": raw.e2e.mean,
    }
    if key not in latency:
        raise KeyError(key)
    return 1.0 / (1.0 + latency[key] / REFERENCE_TICKS)


def compute_fitness(raw: RawMetrics, weights: Mapping[str, float], flag: str = "--fitness-weights") -> FitnessResult:
    """Score = sum of weight * normalised value, accumulated over the keys in sorted order.

    Raises :class:`ConfigError` for a key outside :data:`FITNESS_KEYS`.
    """
    keys = sorted(weights)
    for key in keys:
        if key not in FITNESS_KEYS:
            raise unknown_key_error(key, flag)
    score = 0.0
    components: dict[str, float] = {}
    for key in keys:
        value = metric_value(raw, key)
        components[key] = value
        score += value * weights[key]
    return FitnessResult(score, components)


def go_fixed(x: float, digits: int) -> str:
    """``x`` as Go's ``%.<digits>f`` prints it (Python agrees for finite values; Go spells inf/nan differently)."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    return f"{x:.{digits}f}"


def fitness_lines(result: FitnessResult) -> list[str]:
    """The printed ``=== Fitness Evaluation ===`` section, one string per line (no newlines)."""
    lines = [HEADER, f"Score: {go_fixed(result.score, 6)}"]
    for key in sorted(result.components):
        lines.append(f"  {key}: {go_fixed(result.components[key], 6)}")
    return lines
