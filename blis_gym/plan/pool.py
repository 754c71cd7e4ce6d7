"""``--instance-pool``: a heterogeneous fleet, one trained-coefficients row per kind of instance.

``GPU:TP[:xCOUNT],...`` (e.g. ``H100:2:x2,A100-80:1:x2``) gives instances in
order: each kind's step and queueing coefficients and KV size come from the
defaults file's row for the model on that GPU and TP (at ``--vllm-version``,
else the model's default version); ``--total-kv-blocks`` still overrides the
KV size of all. BLIS's instances are identical; a pool of identical entries
runs exactly as a homogeneous cluster does.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

from ..config.catalog import Catalog
from ..config.schema import InstanceClass, reference_step_time
from ..errors import ConfigError
from .options import RunOptions

FLAG = "--instance-pool"
_CONFLICTS = ("hardware", "tp", "alpha_coeffs", "beta_coeffs")


def parse_pool(text: str) -> list[tuple[str, int, int]]:
    """(GPU, TP, count) per comma-separated entry of ``GPU:TP[:xCOUNT]``."""
    out = []
    for entry in text.split(","):
        parts = [p.strip() for p in entry.strip().split(":")]
        count = 1
        if len(parts) == 3 and parts[2][:1] in "xX":
            count_text = parts[2][1:]
            count = int(count_text) if count_text.isdigit() else 0
            parts = parts[:2]
        if len(parts) != 2 or not parts[0] or not parts[1].isdigit() or int(parts[1]) < 1 or count < 1:
            raise ConfigError(f"{FLAG}: entry {entry.strip()!r} is not GPU:TP or GPU:TP:xCOUNT "
                              f"(e.g. H100:2:x2,A100-80:1:x2)")
        out.append((parts[0], int(parts[1]), count))
    return out


def resolve_pool(o: RunOptions, catalog_loader: Callable[[], Catalog], find) -> tuple[InstanceClass, ...]:
    """One :class:`InstanceClass` per instance (``()`` without a pool); ``find(catalog, model, gpu,
    tp, version)`` returns the coefficients row or raises naming what exists."""
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
            row = find(catalog, model, gpu, tp, version)
            kv = o.total_kv_blocks if o.total_kv_blocks is not None else row.total_kv_blocks
            kinds[gpu, tp] = InstanceClass(f"{gpu}/tp{tp}", tuple(row.alpha), tuple(row.beta), kv)
        classes += [kinds[gpu, tp]] * count
    if "num_instances" in o.explicit and o.num_instances != len(classes):
        raise ConfigError(f"{FLAG} lists {len(classes)} instances but --num-instances is {o.num_instances}")
    fastest = min(reference_step_time(c.beta) for c in classes)
    speeds = {c: fastest / reference_step_time(c.beta) for c in kinds.values()}
    return tuple(replace(c, speed=speeds[c]) for c in classes)
