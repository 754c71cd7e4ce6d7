"""The autoscaler resolved for a run: the bundle's sections, ``--model-autoscaler-interval-us``,
and what each node pool's new instances run (the defaults file's coefficients for that GPU
at the fleet's TP, else roofline)."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Callable, Optional

from ..config.autoscale import AutoscaleConfig
from ..config.catalog import Catalog
from ..config.schema import InstanceClass
from ..errors import ConfigError
from .latency import with_model_defaults
from .options import RunOptions
from .pool import instance_kind, reference_step


def resolve_autoscale(
    o: RunOptions,
    bundle: Optional[AutoscaleConfig],
    pool: tuple[InstanceClass, ...],
    base: InstanceClass,
    catalog_loader: Callable[[], Catalog],
) -> tuple[Optional[AutoscaleConfig], str, int, tuple]:
    """(autoscale config, the homogeneous fleet's GPU and TP, scaling classes); (None, "", 0, ())
    without node pools. ``base`` is a homogeneous fleet's class (new kinds' speeds are relative
    to it as well)."""
    flag = o.model_autoscaler_interval_us
    if not (flag >= 0 and math.isfinite(flag)):
        raise ConfigError(f"--model-autoscaler-interval-us must be a finite number >= 0, got {flag}")
    if bundle is None:
        if flag > 0:
            raise ConfigError("--model-autoscaler-interval-us needs node_pools (in a --policy-config bundle)")
        return None, "", 0, ()
    if "model_autoscaler_interval_us" in o.explicit:
        bundle = replace(bundle, interval=int(flag))
    if bundle.enabled and not bundle.node_pools:
        raise ConfigError(
            "--model-autoscaler-interval-us: the autoscaler needs node_pools (in the --policy-config bundle)"
        )
    if not bundle.node_pools:
        return None, "", 0, ()
    if any(getattr(o, k) for k in ("prefill_instances", "decode_instances", "prefill_decode_instances")):
        raise ConfigError("--policy-config node_pools: autoscaling prefill/decode pools is not supported yet")
    catalog = catalog_loader()
    model, gpu, tp, version = with_model_defaults(o, catalog)
    tp = tp or 1
    variants = {c.variant: c for c in pool} if pool else {(gpu, tp): base}
    for p in bundle.node_pools:
        if p.gpus_per_node < tp and not pool:
            raise ConfigError(f'node_pools "{p.name}": {p.gpus_per_node} GPUs per node cannot hold a TP-{tp} instance')
    classes = {}
    for p in bundle.node_pools:
        for t in sorted({t for (_, t) in variants} or {tp}):
            key = (p.gpu_type, t)
            if key in variants or key in classes:
                continue
            try:
                classes[key] = instance_kind(o, catalog, model, p.gpu_type, t, version)
            except ConfigError as exc:
                raise ConfigError(
                    f'node_pools "{p.name}": no step-time model for {p.gpu_type} with TP {t}: {exc}'
                ) from None
    if classes:  # speeds relative to the fastest kind, new kinds included
        everyone = list(classes.values()) + list(variants.values())
        fastest = min(reference_step(c) for c in everyone)
        classes = {k: replace(c, speed=fastest / reference_step(c)) for k, c in classes.items()}
    return bundle, ("" if pool else gpu), (0 if pool else tp), tuple(classes.items())
