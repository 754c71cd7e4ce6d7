"""Arrival and length samplers of workload specs, drawing exactly as the reference does.

Every sampler takes the client's random stream (a :class:`~blis_gym.gorand.IntnStream`
or :class:`~blis_gym.gorand.GoRand`) and makes the same Go ``math/rand`` draws,
in the same order, with the same float operations (Go's ``Log``, ``Exp``,
``Pow`` and ``Gamma`` through :mod:`blis_gym.gomath`), so generated workloads
match BLIS's bit for bit. Two registries map spec names to factories:
``ARRIVALS`` (inter-arrival times in ticks, always >= 1) and ``LENGTH_LAWS``
(token counts, always >= 1 except a gaussian with ``min == max``, which
returns ``min`` as it is, and empirical bins of 0 tokens, as in BLIS).
"""

from __future__ import annotations

import logging
import math
from bisect import bisect_left
from typing import Callable, Mapping, Optional, Protocol, Union

from ..gomath import SMALLEST_NONZERO, go_exp, go_gamma, go_int64, go_log, go_pow, go_round, round_or, trunc_or
from ..gorand import GoRand, IntnStream
from .spec import ArrivalSpec, DistSpec

log = logging.getLogger("blis_gym")

Rng = Union[GoRand, IntnStream]
MIN_RATE_PER_US = 1e-15  # the reference's floor, against division by zero
_EXP_ARG_MAX = 709.0  # math.exp overflows above ~709.78; Go's Exp returns +Inf there


class ArrivalSampler(Protocol):
    def iat(self, rng: Rng) -> int:
        """The next inter-arrival time in ticks (µs), >= 1."""


class LengthSampler(Protocol):
    def sample(self, rng: Rng) -> int:
        """A token count."""


# --- arrivals ---------------------------------------------------------------------------------


class PoissonArrivals:
    """Exponential gaps (CV 1) at ``rate`` requests per µs."""

    __slots__ = ("rate",)

    def __init__(self, rate: float) -> None:
        self.rate = rate

    def iat(self, rng: Rng) -> int:
        return max(go_int64(rng.exp_float64() / self.rate), 1)


class ConstantArrivals:
    """Fixed gaps of ``int64(1 / rate)`` µs (at least 1): upstream's ``constant`` process."""

    __slots__ = ("gap",)

    def __init__(self, rate: float) -> None:
        self.gap = max(go_int64(1.0 / rate), 1)

    def iat(self, rng: Rng) -> int:
        return self.gap


def _marsaglia_tsang(rng: Rng, shape: float, scale: float) -> float:
    """Gamma(shape >= 1, scale) by Marsaglia and Tsang's squeeze method, in Go's operation order."""
    d = shape - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    while True:
        while True:
            x = rng.norm_float64()
            v = 1.0 + c * x
            if v > 0:
                break
        v = v * v * v
        u = rng.float64()
        if u < 1.0 - 0.0331 * (x * x) * (x * x):
            return d * v * scale
        if go_log(u) < 0.5 * x * x + d * (1.0 - v + go_log(v)):
            return d * v * scale


class GammaArrivals:
    """Gamma gaps with shape 1/CV² and mean 1/rate; CV > 1 is bursty.

    Shape < 1 uses Gamma(shape) = Gamma(shape + 1) · U^(1/shape), U drawn first.
    """

    __slots__ = ("shape", "scale", "inv_shape")

    def __init__(self, shape: float, scale: float) -> None:
        self.shape = shape
        self.scale = scale
        self.inv_shape = 1.0 / shape

    def iat(self, rng: Rng) -> int:
        if self.shape >= 1.0:
            return max(go_int64(_marsaglia_tsang(rng, self.shape, self.scale)), 1)
        u = rng.float64()
        g = _marsaglia_tsang(rng, self.shape + 1.0, self.scale)
        y = self.inv_shape
        return max(trunc_or(g * math.pow(u, y), lambda: g * go_pow(u, y)), 1)


class WeibullArrivals:
    """Weibull gaps by inverse CDF: scale · (-ln U)^(1/k)."""

    __slots__ = ("scale", "inv_shape")

    def __init__(self, shape: float, scale: float) -> None:
        self.scale = scale
        self.inv_shape = 1.0 / shape

    def iat(self, rng: Rng) -> int:
        u = rng.float64()
        if u == 0:
            u = SMALLEST_NONZERO
        x = -go_log(u)
        y = self.inv_shape
        s = self.scale
        return max(trunc_or(s * math.pow(x, y), lambda: s * go_pow(x, y)), 1)


def weibull_cv(k: float) -> float:
    """Coefficient of variation of a Weibull law with shape ``k``."""
    g1 = go_gamma(1.0 + 1.0 / k)
    g2 = go_gamma(1.0 + 2.0 / k)
    ratio = g2 / (g1 * g1) - 1.0
    return math.sqrt(ratio) if ratio >= 0 else math.nan


def weibull_shape_from_cv(target: float) -> float:
    """Shape k in [0.1, 100] with CV(k) within 0.001 of ``target``, by 100 bisection steps."""
    lo, hi = 0.1, 100.0
    for _ in range(100):
        mid = (lo + hi) / 2.0
        cv = weibull_cv(mid)
        if abs(cv - target) < 0.001:
            return mid
        if cv > target:  # CV falls as k grows
            lo = mid
        else:
            hi = mid
    log.warning("weibull shape: bisection did not converge for CV=%.3f; using k=%.3f", target, (lo + hi) / 2.0)
    return (lo + hi) / 2.0


def _cv(spec: ArrivalSpec) -> float:
    return spec.cv if spec.cv is not None and spec.cv > 0 else 1.0


def _poisson(spec: ArrivalSpec, rate: float) -> ArrivalSampler:
    return PoissonArrivals(rate)


def _gamma(spec: ArrivalSpec, rate: float) -> ArrivalSampler:
    cv = _cv(spec)
    shape = 1.0 / (cv * cv)
    mean = 1.0 / rate
    if shape < 0.01:
        log.warning("gamma shape %.4f (CV=%.1f) is very small; falling back to Poisson arrivals", shape, cv)
        return PoissonArrivals(rate)
    return GammaArrivals(shape, mean * cv * cv)


def _weibull(spec: ArrivalSpec, rate: float) -> ArrivalSampler:
    k = weibull_shape_from_cv(_cv(spec))
    return WeibullArrivals(k, (1.0 / rate) / go_gamma(1.0 + 1.0 / k))


ARRIVALS: Mapping[str, Callable[[ArrivalSpec, float], ArrivalSampler]] = {
    "constant": lambda spec, rate: ConstantArrivals(rate),
    "poisson": _poisson,
    "gamma": _gamma,
    "weibull": _weibull,
}


def arrival_sampler(spec: ArrivalSpec, rate_per_us: float) -> ArrivalSampler:
    """The sampler for a (validated) arrival spec at ``rate_per_us`` requests per µs."""
    return ARRIVALS[spec.process](spec, max(rate_per_us, MIN_RATE_PER_US))


# --- lengths ----------------------------------------------------------------------------------


class GaussianLength:
    """A normal draw clamped to [min, max] and rounded half away from zero; min == max draws nothing."""

    __slots__ = ("mean", "std", "lo", "hi")

    def __init__(self, mean: float, std: float, lo: int, hi: int) -> None:
        self.mean, self.std, self.lo, self.hi = mean, std, lo, hi

    def sample(self, rng: Rng) -> int:
        if self.lo == self.hi:
            return self.lo
        val = rng.norm_float64() * self.std + self.mean
        clamped = min(float(self.hi), max(float(self.lo), val))
        return max(int(go_round(clamped)), 1)


class ExponentialLength:
    __slots__ = ("mean",)

    def __init__(self, mean: float) -> None:
        self.mean = mean

    def sample(self, rng: Rng) -> int:
        return max(go_int64(go_round(rng.exp_float64() * self.mean)), 1)


class ParetoLogNormalLength:
    """With probability ``mix_weight`` Pareto(alpha, xm), else LogNormal(mu, sigma)."""

    __slots__ = ("inv_alpha", "xm", "mu", "sigma", "mix")

    def __init__(self, alpha: float, xm: float, mu: float, sigma: float, mix: float) -> None:
        self.inv_alpha, self.xm, self.mu, self.sigma, self.mix = 1.0 / alpha, xm, mu, sigma, mix

    def sample(self, rng: Rng) -> int:
        if rng.float64() < self.mix:
            u = rng.float64()
            if u == 0:
                u = SMALLEST_NONZERO
            xm, y = self.xm, self.inv_alpha
            n = round_or(xm / math.pow(u, y), lambda: xm / go_pow(u, y))
        else:
            arg = self.mu + self.sigma * rng.norm_float64()
            approx = math.exp(arg) if arg < _EXP_ARG_MAX else math.inf
            n = round_or(approx, lambda: go_exp(arg))
        return max(n, 1)


class EmpiricalLength:
    """Inverse-CDF draws from a PDF of token counts (normalized; zero bins dropped)."""

    __slots__ = ("values", "cdf")

    def __init__(self, pdf: Mapping[int, float]) -> None:
        keys = sorted(pdf)
        total = 0.0
        for k in keys:
            total += pdf[k]
        self.values: list[int] = []
        self.cdf: list[float] = []
        cumulative = 0.0
        for k in keys:
            p = pdf[k]
            if p <= 0:
                continue
            cumulative += p / total
            self.values.append(k)
            self.cdf.append(cumulative)
        if self.cdf:
            self.cdf[-1] = 1.0

    def sample(self, rng: Rng) -> int:
        values = self.values
        if len(values) < 2:
            return values[0] if values else 1
        idx = bisect_left(self.cdf, rng.float64())
        return values[min(idx, len(values) - 1)]


class ConstantLength:
    __slots__ = ("value",)

    def __init__(self, value: int) -> None:
        self.value = max(value, 1)

    def sample(self, rng: Rng) -> int:
        return self.value


def empirical_pdf(params: Mapping[str, float]) -> dict[int, float]:
    """Token count -> probability from a spec's string keys (validated as integers)."""
    return {int(k.strip()): v for k, v in params.items()}


LENGTH_LAWS: Mapping[str, Callable[[Mapping[str, float]], LengthSampler]] = {
    "gaussian": lambda p: GaussianLength(p["mean"], p["std_dev"], go_int64(p["min"]), go_int64(p["max"])),
    "exponential": lambda p: ExponentialLength(p["mean"]),
    "pareto_lognormal": lambda p: ParetoLogNormalLength(p["alpha"], p["xm"], p["mu"], p["sigma"], p["mix_weight"]),
    "empirical": lambda p: EmpiricalLength(empirical_pdf(p)),
    "constant": lambda p: ConstantLength(go_int64(p["value"])),
}


def length_sampler(spec: DistSpec) -> Optional[LengthSampler]:
    """The sampler of a validated length law (empirical files already read into params);
    None for an unset (empty-type) law."""
    return LENGTH_LAWS[spec.type](spec.params) if spec.type else None
