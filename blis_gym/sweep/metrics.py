"""The figures a sweep's table holds for each point (plain names, no run code)."""

from __future__ import annotations

#: The cluster block's figures, in the order ``blis run`` prints them (``instance_id`` left out;
#: ``kv_allocation_failures``, printed only when non-zero, is 0 otherwise).
METRICS: tuple[str, ...] = (
    "completed_requests",
    "still_queued",
    "still_running",
    "injected_requests",
    "total_input_tokens",
    "total_output_tokens",
    "vllm_estimated_duration_s",
    "responses_per_sec",
    "tokens_per_sec",
    "e2e_mean_ms",
    "e2e_p90_ms",
    "e2e_p95_ms",
    "e2e_p99_ms",
    "ttft_mean_ms",
    "ttft_p90_ms",
    "ttft_p95_ms",
    "ttft_p99_ms",
    "itl_mean_ms",
    "itl_p90_ms",
    "itl_p95_ms",
    "itl_p99_ms",
    "scheduling_delay_p99_ms",
    "kv_allocation_failures",
    "preemption_count",
    "dropped_unservable",
)
#: Beyond the cluster block: admission rejections, and the fitness score when the point sets weights.
EXTRA_METRICS = ("rejected_requests", "fitness")
SLO_FIGURES = ("ttft_mean_ms", "ttft_p99_ms", "e2e_mean_ms", "e2e_p99_ms", "completed")


def slo_column(slo_class: str, figure: str) -> str:
    return f"slo_{slo_class}_{figure}"
