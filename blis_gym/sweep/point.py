"""One sweep point run to the end: the figures ``blis run`` prints for it, or its error.

:func:`run_point` is what each Ray task (or the serial loop) executes. It returns plain
data (no simulator objects), so a result costs little to send back and journals as JSON.
"""

from __future__ import annotations

import os
import traceback
from typing import Any, Mapping

from ..errors import BlisError
from ..plan import resolve, simulate
from ..report.fitness import compute_fitness, raw_metrics
from ..report.goodput import compute_goodput
from ..report.slo import per_slo_distributions
from ..report.summary import metrics_block
from .metrics import METRICS, SLO_FIGURES, slo_column
from .spec import Point


def figures(result: Any, fitness_weights: Any, slo_targets: Any = None) -> dict[str, Any]:
    """The cluster block's figures, rejections, fitness, goodput with SLO targets, and per-SLO-class
    figures when the run has two or more classes (as ``blis run`` prints its per-SLO section)."""
    block = metrics_block("cluster", result.aggregate)
    out: dict[str, Any] = {k: block.get(k, 0) for k in METRICS}
    out["rejected_requests"] = result.rejected
    if fitness_weights is not None:
        out["fitness"] = compute_fitness(raw_metrics(result.aggregate), fitness_weights).score
    if slo_targets:
        goodput = compute_goodput(result.aggregate, result.arrived_by_class, slo_targets)
        out["goodput_rps"] = goodput.goodput_rps
        out["slo_attainment"] = goodput.attainment
    per_slo = per_slo_distributions(result.aggregate)
    if len(per_slo) >= 2:
        for cls, m in per_slo.items():
            values = (m.ttft.mean / 1e3, m.ttft.p99 / 1e3, m.e2e.mean / 1e3, m.e2e.p99 / 1e3, m.e2e.count)
            out.update({slo_column(cls, f): v for f, v in zip(SLO_FIGURES, values)})
    return out


def run_point(point: Point) -> dict[str, Any]:
    """Run ``point``: ``{"metrics": {...}, "error": ""}``, or empty metrics and a one-line error.

    A configuration error reads as ``blis run`` would print it; anything else is a crash,
    reported with its type and where it happened, so that one bad point never stops a sweep.
    """
    try:
        plan = resolve(point.run_options())
        result = simulate(plan)
        return {"metrics": figures(result, plan.fitness_weights, plan.slo_targets), "error": ""}
    except BlisError as exc:
        return {"metrics": {}, "error": str(exc)}
    except Exception as exc:  # a crash: keep the sweep going, say where
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        return {
            "metrics": {},
            "error": f"crash: {type(exc).__name__}: {exc} ({os.path.basename(frame.filename)}:{frame.lineno})",
        }


def summary_line(point_index: int, axis_values: Mapping[str, Any], error: str) -> str:
    """One line per failed point for the end of a sweep."""
    where = ", ".join(f"{k}={v}" for k, v in axis_values.items())
    return f"point {point_index} ({where}): {error}"
