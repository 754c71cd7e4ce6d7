"""Run ``blis run``'s options to the end and produce its output (with a progress bar on a terminal)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Optional

from ..fileio import write_atomic
from ..plan import RunOptions, resolve, simulate
from ..report.render import results_json, sim_results_json, stdout_text
from .progress import ProgressBar

if TYPE_CHECKING:
    from ..workload.tracev2 import TraceV2

log = logging.getLogger("blis_gym")


def execute(
    opts: RunOptions,
    progress: bool = False,
    closed_loop: bool = False,
    think_ms: Optional[float] = None,
    replay_results: str = "",
) -> str:
    """Validate, simulate, write the results file if asked; return the stdout text. ``blis
    replay`` adds ``closed_loop`` sessions (``think_ms`` None: the recorded gaps) and
    ``replay_results``, a file of one result per request in upstream's format."""
    plan = resolve(opts)
    bar = ProgressBar(len(plan.requests), "requests routed") if progress and len(plan.requests) >= 1000 else None
    result = simulate(plan, bar, closed_loop, think_ms)
    text = stdout_text(
        result, plan.config.priority_policy, plan.fitness_weights, plan.summarize_trace, plan.slo_targets
    )
    if plan.results_path:
        write_atomic(plan.results_path, results_json(result, plan.slo_targets))
        log.info("metrics written to: %s", plan.results_path)
    if replay_results:
        write_atomic(replay_results, sim_results_json(result))
        log.info("per-request results written to: %s", replay_results)
    if opts.export_trace:
        from ..workload.tracev2 import export_trace_v2, write_tokens  # lazy: only runs that export one

        trace = generated_trace(opts, plan.requests)
        export_trace_v2(trace, opts.export_trace)
        write_tokens(opts.export_trace, [r.request_id for r in trace.records], plan.requests)
        log.info("trace written to: %s", opts.export_trace)
    return text


def generated_trace(opts: RunOptions, requests: list) -> TraceV2:
    """The run's requests as a ``generated`` trace v2 (streaming per client from the spec)."""
    from ..workload.spec_loader import load_workload_spec
    from ..workload.trace_replay import trace_from_requests

    streaming = {}
    if opts.workload_spec:
        streaming = {c.id: c.streaming for c in load_workload_spec(opts.workload_spec).clients}
    return trace_from_requests(requests, streaming, workload_spec=opts.workload_spec)
