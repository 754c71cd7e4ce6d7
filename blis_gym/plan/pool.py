"""``--instance-pool``: a heterogeneous fleet, one step-time model per kind of instance.

``GPU:TP[:xCOUNT],...`` (e.g. ``H100:2:x2,A100-80:1:x2``) gives instances in
order: each kind's step and queueing coefficients and KV size come from the
defaults file's row for the model on that GPU and TP (at ``--vllm-version``,
else the model's default version); a kind with no such row runs roofline when
its facts and GPU specs are shipped (as does every kind with ``--latency-model
roofline``); ``--total-kv-blocks`` still overrides the KV size of all. BLIS's
instances are identical; a pool of identical entries runs exactly as a
homogeneous cluster does.

Scenarios and policy bundles also take the YAML form, a list of entries::

    instance_pool:
      - {gpu: H100, tp: 2, count: 2}
      - {gpu: A100-80, tp: 1, count: 2}   # count defaults to 1
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

from ..config.catalog import Catalog
from ..config.pool import FLAG, parse_pool
from ..config.schema import SPEED_REFERENCE_DECODE, InstanceClass, reference_step_time
from ..engine.roofline import RooflineLatency
from ..engine.trained_physics import TrainedPhysicsLatency, TrainedPhysicsSpec
from ..errors import ConfigError
from .latency import (
    DEFAULT_TOTAL_KV_BLOCKS,
    ZERO_ALPHA,
    catalog_entry,
    has_roofline_inputs,
    roofline_spec,
    trained_physics_spec,
)
from .options import RunOptions

_CONFLICTS = ("hardware", "tp", "alpha_coeffs", "beta_coeffs")


def resolve_pool(o: RunOptions, catalog_loader: Callable[[], Catalog]) -> tuple[InstanceClass, ...]:
    """One :class:`InstanceClass` per instance (``()`` without a pool); raises ConfigError naming
    the coefficients rows there are for a kind with neither coefficients nor roofline inputs."""
    if not o.instance_pool:
        return ()
    given = [f"--{k.replace('_', '-')}" for k in _CONFLICTS if k in o.explicit]
    if given:
        raise ConfigError(f"{FLAG} sets each instance's hardware and coefficients; drop {', '.join(given)}")
    catalog = catalog_loader()
    model = o.model.lower()
    defaults = catalog.defaults_for(model)
    version = o.vllm_version or (defaults.vllm_version if defaults is not None else "")
    kinds: dict[tuple[str, int], InstanceClass] = {}
    classes: list[InstanceClass] = []
    for gpu, tp, count in parse_pool(o.instance_pool):
        if (gpu, tp) not in kinds:
            kinds[gpu, tp] = instance_kind(o, catalog, model, gpu, tp, version)
        classes += [kinds[gpu, tp]] * count
    if "num_instances" in o.explicit and o.num_instances != len(classes):
        raise ConfigError(f"{FLAG} lists {len(classes)} instances but --num-instances is {o.num_instances}")
    steps = {c: reference_step(c) for c in kinds.values()}
    fastest = min(steps.values())
    return tuple(replace(c, speed=fastest / steps[c]) for c in classes)


def instance_kind(o: RunOptions, catalog: Catalog, model: str, gpu: str, tp: int, version: str) -> InstanceClass:
    name = f"{gpu}/tp{tp}"
    if o.latency_model == "trained-physics":
        kv = o.total_kv_blocks if o.total_kv_blocks is not None else DEFAULT_TOTAL_KV_BLOCKS
        spec = trained_physics_spec(o, model, gpu, tp, catalog)
        return InstanceClass(name, spec.alpha, spec.beta, kv, roofline=spec)
    row = None if o.latency_model == "roofline" else catalog.find_coefficients(model, tp, gpu, version)
    if row is None and o.latency_model != "blackbox" and has_roofline_inputs(o, model, gpu, catalog):
        kv = o.total_kv_blocks if o.total_kv_blocks is not None else DEFAULT_TOTAL_KV_BLOCKS
        return InstanceClass(name, ZERO_ALPHA, ZERO_ALPHA, kv, roofline=roofline_spec(o, model, gpu, tp, catalog))
    if row is None:
        row = catalog_entry(catalog, model, gpu, tp, version)  # raises, naming what there is
    kv = o.total_kv_blocks if o.total_kv_blocks is not None else row.total_kv_blocks
    return InstanceClass(name, tuple(row.alpha), tuple(row.beta), kv)


def reference_step(c: InstanceClass) -> float:
    """Step time (µs) of the speed reference batch: decoders at a 512-token context for roofline."""
    if c.roofline is None:
        return reference_step_time(c.beta)
    n = SPEED_REFERENCE_DECODE
    if isinstance(c.roofline, TrainedPhysicsSpec):
        return float(TrainedPhysicsLatency(c.roofline).step_time_aggregates(n, 0.0, 0.0, float(n), float(n * 512)))
    return float(RooflineLatency(c.roofline).step_time_shape([], n, n * 512))
