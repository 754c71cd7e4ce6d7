"""The names of a ``=== Simulation Metrics ===`` block's figures, in the order it prints them
(plain names, no run code: the sweep table and its charts read them too)."""

from __future__ import annotations

#: Counts and the run's length, always present.
COUNT_FIGURES: tuple[str, ...] = (
    "completed_requests",
    "still_queued",
    "still_running",
    "injected_requests",
    "total_input_tokens",
    "total_output_tokens",
    "vllm_estimated_duration_s",
)
#: Rates and latencies: 0.0 when nothing completed.
RATE_AND_LATENCY_FIGURES: tuple[str, ...] = (
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
)
#: The last three (``kv_allocation_failures`` is printed only when non-zero).
TAIL_FIGURES: tuple[str, ...] = ("kv_allocation_failures", "preemption_count", "dropped_unservable")
CLUSTER_FIGURES: tuple[str, ...] = COUNT_FIGURES + RATE_AND_LATENCY_FIGURES + TAIL_FIGURES
