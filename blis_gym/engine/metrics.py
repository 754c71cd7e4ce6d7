"""Raw per-instance statistics, gathered while the simulation runs.

Everything here is in ticks (microseconds) and counts; summaries (means,
percentiles, milliseconds) are computed at the end by ``blis_gym.report``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..forking import Forkable
from .request import Request


@dataclass
class RequestRecord:
    """The per-request row of the results file (times in seconds or ms as named)."""

    id: str
    arrived_at: float  # seconds
    num_prefill_tokens: int
    num_decode_tokens: int
    slo_class: str = ""
    tenant_id: str = ""
    handled_by: str = ""
    client_id: str = ""  # ours: the workload spec's client (BLIS's rows have none)


class InstanceMetrics(Forkable):
    """Counters and per-request figures of one instance (or, merged, of the cluster)."""

    # Request records are never changed once made, so a fork shares them.
    _FORK_FLAT = frozenset(
        {
            "ttfts",
            "itls",
            "scheduling_delays",
            "_itl_prefix",
            "_itl_count_diff",
            "e2es",
            "waitq_depths",
            "batch_sizes",
            "requests",
        }
    )
    _FORK_SHARED = frozenset({"_itl_histogram"})

    def __init__(self) -> None:
        self.completed = 0
        self.total_input_tokens = 0
        self.total_output_tokens = 0
        self.sim_ended = 0
        self.kv_blocks_integral = 0.0  # block-ticks
        self.peak_kv_blocks = 0
        self.preemptions = 0
        self.kv_allocation_failures = 0
        self.cache_hit_rate = 0.0
        self.kv_thrashing_rate = 0.0
        self.still_queued = 0
        self.still_running = 0
        self.dropped_unservable = 0
        self.ttfts: dict[str, float] = {}
        self.itls: dict[str, float] = {}  # mean inter-token latency per request
        self.scheduling_delays: dict[str, int] = {}
        # Inter-token latencies: one value per step, and how many times completed requests
        # recorded each (kept as differences, so a request adds a range in O(1)).
        self._itl_prefix: list[int] = [0]  # running sums of the step ITLs
        self._itl_count_diff: list[int] = [0]
        self._itl_histogram: Optional[tuple[np.ndarray, np.ndarray]] = None  # set by merge
        self.e2es: dict[str, float] = {}
        self.waitq_depths: list[int] = []
        self.batch_sizes: list[int] = []
        self.requests: dict[str, RequestRecord] = {}

    def register(self, req: Request) -> None:
        self.requests[req.id] = RequestRecord(
            req.id, req.arrival / 1e6, req.n_in, req.n_out, req.slo_class, req.tenant_id, req.assigned, req.client_id
        )

    def drop(self, req: Request) -> None:
        self.dropped_unservable += 1
        self.requests.pop(req.id, None)

    def add_step_itl(self, itl: int) -> int:
        """Append one step's inter-token latency (ticks) to the series; returns its index."""
        prefix = self._itl_prefix
        prefix.append(prefix[-1] + itl)
        self._itl_count_diff.append(0)
        return len(prefix) - 2

    def step_itl(self, index: int) -> int:
        """The inter-token latency (ticks) of step ``index`` of the series (see ``add_step_itl``)."""
        prefix = self._itl_prefix
        return prefix[index + 1] - prefix[index]

    def itl_histogram(self) -> tuple[np.ndarray, np.ndarray]:
        """(values, counts): every ITL a completed request recorded, as values with multiplicities."""
        if self._itl_histogram is not None:
            return self._itl_histogram
        counts = np.cumsum(np.array(self._itl_count_diff[:-1], dtype=np.int64))
        return np.diff(np.array(self._itl_prefix, dtype=np.int64)), counts

    def complete(self, req: Request) -> int:
        """Record a finished request; returns its end-to-end latency in ticks."""
        self.completed += 1
        steps = req.itl_steps
        prefix = self._itl_prefix
        diff = self._itl_count_diff
        total = 0
        for i in range(0, len(steps), 2):
            a = steps[i]
            b = steps[i + 1]
            total += prefix[b] - prefix[a]
            diff[a] += 1
            diff[b] -= 1
        lat = req.first_token_time + total
        rid = req.id
        self.e2es[rid] = float(lat)
        if req.n_out > 0:
            self.itls[rid] = float(lat - req.first_token_time) / float(max(req.n_out - 1, 1))
        else:
            self.itls[rid] = 0.0
        return lat

    def without(self, parts: list[Request]) -> "InstanceMetrics":
        """A copy as if ``parts``, requests that completed here, never had: the cluster totals
        leave out the prompts a prefill instance ran for disaggregated requests."""
        out = copy.deepcopy(self)
        diff = out._itl_count_diff
        for req in parts:
            rid = req.id
            out.completed -= 1
            for table in (out.ttfts, out.e2es, out.itls, out.scheduling_delays, out.requests):
                table.pop(rid, None)
            steps = req.itl_steps
            for i in range(0, len(steps), 2):
                diff[steps[i]] -= 1
                diff[steps[i + 1]] += 1
        return out

    @property
    def injected(self) -> int:
        return self.completed + self.still_queued + self.still_running + self.dropped_unservable

    @classmethod
    def merge(cls, parts: list["InstanceMetrics"]) -> "InstanceMetrics":
        """Cluster totals: sums, maxima, concatenations, and mean rates."""
        out = cls()
        hists = [m.itl_histogram() for m in parts]
        if hists:
            out._itl_histogram = (np.concatenate([h[0] for h in hists]), np.concatenate([h[1] for h in hists]))
        for m in parts:
            out.completed += m.completed
            out.total_input_tokens += m.total_input_tokens
            out.total_output_tokens += m.total_output_tokens
            out.sim_ended = max(out.sim_ended, m.sim_ended)
            out.kv_blocks_integral += m.kv_blocks_integral
            out.peak_kv_blocks = max(out.peak_kv_blocks, m.peak_kv_blocks)
            out.waitq_depths.extend(m.waitq_depths)
            out.batch_sizes.extend(m.batch_sizes)
            out.ttfts.update(m.ttfts)
            out.e2es.update(m.e2es)
            out.itls.update(m.itls)
            out.scheduling_delays.update(m.scheduling_delays)
            out.requests.update(m.requests)
            out.preemptions += m.preemptions
            out.kv_allocation_failures += m.kv_allocation_failures
            out.dropped_unservable += m.dropped_unservable
            out.cache_hit_rate += m.cache_hit_rate
            out.kv_thrashing_rate += m.kv_thrashing_rate
            out.still_queued += m.still_queued
            out.still_running += m.still_running
        if parts:
            out.cache_hit_rate /= len(parts)
            out.kv_thrashing_rate /= len(parts)
        return out
