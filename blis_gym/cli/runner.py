"""Run a resolved plan to the end and produce ``blis run``'s output."""

from __future__ import annotations

import sys
import time
import logging

from ..cluster.simulator import ClusterResult, ClusterSimulator
from ..report.render import results_json, stdout_text, write_atomic
from .options import RunOptions, RunPlan, resolve

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


def simulate(plan: RunPlan, progress: bool = False) -> ClusterResult:
    sim = ClusterSimulator.from_config(plan.config, plan.requests)
    if progress and len(plan.requests) >= 1000:
        sim.progress = _Progress(len(plan.requests))
    started = time.perf_counter()
    result = sim.run()
    log.info("simulation wall-clock time: %.3fs", time.perf_counter() - started)
    return result


def execute(opts: RunOptions, progress: bool = False) -> str:
    """Validate, simulate, write the results file if asked; return the stdout text."""
    plan = resolve(opts)
    result = simulate(plan, progress)
    text = stdout_text(result, plan.config.priority_policy, plan.fitness_weights, plan.summarize_trace)
    if plan.results_path:
        write_atomic(plan.results_path, results_json(result))
        log.info("metrics written to: %s", plan.results_path)
    return text
