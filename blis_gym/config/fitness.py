"""``--fitness-weights``: which run metrics a fitness score weighs, and how much.

The score itself is computed from a finished run in :mod:`blis_gym.report.fitness`.
"""

from __future__ import annotations

import math

from ..errors import ConfigError
from ..goparse import name_value_pairs, parse_float

FITNESS_KEYS: tuple[str, ...] = (
    "throughput",
    "tokens_per_sec",
    "p99_ttft",
    "p50_ttft",
    "mean_ttft",
    "p99_e2e",
    "p50_e2e",
    "mean_e2e",
)
"""Metric names accepted in ``--fitness-weights``, in the reference's listing order."""


def unknown_key_error(key: str, flag: str) -> ConfigError:
    return ConfigError(f"{flag}: unknown fitness metric key {key!r} (valid keys: {', '.join(FITNESS_KEYS)})")


def parse_fitness_weights(text: str, flag: str = "--fitness-weights") -> dict[str, float]:
    """Parse ``"key:weight,key:weight"`` into a dict (empty text gives an empty dict).

    Entries are split on ',' and trimmed; each must be ``key:number`` with a finite,
    non-negative number. A key given twice keeps its last weight. Unknown keys are
    rejected here too, after every entry has parsed (the first in sorted order is named).
    Raises :class:`ConfigError` naming ``flag`` and the offending entry.
    """
    weights: dict[str, float] = {}
    if text == "":
        return weights
    for key, value_text in name_value_pairs(text, flag, "key:weight", "throughput:0.5,p99_ttft:0.3"):
        value = parse_float(value_text)
        if value is None:
            raise ConfigError(f"{flag}: weight for {key!r} is not a number: {value_text!r}")
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"{flag}: weight for {key!r} must be a finite non-negative number, got {value_text!r}")
        weights[key] = value
    for key in sorted(weights):
        if key not in FITNESS_KEYS:
            raise unknown_key_error(key, flag)
    return weights
