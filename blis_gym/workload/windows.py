"""Windows of a trace and its speed: what part of a recorded trace a run replays, and how fast.

``--trace-start S --trace-duration D`` keep the requests arriving in ``[S, S + D)`` seconds of
the trace's own clock (D = 0: to the end) and re-base them to the window's start;
``--trace-speedup X`` then divides every arrival by X, to load a small cluster with a big
service's traffic. Times are whole microseconds: an arrival ``t`` becomes
``floor((t - S) / X)``, computed exactly (X as the decimal number it was given as).

``--trace-window-spans A:B[,C:D]`` draws S from the seed instead, a whole second with the
window inside the span: seeds below the held-out boundary from ``A:B``, the others from
``C:D`` (the environments train on windows of the first and are evaluated on the second).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Optional, Sequence

import numpy as np

from ..errors import ConfigError

_DRAWS = 1000  # windows drawn for a seed before giving up on finding one that holds a request


def _splitmix64(x: int) -> int:
    """SplitMix64's output for ``x``: a fixed, well-mixed 64-bit function of the seed."""
    z = (x + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return z ^ (z >> 31)


def parse_spans(text: str, duration_us: int) -> list[tuple[int, int]]:
    """``--trace-window-spans A:B[,C:D]`` as (start, end) µs pairs, each long enough for a window
    of ``duration_us``; ConfigError naming the flag otherwise."""
    spans = []
    parts = text.split(",")
    for part in parts:
        a, sep, b = part.strip().partition(":")
        try:
            first, last = int(_exact(float(a)) * 1_000_000), int(_exact(float(b)) * 1_000_000)
        except ValueError:
            first = last = -1
        if not sep or first < 0 or last < 0:
            raise ConfigError(
                f"--trace-window-spans: {part.strip()!r} is not START:END in seconds (e.g. 0:2400,2400:3600)"
            )
        if last - first < duration_us:
            raise ConfigError(
                f"--trace-window-spans: the span {part.strip()} is shorter than a window "
                f"(--trace-duration {duration_us / 1e6:g} s)"
            )
        spans.append((first, last))
    if len(spans) > 2:
        raise ConfigError(f"--trace-window-spans takes one or two spans (training, held out), got {len(spans)}")
    return spans


def _exact(x: float) -> Fraction:
    """``x`` as the decimal number it was written as (its shortest repr), exactly."""
    return Fraction(repr(float(x)))


@dataclass(frozen=True)
class TraceWindow:
    """``start_us`` and ``duration_us`` (None: to the end) on the trace's clock; ``speedup``."""

    start_us: int = 0
    duration_us: Optional[int] = None
    speedup: Fraction = Fraction(1)

    @classmethod
    def from_flags(
        cls,
        start_s: float,
        duration_s: float,
        speedup: float,
        spans: str = "",
        seed: int = 0,
        held_out: int = 0,
        draw: int = 0,
    ) -> "TraceWindow":
        """The window of ``--trace-start``, ``--trace-duration`` (0: to the end) and
        ``--trace-speedup``, or the ``draw``-th drawn for ``seed`` from ``--trace-window-spans``
        (``held_out``: the first seed of the second span); ConfigError naming the flag for a
        value out of range."""
        for flag, value in (("--trace-start", start_s), ("--trace-duration", duration_s)):
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"{flag} must be a finite number of seconds >= 0, got {value}")
        if not (math.isfinite(speedup) and speedup > 0):
            raise ConfigError(f"--trace-speedup must be a finite number > 0, got {speedup}")
        start = int(_exact(start_s) * 1_000_000)
        duration = int(_exact(duration_s) * 1_000_000) if duration_s > 0 else None
        if spans:
            if duration is None:
                raise ConfigError("--trace-window-spans needs --trace-duration > 0 (the length of each window)")
            chosen = parse_spans(spans, duration)
            first, last = chosen[0] if seed < held_out or len(chosen) == 1 else chosen[1]
            x = _splitmix64(seed)
            for _ in range(draw):
                x = _splitmix64(x)
            start = first + (x % ((last - first - duration) // 1_000_000 + 1)) * 1_000_000
        return cls(start, duration, _exact(speedup))

    @classmethod
    def choose(
        cls,
        arrivals_us: np.ndarray,
        start_s: float,
        duration_s: float,
        speedup: float,
        spans: str = "",
        seed: int = 0,
        held_out: int = 0,
    ) -> "TraceWindow":
        """``from_flags`` of the same arguments; a window drawn from ``spans`` that holds none of
        ``arrivals_us`` (a lull in the trace) is drawn again, from the seed's next draw."""
        flags = (start_s, duration_s, speedup, spans, seed, held_out)
        window = cls.from_flags(*flags)
        for draw in range(1, _DRAWS if spans else 1):
            if window.selects(arrivals_us).any():
                break
            window = cls.from_flags(*flags, draw=draw)
        return window

    @property
    def whole(self) -> bool:
        """Whether this is the whole trace at its own speed."""
        return self.start_us == 0 and self.duration_us is None and self.speedup == 1

    def selects(self, arrival_us: np.ndarray) -> np.ndarray:
        """Which of ``arrival_us`` (the trace's clock) fall in the window."""
        keep = arrival_us >= self.start_us
        if self.duration_us is not None:
            keep &= arrival_us < self.start_us + self.duration_us
        return keep

    def arrival(self, t_us: int) -> int:
        """The arrival tick, in the run, of a request at ``t_us`` on the trace's clock."""
        shifted = t_us - self.start_us
        if self.speedup == 1:
            return shifted
        return (shifted * self.speedup.denominator) // self.speedup.numerator

    def describe(self) -> str:
        end = "the end" if self.duration_us is None else f"{(self.start_us + self.duration_us) / 1e6:g} s"
        return f"[{self.start_us / 1e6:g} s, {end})"

    def apply(self, requests: Sequence, renumber: bool, horizon: Optional[int] = None) -> list:
        """The ``requests`` (fresh, not yet run) in the window, re-based and sped up, in order;
        one arriving after ``horizon`` ticks ends the list (as in a CSV trace). With
        ``renumber`` they are named ``request_0, 1, ...`` as in a trace of just them."""
        kept = []
        for i in np.flatnonzero(self.selects(arrivals_of(requests))).tolist():
            r = requests[i]
            r.arrival = self.arrival(r.arrival)
            if horizon is not None and r.arrival > horizon:
                break
            r.index = len(kept)
            if renumber:
                r.id = f"request_{r.index}"
            kept.append(r)
        return kept


def arrivals_of(requests: Sequence) -> np.ndarray:
    """The requests' arrival ticks, as an int64 array."""
    return np.fromiter((r.arrival for r in requests), dtype=np.int64, count=len(requests))
