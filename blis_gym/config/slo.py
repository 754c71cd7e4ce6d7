"""Goodput SLO targets: per class, a TTFT, a mean ITL and an E2E limit (ms; 0 means not gated).

Targets come from ``--slo-ttft``, ``--slo-itl`` and ``--slo-e2e`` (``class=duration`` pairs,
comma-separated, durations in Go's syntax: ``100ms``, ``1.5s``, ``250us``), from a workload
spec's or a trace v2 header's ``goodput_slo_targets`` (``{class: {ttft_ms, itl_ms, e2e_ms}}``),
merged dimension by dimension with upstream BLIS's precedence: flag over trace header over spec.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from ..errors import ConfigError

# Go's time.ParseDuration units, in milliseconds.
_UNIT_MS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "μs": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_TERM = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
DIMENSIONS = ("ttft", "itl", "e2e")


@dataclass(frozen=True)
class SLOTarget:
    """One class's limits in ms; 0 leaves that dimension ungated."""

    ttft_ms: float = 0.0
    itl_ms: float = 0.0
    e2e_ms: float = 0.0

    def limits(self) -> dict[str, float]:
        """The gated dimensions, name -> limit in ms."""
        return {d: v for d, v in zip(DIMENSIONS, (self.ttft_ms, self.itl_ms, self.e2e_ms)) if v > 0}

    def as_yaml(self) -> dict[str, float]:
        return {f"{d}_ms": v for d, v in self.limits().items()}


SLOTargets = dict[str, SLOTarget]


def parse_duration_ms(text: str) -> float:
    """A Go duration (``"100ms"``, ``"1.5s"``, ``"1m30s"``) in ms; ValueError if malformed."""
    s = text.strip()
    sign = 1.0
    if s[:1] in "+-" and s:
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise ValueError(f"invalid duration {text!r}")
    total = 0.0
    pos = 0
    for m in _TERM.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_MS[m.group(2)]
        pos = m.end()
    if pos != len(s):
        hint = " (missing unit: ns, us, ms, s, m or h)" if re.fullmatch(r"[\d.]+", s) else ""
        raise ValueError(f"invalid duration {text!r}{hint}")
    return sign * total


def parse_slo_flag(flag: str, text: str) -> dict[str, float]:
    """``"critical=100ms,standard=500ms"`` -> {class: ms}; empty text -> {}. ConfigError naming
    ``flag`` on a malformed pair, an empty class, a bad duration or a limit that is not > 0."""
    text = text.strip()
    if not text:
        return {}
    out: dict[str, float] = {}
    for pair in text.split(","):
        pair = pair.strip()
        key, eq, value = pair.partition("=")
        if not eq:
            raise ConfigError(
                f"{flag}: invalid pair {pair!r} in {text!r} (expected class=duration, e.g. default=500ms)"
            )
        key = key.strip()
        if not key:
            raise ConfigError(f"{flag}: empty class in pair {pair!r} (expected class=duration, e.g. default=500ms)")
        try:
            ms = parse_duration_ms(value)
        except ValueError as e:
            raise ConfigError(f"{flag}: {e} in pair {pair!r} (durations like 100ms, 1.5s, 250us)") from None
        if not (ms > 0 and math.isfinite(ms)):
            raise ConfigError(f"{flag}: the limit in pair {pair!r} must be > 0")
        out[key] = ms
    return out


def targets_from_yaml(doc: Any, where: str) -> SLOTargets:
    """A ``goodput_slo_targets`` mapping (spec or trace header) -> targets; ConfigError naming
    ``where`` and the key on a bad entry."""
    if doc is None:
        return {}
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{where}: goodput_slo_targets must map an SLO class to {{ttft_ms, itl_ms, e2e_ms}}")
    out: SLOTargets = {}
    for cls, dims in doc.items():
        if not isinstance(dims, Mapping):
            raise ConfigError(f"{where}: goodput_slo_targets.{cls} must be a mapping of ttft_ms, itl_ms, e2e_ms")
        unknown = set(dims) - {"ttft_ms", "itl_ms", "e2e_ms"}
        if unknown:
            raise ConfigError(
                f"{where}: goodput_slo_targets.{cls}: unknown key {sorted(unknown)[0]!r} "
                "(valid: ttft_ms, itl_ms, e2e_ms)"
            )
        values = {}
        for key, value in dims.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"{where}: goodput_slo_targets.{cls}.{key} must be a number >= 0 (ms), got {value!r}")
            values[key] = float(value)
        out[str(cls)] = SLOTarget(**values)
    return out


def merge_targets(
    flags: Mapping[str, Mapping[str, float]],
    header: Optional[SLOTargets] = None,
    spec: Optional[SLOTargets] = None,
) -> SLOTargets:
    """Per class and dimension, the flag's limit, else the trace header's, else the spec's.
    ``flags`` maps a dimension (ttft, itl, e2e) to {class: ms}. Classes left with no limit
    are dropped; the result's classes are sorted."""
    header = header or {}
    spec = spec or {}
    classes = set(header) | set(spec)
    for per_class in flags.values():
        classes |= set(per_class)
    out: SLOTargets = {}
    for cls in sorted(classes):
        base = spec.get(cls, SLOTarget())
        over = header.get(cls, SLOTarget())
        dims = {}
        for d in DIMENSIONS:
            value = getattr(base, f"{d}_ms")
            if getattr(over, f"{d}_ms") > 0:
                value = getattr(over, f"{d}_ms")
            if cls in flags.get(d, {}):
                value = flags[d][cls]
            dims[f"{d}_ms"] = value
        target = SLOTarget(**dims)
        if target.limits():
            out[cls] = target
    return out


def flag_targets(ttft: str, itl: str, e2e: str) -> dict[str, dict[str, float]]:
    """The three ``--slo-*`` flags parsed, dimension -> {class: ms}."""
    return {
        "ttft": parse_slo_flag("--slo-ttft", ttft),
        "itl": parse_slo_flag("--slo-itl", itl),
        "e2e": parse_slo_flag("--slo-e2e", e2e),
    }
