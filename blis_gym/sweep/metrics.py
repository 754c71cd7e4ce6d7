"""The figures a sweep's table holds for each point (plain names, no run code)."""

from __future__ import annotations

from ..report.figures import CLUSTER_FIGURES

#: The cluster block's figures, in the order ``blis run`` prints them (``instance_id`` left out;
#: ``kv_allocation_failures``, printed only when non-zero, is 0 otherwise).
METRICS: tuple[str, ...] = CLUSTER_FIGURES
#: Beyond the cluster block: admission rejections, the fitness score when the point sets weights,
#: and goodput when it sets SLO targets (``slo_ttft``/``slo_itl``/``slo_e2e`` or its spec's).
EXTRA_METRICS = ("rejected_requests", "fitness", "goodput_rps", "slo_attainment")
SLO_FIGURES = ("ttft_mean_ms", "ttft_p99_ms", "e2e_mean_ms", "e2e_p99_ms", "completed")


def slo_column(slo_class: str, figure: str) -> str:
    return f"slo_{slo_class}_{figure}"
