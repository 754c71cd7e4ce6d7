"""Workloads turned into other workloads: ``blis convert`` and ``blis compose``.

* A preset of the defaults file, a ServeGen folder or an inference-perf spec become a workload
  spec (upstream BLIS's ``convert`` subcommands, written in our spec schema, which is BLIS's);
* specs merge into one, each spec's clients keeping their share of its rate (upstream's
  ``compose``);
* any trace we read (BLIS's CSV, trace v2, Mooncake, Azure, BurstGPT) becomes a trace v2 folder.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import yaml

from ..config.catalog import WorkloadPreset
from ..errors import ConfigError
from .spec import ArrivalSpec, ClientSpec, DistSpec, WorkloadSpec, validate

#: Keys a spec always shows, even at their zero value.
_ALWAYS = {"version", "aggregate_rate", "rate_fraction", "process", "type"}


def _plain(value: Any) -> Any:
    """A spec (or part of one) as plain YAML data, fields at their default left out."""
    if is_dataclass(value):
        out = {}
        for f in fields(value):
            v = getattr(value, f.name)
            if f.name not in _ALWAYS and (v is None or v == _default(f)):
                continue
            out[f.name] = _plain(v)
        if "clients" in out:  # the scalars first, as specs are written by hand
            out["clients"] = out.pop("clients")
        return out
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, float) and value.is_integer():
        return int(value) if abs(value) < 2**53 else value
    return value


def _default(f) -> Any:
    if f.default is not MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not MISSING else MISSING


def spec_yaml(spec: WorkloadSpec, comment: str = "") -> str:
    """The spec as a YAML file ``--workload-spec`` reads back to the same spec."""
    head = "".join(f"# {line}\n" for line in comment.splitlines())
    return head + yaml.safe_dump(_plain(spec), sort_keys=False, default_flow_style=False, allow_unicode=True)


def checked(spec: WorkloadSpec, where: str) -> WorkloadSpec:
    validate(where, spec)
    return spec


def preset_spec(name: str, preset: WorkloadPreset, rate: float, num_requests: int) -> WorkloadSpec:
    """A preset as one client: constant arrivals at ``rate`` req/s, its clamped Gaussian lengths,
    its shared prefix as prefix group ``shared``."""
    if not (rate > 0 and math.isfinite(rate)):
        raise ConfigError(f"--rate must be a finite value > 0, got {rate}")
    if num_requests <= 0:
        raise ConfigError(f"--num-requests must be > 0, got {num_requests}")

    def gaussian(mean: int, stdev: int, lo: int, hi: int) -> DistSpec:
        return DistSpec("gaussian", {"mean": mean, "std_dev": stdev, "min": lo, "max": hi})

    p = preset
    client = ClientSpec(
        id=f"preset-{name}",
        rate_fraction=1.0,
        arrival=ArrivalSpec("constant"),
        input_distribution=gaussian(p.prompt_mean, p.prompt_stdev, p.prompt_min, p.prompt_max),
        output_distribution=gaussian(p.output_mean, p.output_stdev, p.output_min, p.output_max),
        prefix_group="shared" if p.prefix_tokens > 0 else "",
        prefix_length=p.prefix_tokens,
    )
    spec = WorkloadSpec(
        version="1", category="language", aggregate_rate=rate, num_requests=num_requests, clients=(client,)
    )
    return checked(spec, f"preset {name}")


def expanded_spec(spec: WorkloadSpec) -> WorkloadSpec:
    """A loaded spec with its ``servegen_data``/``inference_perf`` expanded into clients, the
    sources dropped (so the result stands alone)."""
    return replace(spec, servegen_data=None, inference_perf=None)


def compose_specs(specs: Sequence[tuple[str, WorkloadSpec]]) -> WorkloadSpec:
    """Merge specs (name, spec): every client kept, each spec's clients' rate fractions scaled by
    its share of the total rate (upstream's rule); the first spec's category and seed."""
    if not specs:
        raise ConfigError("blis compose: give at least one --from")
    total = 0.0
    for _, s in specs:
        total += s.aggregate_rate
    clients: list[ClientSpec] = []
    ids: dict[str, str] = {}
    for name, s in specs:
        weight = s.aggregate_rate / total
        for c in s.clients:
            if c.id and c.id in ids:
                raise ConfigError(f"blis compose: client id {c.id!r} is in both {ids[c.id]} and {name}; rename one")
            ids[c.id] = name
            clients.append(replace(c, rate_fraction=c.rate_fraction * weight))
    first = specs[0][1]
    merged = WorkloadSpec(
        version=first.version or "1",
        seed=first.seed,
        category=first.category,
        clients=tuple(clients),
        aggregate_rate=total,
        num_requests=sum(s.num_requests for _, s in specs),
    )
    targets = {}
    for _, s in specs:
        targets.update(s.goodput_slo_targets or {})
    if targets:
        merged = replace(merged, goodput_slo_targets=targets)
    return checked(merged, "blis compose")


def write_trace_folder(requests, out: Path) -> tuple[Path, Path]:
    """Requests read from any trace, written as a ``generated`` trace v2 folder (lengths, arrival
    times, classes) with our token file beside it (the prompts themselves, shared blocks kept)."""
    from .trace_replay import trace_from_requests
    from .tracev2 import export_trace_v2, write_tokens

    trace = trace_from_requests(requests)
    paths = export_trace_v2(trace, out, "--out")
    write_tokens(out, [r.request_id for r in trace.records], requests, "--out")
    return paths
