"""Run ``blis run``'s options to the end and produce its output (with a progress bar on a terminal)."""

from __future__ import annotations

import sys
import time
import logging

from ..plan import RunOptions, resolve, simulate
from ..report.render import results_json, stdout_text, write_atomic

log = logging.getLogger("blis_gym")


class _Progress:
    """A one-line stderr progress bar, redrawn at most ten times a second."""

    def __init__(self, total: int) -> None:
        self.total = max(total, 1)
        self.last = 0.0

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        if now - self.last < 0.1 and done < self.total:
            return
        self.last = now
        frac = min(done / self.total, 1.0)
        bar = "#" * int(frac * 30)
        sys.stderr.write(f"\r[{bar:<30}] {done}/{self.total} requests routed")
        if done >= self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def execute(opts: RunOptions, progress: bool = False) -> str:
    """Validate, simulate, write the results file if asked; return the stdout text."""
    plan = resolve(opts)
    bar = _Progress(len(plan.requests)) if progress and len(plan.requests) >= 1000 else None
    result = simulate(plan, bar)
    text = stdout_text(result, plan.config.priority_policy, plan.fitness_weights, plan.summarize_trace)
    if plan.results_path:
        write_atomic(plan.results_path, results_json(result))
        log.info("metrics written to: %s", plan.results_path)
    return text
