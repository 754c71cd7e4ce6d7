"""Autoscaling settings: a policy bundle's ``autoscaler:``, ``node_pools:`` and
``instance_lifecycle:`` sections (upstream BLIS's schema, f90a1e3a), validated once.

Times in the file are as upstream writes them: the tick and the stabilization windows
in microseconds, delays (``{mean, stddev}``) in seconds. Here they are kept in ticks (µs).

    autoscaler:
      interval_us: 10000000            # a tick every 10 s (0 = off)
      scale_up_stabilization_window_us: 0
      scale_down_stabilization_window_us: 30000000
      hpa_scrape_delay: {mean: 1.0, stddev: 0.2}
      analyzer: {kv_cache_threshold: 0.8, scale_up_threshold: 0.8, scale_down_boundary: 0.4, avg_input_tokens: 512}
    node_pools:
      - {name: h100, gpu_type: H100, gpus_per_node: 8, gpu_memory_gib: 80, initial_nodes: 1,
         min_nodes: 1, max_nodes: 4, provisioning_delay: {mean: 60}, cost_per_hour: 98.3}
    instance_lifecycle:
      loading_delay: {mean: 30}
      warm_start_initial_instances: true
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, NoReturn, Optional

from ..policies.autoscaling import Analyzer

Fail = Callable[[str, str], NoReturn]


@dataclass(frozen=True)
class Delay:
    """A delay drawn as ``max(0, normal(mean, stddev))`` (no draw when stddev is 0); ticks."""

    mean: int = 0
    stddev: int = 0


@dataclass(frozen=True)
class NodePool:
    """Nodes of one GPU type: how many, how fast they come, what they cost (per node-hour)."""

    name: str
    gpu_type: str
    gpus_per_node: int
    gpu_memory_gib: float
    initial_nodes: int = 0
    min_nodes: int = 0
    max_nodes: int = 0
    provisioning_delay: Delay = Delay()
    cost_per_hour: float = 0.0


@dataclass(frozen=True)
class AutoscaleConfig:
    """The autoscaler (``interval`` 0: none, the fleet stays as it starts) and the node pools."""

    interval: int = 0  # ticks between scaling ticks
    scale_up_window: int = 0
    scale_down_window: int = 0
    scrape_delay: Delay = Delay()
    analyzer: Analyzer = Analyzer()
    node_pools: tuple[NodePool, ...] = ()
    loading_delay: Delay = Delay()
    warm_start: bool = False  # initial instances serve at once (else they load first)
    policy: str = "saturation"  # the scaling policy (a registry name)

    @property
    def enabled(self) -> bool:
        return self.interval > 0

    def capacity(self, gpu: str, tp: int) -> int:
        """How many TP-``tp`` instances the node pools of ``gpu`` can hold at most."""
        return sum(p.max_nodes * (p.gpus_per_node // tp) for p in self.node_pools if p.gpu_type == gpu)


_AUTOSCALER_KEYS = (
    "interval_us",
    "scale_up_stabilization_window_us",
    "scale_down_stabilization_window_us",
    "hpa_scrape_delay",
    "analyzer",
)
_ANALYZER_KEYS = ("kv_cache_threshold", "scale_up_threshold", "scale_down_boundary", "avg_input_tokens")
_POOL_KEYS = (
    "name",
    "gpu_type",
    "gpus_per_node",
    "gpu_memory_gib",
    "initial_nodes",
    "min_nodes",
    "max_nodes",
    "provisioning_delay",
    "cost_per_hour",
)
_LIFECYCLE_KEYS = ("loading_delay", "warm_start_initial_instances")
_DELAY_KEYS = ("mean", "stddev")


def _mapping(fail: Fail, field: str, value: Any, allowed: tuple[str, ...]) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        fail(field, f"mapping expected (keys: {', '.join(allowed)})")
    for key in value:
        if key not in allowed:
            fail(f"{field}.{key}", f"unknown key {key!r} (allowed: {', '.join(allowed)})")
    return value


def _number(fail: Fail, field: str, value: Any, default: float = 0.0) -> float:
    """A finite number >= 0 (``default`` when absent)."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        fail(field, f"must be a finite number, got {value!r}")
    if value < 0:
        fail(field, f"must be >= 0, got {value!r}")
    return float(value)


def _int(fail: Fail, field: str, value: Any, default: int = 0) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        fail(field, f"must be a whole number, got {value!r}")
    if value < 0:
        fail(field, f"must be >= 0, got {value!r}")
    return value


def _delay(fail: Fail, field: str, value: Any) -> Delay:
    m = _mapping(fail, field, value, _DELAY_KEYS)
    seconds = [_number(fail, f"{field}.{k}", m.get(k)) for k in _DELAY_KEYS]
    return Delay(int(seconds[0] * 1e6), int(seconds[1] * 1e6))


def parse_autoscale(doc: Mapping[str, Any], fail: Fail) -> Optional[AutoscaleConfig]:
    """The three sections of a bundle document (None when it has none of them)."""
    if not any(k in doc for k in ("autoscaler", "node_pools", "instance_lifecycle")):
        return None
    a = _mapping(fail, "autoscaler", doc.get("autoscaler"), _AUTOSCALER_KEYS)
    an = _mapping(fail, "autoscaler.analyzer", a.get("analyzer"), _ANALYZER_KEYS)
    defaults = Analyzer()
    values = {}
    for key in _ANALYZER_KEYS:
        v = _number(fail, f"autoscaler.analyzer.{key}", an.get(key))
        values[key] = v if v > 0 else getattr(defaults, key)  # 0 means the default, as upstream
    if values["kv_cache_threshold"] > 1:
        fail("autoscaler.analyzer.kv_cache_threshold", f"must be in (0, 1], got {values['kv_cache_threshold']}")
    if values["scale_down_boundary"] >= values["scale_up_threshold"]:
        fail(
            "autoscaler.analyzer.scale_down_boundary",
            f"({values['scale_down_boundary']}) must be < scale_up_threshold ({values['scale_up_threshold']})",
        )
    pools = doc.get("node_pools")
    if pools is not None and not isinstance(pools, list):
        fail("node_pools", "a list of pools expected")
    parsed: list[NodePool] = []
    for i, entry in enumerate(pools or ()):
        at = f"node_pools[{i}]"
        m = _mapping(fail, at, entry, _POOL_KEYS)
        name = m.get("name")
        if not isinstance(name, str) or not name:
            fail(f"{at}.name", "a non-empty name is required")
        at = f'node_pools[{i}] "{name}"'
        if any(p.name == name for p in parsed):
            fail(at, "duplicate pool name")
        gpu = m.get("gpu_type")
        if not isinstance(gpu, str) or not gpu:
            fail(f"{at}.gpu_type", "a GPU type is required (e.g. H100)")
        per_node = _int(fail, f"{at}.gpus_per_node", m.get("gpus_per_node"))
        if per_node < 1:
            fail(f"{at}.gpus_per_node", f"must be >= 1, got {per_node}")
        memory = _number(fail, f"{at}.gpu_memory_gib", m.get("gpu_memory_gib"))
        if memory <= 0:
            fail(f"{at}.gpu_memory_gib", "must be > 0 (GiB per GPU)")
        initial = _int(fail, f"{at}.initial_nodes", m.get("initial_nodes"))
        lo = _int(fail, f"{at}.min_nodes", m.get("min_nodes"))
        hi = _int(fail, f"{at}.max_nodes", m.get("max_nodes"), default=max(initial, lo))
        if hi < initial:
            fail(f"{at}.max_nodes", f"({hi}) must be >= initial_nodes ({initial})")
        if lo > hi:
            fail(f"{at}.min_nodes", f"({lo}) must be <= max_nodes ({hi})")
        parsed.append(
            NodePool(
                name,
                gpu,
                per_node,
                memory,
                initial,
                lo,
                hi,
                _delay(fail, f"{at}.provisioning_delay", m.get("provisioning_delay")),
                _number(fail, f"{at}.cost_per_hour", m.get("cost_per_hour")),
            )
        )
    life = _mapping(fail, "instance_lifecycle", doc.get("instance_lifecycle"), _LIFECYCLE_KEYS)
    warm = life.get("warm_start_initial_instances", False)
    if not isinstance(warm, bool):
        fail("instance_lifecycle.warm_start_initial_instances", f"true or false expected, got {warm!r}")
    interval = _number(fail, "autoscaler.interval_us", a.get("interval_us"))
    if interval > 0 and not parsed:
        fail("autoscaler", "needs node_pools (the GPUs new instances are placed on)")
    return AutoscaleConfig(
        int(interval),
        int(_number(fail, "autoscaler.scale_up_stabilization_window_us", a.get("scale_up_stabilization_window_us"))),
        int(
            _number(fail, "autoscaler.scale_down_stabilization_window_us", a.get("scale_down_stabilization_window_us"))
        ),
        _delay(fail, "autoscaler.hpa_scrape_delay", a.get("hpa_scrape_delay")),
        Analyzer(**values),
        tuple(parsed),
        _delay(fail, "instance_lifecycle.loading_delay", life.get("loading_delay")),
        warm,
    )
