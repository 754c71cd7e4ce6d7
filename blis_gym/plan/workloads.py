"""Which requests a run simulates: a workload spec, a trace, a preset or a distribution.

``--workload-spec`` wins over ``--workload``, as in BLIS. With a spec, the
spec's ``seed``, ``horizon`` and ``num_requests`` apply unless ``--seed``,
``--horizon`` or ``--num-requests`` was given explicitly; the spec's horizon
also ends the simulation; and something must bound generation (a request count
or a horizon). ``--rate`` has no effect on a spec (its ``aggregate_rate`` sets the rate).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from typing import Callable, Optional

from ..config.catalog import Catalog
from ..config.schema import MAX_INT64, DistributionWorkload
from ..config.slo import SLOTargets
from ..engine.request import Request
from ..errors import WorkloadError
from ..workload import generate_distribution, load_trace
from .options import HELD_OUT_SEED, RunOptions

log = logging.getLogger("blis_gym")

WORKLOAD_TYPES = ("chatbot", "summarization", "contentgen", "multidoc", "distribution", "traces")


@dataclass(frozen=True)
class Workload:
    """The requests of a run and the simulation horizon (ticks) that goes with them."""

    requests: list[Request]
    horizon: int
    slo_targets: Optional[SLOTargets] = None  # a spec's goodput_slo_targets
    header_targets: Optional[SLOTargets] = None  # a trace header's (upstream's trace_version 3)


def _spec_workload(o: RunOptions) -> Workload:
    # lazy, as the trace v2 reader below: a run imports the workload machinery it uses
    from ..workload.spec_generator import generate_spec_requests
    from ..workload.spec_loader import load_workload_spec

    spec = load_workload_spec(o.workload_spec)
    given = o.explicit
    seed = o.seed if "seed" in given else spec.seed
    horizon = o.horizon if "horizon" in given or spec.horizon <= 0 else spec.horizon
    max_requests = o.num_requests if "num_requests" in given else spec.num_requests
    if max_requests < 0:
        raise WorkloadError(f"--num-requests must be >= 0 with --workload-spec (0 = no cap), got {max_requests}")
    if max_requests == 0 and horizon == MAX_INT64:
        raise WorkloadError(
            f"--workload-spec {o.workload_spec}: generation needs a bound: num_requests "
            f"(in the spec or --num-requests) or a horizon (in the spec or --horizon)"
        )
    if o.prefix_groups != 1:
        raise WorkloadError(
            "--prefix-groups applies to generated distribution workloads; a workload spec sets prefix_group per client"
        )
    if "rate" in given:
        log.warning(
            "--rate has no effect with --workload-spec: the spec's aggregate_rate (%g req/s) applies",
            spec.aggregate_rate,
        )
    requests = generate_spec_requests(replace(spec, seed=seed), horizon, max_requests)
    return Workload(requests, horizon, dict(spec.goodput_slo_targets) if spec.goodput_slo_targets else None)


def _trace_workload(o: RunOptions) -> Workload:
    """A recorded trace (BLIS's CSV, trace v2, Mooncake, Azure, BurstGPT; a shipped one by name),
    or the window of it the --trace-* flags select."""
    # lazy, as the spec readers above: a run imports the workload machinery it uses
    from ..workload.public_traces import PUBLIC_FORMATS, detect_format, read_trace, trace_location
    from ..workload.trace_replay import requests_from_trace
    from ..workload.tracev2 import TOKENS_FILE, is_trace_v2, load_tokens, load_trace_v2, trace_files
    from ..workload.windows import TraceWindow, arrivals_of

    flags = (o.trace_start, o.trace_duration, o.trace_speedup, o.trace_window_spans, o.seed, HELD_OUT_SEED)
    given = o.workload_traces_filepath
    path = trace_location(given)
    targets = None
    if o.trace_header or is_trace_v2(path):  # a v2 trace (folder or CSV), as BLIS's LoadTraceV2Requests
        trace = load_trace_v2(path, o.trace_header or None)
        targets = trace.header.goodput_slo_targets
        tokens = load_tokens(trace_files(path)[1].with_name(TOKENS_FILE))  # ours: an export's exact prompts
        requests = requests_from_trace(trace, o.seed, f"--workload-traces-filepath {path}", tokens)
        window = TraceWindow.choose(arrivals_of(requests), *flags)
        if not window.whole:
            requests = window.apply(requests, renumber=False)
    elif (kind := detect_format(path)) in PUBLIC_FORMATS:
        table = read_trace(path, kind)
        window = TraceWindow.choose(table.arrival_us, *flags)
        requests = table.requests(window, o.horizon)
    elif (window := TraceWindow.from_flags(*flags)).whole:
        return Workload(load_trace(path, o.horizon), o.horizon)
    else:  # BLIS's CSV (or no known format: its reader says what is wrong)
        requests = load_trace(path)
        window = TraceWindow.choose(arrivals_of(requests), *flags)
        requests = window.apply(requests, renumber=True, horizon=o.horizon)
    if not requests and not window.whole:
        raise WorkloadError(
            f"--workload-traces-filepath {given}: no request arrives in the window {window.describe()} "
            f"(--trace-start {window.start_us / 1e6:g}, --trace-duration {o.trace_duration:g})"
        )
    return Workload(requests, o.horizon, header_targets=targets)


def build_workload(o: RunOptions, catalog_loader: Callable[[], Catalog]) -> Workload:
    """The run's requests (drawn for ``o.seed``) and horizon; raises BlisError on bad input."""
    if o.workload_spec:
        return _spec_workload(o)
    if o.workload == "traces":
        if not o.workload_traces_filepath:
            raise WorkloadError("--workload-traces-filepath is required when using --workload traces")
        if o.prefix_groups != 1:
            raise WorkloadError("--prefix-groups applies to generated workloads, not --workload traces")
        return _trace_workload(o)
    if not (o.rate > 0 and math.isfinite(o.rate)):
        raise WorkloadError(f"--rate must be a finite value > 0, got {o.rate}")
    if o.workload == "distribution":
        spec = DistributionWorkload(
            o.rate,
            o.num_requests,
            o.prefix_tokens,
            o.prompt_tokens,
            o.prompt_tokens_stdev,
            o.prompt_tokens_min,
            o.prompt_tokens_max,
            o.output_tokens,
            o.output_tokens_stdev,
            o.output_tokens_min,
            o.output_tokens_max,
            prefix_groups=o.prefix_groups,
        )
        spec.check_flag_ranges()
    else:
        preset = catalog_loader().preset(o.workload)
        if preset is None:
            raise WorkloadError(f"--workload {o.workload}: preset not found in the defaults file")
        spec = DistributionWorkload(
            o.rate,
            o.num_requests,
            preset.prefix_tokens,
            preset.prompt_mean,
            preset.prompt_stdev,
            preset.prompt_min,
            preset.prompt_max,
            preset.output_mean,
            preset.output_stdev,
            preset.output_min,
            preset.output_max,
            name=o.workload,
            prefix_groups=o.prefix_groups,
        )
    return Workload(generate_distribution(spec, o.seed, o.horizon), o.horizon)
