"""The workload spec schema (``--workload-spec``): BLIS's ServeGen-style YAML format.

A spec describes traffic as clients. Each client has a share of the aggregate
rate, an arrival process, input and output length laws and optional extras
(a shared prefix group, activity windows, multimodal inputs, multi-turn
reasoning sessions). Instead of clients a spec may point at native ServeGen
data (``servegen_data``) or give a compact inference-perf block
(``inference_perf``); both expand into clients.

The dataclasses mirror the YAML keys one to one (:mod:`blis_gym.config.yamltyped`
decodes them); :func:`validate` checks a whole expanded spec once and raises a
:class:`~blis_gym.errors.ConfigError` naming the key path. Units: rates in
requests per second, times in microseconds (``start_us``, ``think_time_us``,
``horizon``), ``stages[].duration`` and ServeGen spans in seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

from ..config.slo import SLOTarget
from ..errors import ConfigError

ARRIVAL_PROCESSES = ("poisson", "gamma", "weibull", "constant")  # constant: upstream's newer, fixed gaps
DIST_TYPES = ("gaussian", "exponential", "pareto_lognormal", "empirical", "constant")
CATEGORIES = ("language", "multimodal", "reasoning")
SLO_CLASSES = ("realtime", "interactive", "batch")  # BLIS's at the reference commit
# Upstream BLIS's newer names (GAIE's), accepted as well.
UPSTREAM_SLO_CLASSES = ("critical", "standard", "sheddable", "background")
CONTEXT_GROWTH = ("accumulate", "fixed")
WEIBULL_CV_RANGE = (0.01, 10.4)
# Parameters each length law needs (all of them) and accepts (no others).
DIST_PARAMS: dict[str, tuple[str, ...]] = {
    "gaussian": ("mean", "std_dev", "min", "max"),
    "exponential": ("mean",),
    "pareto_lognormal": ("alpha", "xm", "mu", "sigma", "mix_weight"),
    "constant": ("value",),
}


@dataclass(frozen=True)
class ArrivalSpec:
    """Inter-arrival process; ``cv`` (coefficient of variation) shapes gamma and weibull."""

    process: str = ""
    cv: Optional[float] = None


@dataclass(frozen=True)
class DistSpec:
    """A token-length law: ``type`` plus its ``params`` (or an empirical PDF inline or in ``file``)."""

    type: str = ""
    params: dict[str, float] = field(default_factory=dict)
    file: str = ""


@dataclass(frozen=True)
class NetworkSpec:
    """Client network (round trip in ms, bandwidth in Mbit/s); parsed, no effect on results, as in BLIS."""

    rtt_ms: float = 0.0
    bandwidth_mbps: float = 0.0


@dataclass(frozen=True)
class ActiveWindow:
    """``[start_us, end_us)``: when a client sends."""

    start_us: int = 0
    end_us: int = 0


@dataclass(frozen=True)
class LifecycleSpec:
    windows: tuple[ActiveWindow, ...] = ()


@dataclass(frozen=True)
class MultimodalSpec:
    """Input = text + the sum of per-item tokens over a drawn count of images, audio clips and videos."""

    text_distribution: DistSpec = field(default_factory=DistSpec)
    image_distribution: DistSpec = field(default_factory=DistSpec)
    image_count_distribution: DistSpec = field(default_factory=DistSpec)
    audio_distribution: DistSpec = field(default_factory=DistSpec)
    audio_count_distribution: DistSpec = field(default_factory=DistSpec)
    video_distribution: DistSpec = field(default_factory=DistSpec)
    video_count_distribution: DistSpec = field(default_factory=DistSpec)


@dataclass(frozen=True)
class MultiTurnSpec:
    """Sessions of ``max_rounds`` requests; round k+1 arrives ``think_time_us`` + its predecessor's
    output length (in µs) after round k; ``accumulate`` prepends all earlier turns."""

    max_rounds: int = 0
    think_time_us: int = 0
    context_growth: str = ""


@dataclass(frozen=True)
class ReasoningSpec:
    """Reasoning share of the output (percent, drawn per round) and optional multi-turn sessions."""

    reason_ratio_distribution: DistSpec = field(default_factory=DistSpec)
    multi_turn: Optional[MultiTurnSpec] = None


@dataclass(frozen=True)
class ClientSpec:
    id: str = ""
    tenant_id: str = ""
    slo_class: str = ""
    rate_fraction: float = 0.0
    arrival: ArrivalSpec = field(default_factory=ArrivalSpec)
    input_distribution: DistSpec = field(default_factory=DistSpec)
    output_distribution: DistSpec = field(default_factory=DistSpec)
    prefix_group: str = ""
    prefix_length: int = 0  # tokens; 0 = 50 (the group's first client decides)
    streaming: bool = False
    network: Optional[NetworkSpec] = None
    lifecycle: Optional[LifecycleSpec] = None
    multimodal: Optional[MultimodalSpec] = None
    reasoning: Optional[ReasoningSpec] = None


@dataclass(frozen=True)
class ServeGenDataSpec:
    """A folder of ServeGen ``chunk-<id>-trace.csv`` / ``chunk-<id>-dataset.json`` files."""

    path: str = ""
    span_start: int = 0  # seconds; 0 = from the start
    span_end: int = 0  # seconds; 0 = to the end


@dataclass(frozen=True)
class StageSpec:
    rate: float = 0.0  # requests per second
    duration: int = 0  # seconds


@dataclass(frozen=True)
class SharedPrefixSpec:
    num_unique_system_prompts: int = 0
    num_users_per_system_prompt: int = 0
    system_prompt_len: int = 0
    question_len: int = 0
    output_len: int = 0
    enable_multi_turn_chat: bool = False


@dataclass(frozen=True)
class InferencePerfSpec:
    stages: tuple[StageSpec, ...] = ()
    shared_prefix: Optional[SharedPrefixSpec] = None


@dataclass(frozen=True)
class WorkloadSpec:
    version: str = ""
    seed: int = 0
    category: str = ""
    clients: tuple[ClientSpec, ...] = ()
    aggregate_rate: float = 0.0
    horizon: int = 0  # ticks; 0 = none (then the simulation horizon, i.e. --horizon)
    num_requests: int = 0  # 0 = unlimited (bounded by the horizon)
    servegen_data: Optional[ServeGenDataSpec] = None
    inference_perf: Optional[InferencePerfSpec] = None
    # Upstream's goodput targets per SLO class (ms); --slo-* flags override them.
    goodput_slo_targets: Optional[dict[str, SLOTarget]] = None


# --- validation -------------------------------------------------------------------------------


def _fail(where: str, key: str, problem: str) -> None:
    raise ConfigError(f"{where}: {key}: {problem}")


def _finite(x: float) -> bool:
    return math.isfinite(x)


def validate_dist(where: str, key: str, d: DistSpec) -> None:
    """A length law: known type, every needed parameter and no other, values in range."""
    if d.type not in DIST_TYPES:
        _fail(where, f"{key}.type", f"unknown distribution type {d.type!r} (valid: {', '.join(DIST_TYPES)})")
    for name, value in d.params.items():
        if not _finite(value):
            _fail(where, f"{key}.params.{name}", f"must be a finite number, got {value}")
    if d.type == "empirical":
        if d.file and d.params:
            _fail(where, key, "give the empirical PDF either inline (params) or in a file, not both")
        if not d.file and not d.params:
            _fail(where, key, "empirical distribution needs params (token_count: probability) or a file")
        for name, value in d.params.items():
            if not name.strip().lstrip("+").isdigit():
                _fail(where, f"{key}.params.{name}", "empirical keys are token counts (integers >= 0)")
            if value < 0:
                _fail(where, f"{key}.params.{name}", f"probability must be >= 0, got {value}")
        counts = [int(name.strip()) for name in d.params]
        if len(set(counts)) != len(counts):
            _fail(where, f"{key}.params", "a token count appears twice")
        if d.params and not any(v > 0 for v in d.params.values()):
            _fail(where, f"{key}.params", "at least one probability must be > 0")
        return
    if d.file:
        _fail(where, f"{key}.file", f"only empirical distributions read a file, not {d.type}")
    needed = DIST_PARAMS[d.type]
    for name in d.params:
        if name not in needed:
            _fail(where, f"{key}.params.{name}", f"unknown parameter for {d.type} (valid: {', '.join(needed)})")
    for name in needed:
        if name not in d.params:
            _fail(
                where,
                f"{key}.params",
                f"{d.type} distribution requires parameter {name!r} (needs: {', '.join(needed)})",
            )
    p = d.params
    if d.type == "gaussian":
        if p["std_dev"] < 0:
            _fail(where, f"{key}.params.std_dev", f"must be >= 0, got {p['std_dev']}")
        if int(p["min"]) > int(p["max"]):
            _fail(where, f"{key}.params", f"min ({p['min']}) must not exceed max ({p['max']})")
        if int(p["min"]) == int(p["max"]) < 0:  # returned as it is, a negative length
            _fail(where, f"{key}.params", f"min == max must be >= 0, got {p['min']}")
    elif d.type == "exponential":
        if p["mean"] <= 0:
            _fail(where, f"{key}.params.mean", f"must be > 0, got {p['mean']}")
    elif d.type == "pareto_lognormal":
        for name in ("alpha", "xm"):
            if p[name] <= 0:
                _fail(where, f"{key}.params.{name}", f"must be > 0, got {p[name]}")
        if p["sigma"] < 0:
            _fail(where, f"{key}.params.sigma", f"must be >= 0, got {p['sigma']}")
        if not 0 <= p["mix_weight"] <= 1:
            _fail(where, f"{key}.params.mix_weight", f"must be in [0, 1], got {p['mix_weight']}")


def _validate_arrival(where: str, key: str, a: ArrivalSpec) -> None:
    if a.process not in ARRIVAL_PROCESSES:
        _fail(where, f"{key}.process", f"unknown arrival process {a.process!r} (valid: {', '.join(ARRIVAL_PROCESSES)})")
    if a.cv is None:
        return
    if not (_finite(a.cv) and a.cv > 0):
        _fail(where, f"{key}.cv", f"must be a finite number > 0, got {a.cv}")
    lo, hi = WEIBULL_CV_RANGE
    if a.process == "weibull" and not lo <= a.cv <= hi:
        _fail(where, f"{key}.cv", f"weibull cv must be in [{lo}, {hi}], got {a.cv}")


def _validate_multimodal(where: str, key: str, mm: MultimodalSpec) -> None:
    if mm.text_distribution.type:
        validate_dist(where, f"{key}.text_distribution", mm.text_distribution)
    for kind in ("image", "audio", "video"):
        tokens: DistSpec = getattr(mm, f"{kind}_distribution")
        count: DistSpec = getattr(mm, f"{kind}_count_distribution")
        if bool(tokens.type) != bool(count.type):
            given, missing = (
                (f"{kind}_distribution", f"{kind}_count_distribution")
                if tokens.type
                else (f"{kind}_count_distribution", f"{kind}_distribution")
            )
            _fail(where, f"{key}.{given}", f"needs {missing} as well")
        if tokens.type:
            validate_dist(where, f"{key}.{kind}_distribution", tokens)
            validate_dist(where, f"{key}.{kind}_count_distribution", count)


def _validate_client(where: str, key: str, c: ClientSpec) -> None:
    if c.slo_class and c.slo_class not in SLO_CLASSES + UPSTREAM_SLO_CLASSES:
        valid = ", ".join(SLO_CLASSES + UPSTREAM_SLO_CLASSES)
        _fail(where, f"{key}.slo_class", f"unknown SLO class {c.slo_class!r} (valid: {valid})")
    if not (_finite(c.rate_fraction) and c.rate_fraction > 0):
        _fail(where, f"{key}.rate_fraction", f"must be a finite number > 0, got {c.rate_fraction}")
    _validate_arrival(where, f"{key}.arrival", c.arrival)
    if c.prefix_length < 0:
        _fail(where, f"{key}.prefix_length", f"must be >= 0, got {c.prefix_length}")
    if c.multimodal is None:
        validate_dist(where, f"{key}.input_distribution", c.input_distribution)
    elif c.input_distribution.type:
        validate_dist(where, f"{key}.input_distribution", c.input_distribution)
    validate_dist(where, f"{key}.output_distribution", c.output_distribution)
    if c.network is not None:
        for name in ("rtt_ms", "bandwidth_mbps"):
            value = getattr(c.network, name)
            if not (_finite(value) and value >= 0):
                _fail(where, f"{key}.network.{name}", f"must be a finite number >= 0, got {value}")
    if c.lifecycle is not None:
        if not c.lifecycle.windows:
            _fail(where, f"{key}.lifecycle.windows", "give at least one window (start_us, end_us)")
        for i, w in enumerate(c.lifecycle.windows):
            if not 0 <= w.start_us < w.end_us:
                _fail(
                    where,
                    f"{key}.lifecycle.windows[{i}]",
                    f"need 0 <= start_us < end_us, got [{w.start_us}, {w.end_us})",
                )
    if c.multimodal is not None:
        _validate_multimodal(where, f"{key}.multimodal", c.multimodal)
    r = c.reasoning
    if r is not None:
        if r.reason_ratio_distribution.type:
            validate_dist(where, f"{key}.reasoning.reason_ratio_distribution", r.reason_ratio_distribution)
        mt = r.multi_turn
        if mt is not None:
            at = f"{key}.reasoning.multi_turn"
            if mt.max_rounds < 1:
                _fail(where, f"{at}.max_rounds", f"must be >= 1, got {mt.max_rounds}")
            if mt.think_time_us < 0:
                _fail(where, f"{at}.think_time_us", f"must be >= 0, got {mt.think_time_us}")
            if mt.context_growth and mt.context_growth not in CONTEXT_GROWTH:
                _fail(
                    where,
                    f"{at}.context_growth",
                    f"unknown value {mt.context_growth!r} (valid: {', '.join(CONTEXT_GROWTH)}; omit for fixed)",
                )
            if c.multimodal is not None:
                _fail(where, key, "multimodal and reasoning.multi_turn cannot be combined (multi-turn rounds are text)")


def validate_inference_perf(where: str, ip: InferencePerfSpec) -> None:
    key = "inference_perf"
    if not ip.stages:
        _fail(where, f"{key}.stages", "at least one stage (rate, duration) is required")
    for i, s in enumerate(ip.stages):
        if s.duration <= 0:
            _fail(where, f"{key}.stages[{i}].duration", f"must be > 0 seconds, got {s.duration}")
        if not (_finite(s.rate) and s.rate > 0):
            _fail(where, f"{key}.stages[{i}].rate", f"must be a finite number > 0, got {s.rate}")
    sp = ip.shared_prefix
    if sp is None:
        _fail(where, f"{key}.shared_prefix", "is required")
    for name in ("num_unique_system_prompts", "num_users_per_system_prompt"):
        if getattr(sp, name) <= 0:
            _fail(where, f"{key}.shared_prefix.{name}", f"must be > 0, got {getattr(sp, name)}")
    for name in ("system_prompt_len", "question_len", "output_len"):
        if getattr(sp, name) < 0:
            _fail(where, f"{key}.shared_prefix.{name}", f"must be >= 0, got {getattr(sp, name)}")


def validate(where: str, spec: WorkloadSpec) -> None:
    """Check an expanded spec (clients filled in); raises ConfigError naming the key path."""
    if spec.category and spec.category not in CATEGORIES:
        _fail(where, "category", f"unknown category {spec.category!r} (valid: {', '.join(CATEGORIES)})")
    if not (_finite(spec.aggregate_rate) and spec.aggregate_rate > 0):
        _fail(where, "aggregate_rate", f"must be a finite number > 0 (requests/s), got {spec.aggregate_rate}")
    if spec.horizon < 0:
        _fail(where, "horizon", f"must be >= 0 ticks, got {spec.horizon}")
    if spec.num_requests < 0:
        _fail(where, "num_requests", f"must be >= 0, got {spec.num_requests}")
    if not spec.clients:
        raise ConfigError(f"{where}: no clients: give clients, servegen_data or inference_perf")
    for cls, target in (spec.goodput_slo_targets or {}).items():
        for key, value in vars(target).items():
            if not (_finite(value) and value >= 0):
                _fail(where, f"goodput_slo_targets.{cls}.{key}", f"must be a finite number >= 0 (ms), got {value}")
    for i, c in enumerate(spec.clients):
        _validate_client(where, f"clients[{i}]", c)
