"""Run ``blis run``'s options to the end and produce its output (with a progress bar on a terminal)."""

from __future__ import annotations

import logging

from ..plan import RunOptions, resolve, simulate
from ..report.render import results_json, stdout_text, write_atomic
from .progress import ProgressBar

log = logging.getLogger("blis_gym")


def execute(opts: RunOptions, progress: bool = False) -> str:
    """Validate, simulate, write the results file if asked; return the stdout text."""
    plan = resolve(opts)
    bar = ProgressBar(len(plan.requests), "requests routed") if progress and len(plan.requests) >= 1000 else None
    result = simulate(plan, bar)
    text = stdout_text(result, plan.config.priority_policy, plan.fitness_weights, plan.summarize_trace)
    if plan.results_path:
        write_atomic(plan.results_path, results_json(result))
        log.info("metrics written to: %s", plan.results_path)
    return text
