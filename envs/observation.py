"""The observation: what the router sees at a decision, as one flat float32 vector.

Per instance (in instance order), then the request, then the clock. Every
feature is scaled to be about 1 at typical loads; see ``INSTANCE_FEATURES``
and ``REQUEST_FEATURES`` for the exact scaling. The first eight instance values
come from the same snapshots the built-in policies read, staleness included; the
last two describe the work in flight (what a router watching each instance's
token streams could know), read fresh from the instances. With ``cache=True`` (the
scenario's ``cache_observation``) each instance gains one more value, ``cached_prefix``:
what its real KV cache holds of the request, through the view ``precise-prefix-cache``
reads (as stale as ``--cache-signal-delay``).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..cluster.snapshots import CacheView
from ..engine.instance import Instance
from ..engine.request import Request
from ..policies.base import Snapshot
from ..policies.prefix_index import PrefixCacheIndex
from ..workload import spec

QUEUE_SCALE = 32.0  # waiting requests
PENDING_SCALE = 8.0  # routed, not yet queued
TOKEN_SCALE = 1024.0  # input tokens
STEP_SCALE = 10_000.0  # ticks (10 ms): a busy step's remaining time
# The one-hot covers every class a workload spec can give ("" = none, shown as "default").
SLO_CLASSES = ("", *spec.SLO_CLASSES)  # the reference's classes (the observation's size is fixed)

# (name, meaning) in vector order; documented in the README's observation table.
INSTANCE_FEATURES: tuple[tuple[str, str], ...] = (
    ("queue_depth", f"waiting requests / {QUEUE_SCALE:g}"),
    ("batch_size", "running requests / --max-num-running-reqs"),
    ("pending_requests", f"routed but not yet queued / {PENDING_SCALE:g}"),
    ("kv_utilization", "used KV blocks / total, in [0, 1] (refreshed per --snapshot-refresh-interval)"),
    ("free_kv_blocks", "free KV blocks / total, in [0, 1] (same refresh)"),
    ("cache_hit_rate", "prefix-cache hit rate so far, in [0, 1] (same refresh)"),
    ("prefix_match", "fraction of this request's full input blocks the router-side index holds for the instance"),
    ("speed", "decode speed relative to the fleet's fastest instance, in (0, 1] (1 in a homogeneous cluster)"),
    # Work in flight, read fresh: the two that earned their place in the README's ablation.
    ("prefill_backlog", f"input tokens still to prefill, waiting and running / {TOKEN_SCALE:g}"),
    ("busy_for", f"time until the running step ends / {STEP_SCALE / 1000:g} ms (0 when idle)"),
)
CACHE_FEATURE: tuple[str, str] = (
    "cached_prefix",
    "fraction of this request's full input blocks the instance's KV cache holds (per --cache-signal-delay)",
)
REQUEST_FEATURES: tuple[tuple[str, str], ...] = (
    ("input_length", f"input tokens / {TOKEN_SCALE:g}"),
    ("cacheable_prefix", f"input tokens in full KV blocks (the cacheable part) / {TOKEN_SCALE:g}"),
    *((f"slo_{c or 'default'}", f"1 if the request's SLO class is {c or 'unset'}, else 0") for c in SLO_CLASSES),
    ("clock", "simulated time / time of the workload's last arrival (1.0 = arrivals are over)"),
)


def instance_features(cache: bool = False) -> tuple[tuple[str, str], ...]:
    """The per-instance features in vector order: ``INSTANCE_FEATURES``, then ``cached_prefix`` if asked."""
    return (*INSTANCE_FEATURES, CACHE_FEATURE) if cache else INSTANCE_FEATURES


def observation_size(num_instances: int, cache: bool = False) -> int:
    return num_instances * len(instance_features(cache)) + len(REQUEST_FEATURES)


class ObservationBuilder:
    """Fills one preallocated vector per decision; with ``cache_views`` (one per instance) each
    instance's features end with ``cached_prefix``."""

    def __init__(
        self,
        num_instances: int,
        max_running: int,
        block_size: int,
        total_kv_blocks: int,
        last_arrival_ticks: int,
        cache_views: Optional[Sequence[CacheView]] = None,
    ) -> None:
        self.n = num_instances
        self.cache_views = cache_views
        self.block_size = block_size
        self.batch_scale = float(max(max_running, 1))
        self.kv_scale = float(total_kv_blocks)
        self.clock_scale = float(max(last_arrival_ticks, 1))
        self.buf = np.zeros(observation_size(num_instances, cache_views is not None), dtype=np.float32)

    @classmethod
    def for_workload(
        cls,
        requests: Sequence[Request],
        num_instances: int,
        max_running: int,
        block_size: int,
        total_kv_blocks: int,
        cache_views: Optional[Sequence[CacheView]] = None,
    ) -> "ObservationBuilder":
        """The builder for a run of ``requests``: the clock is scaled by their last arrival."""
        last = max((r.arrival for r in requests), default=1)
        return cls(num_instances, max_running, block_size, total_kv_blocks, last, cache_views)

    def build(
        self,
        req: Request,
        snaps: Sequence[Snapshot],
        index: PrefixCacheIndex,
        clock: int,
        instances: Sequence[Instance],
    ) -> np.ndarray:
        """The observation for deciding about ``req`` at ``clock`` given ``snaps`` and the
        ``instances`` they describe (for the work in flight); a fresh array.

        The features are gathered in a list and written into the preallocated vector in one
        assignment (cheaper than item by item), which is then copied out.
        """
        keys = req.input_keys(self.block_size)
        n_keys = len(keys)
        matched = index.match_lengths(keys, len(snaps)) if n_keys else [0] * len(snaps)
        batch, kv = self.batch_scale, self.kv_scale
        views = self.cache_views
        vals: list = []
        for i, (s, m, inst) in enumerate(zip(snaps, matched, instances)):
            waitq = inst.waitq
            backlog = inst.prefill_left + sum([r.n_in for r in waitq]) if waitq else inst.prefill_left
            busy = inst.step_end - clock
            vals += (
                s.queue_depth / QUEUE_SCALE,
                s.batch_size / batch,
                s.pending_requests / PENDING_SCALE,
                s.kv_utilization,
                s.free_kv_blocks / kv,
                s.cache_hit_rate,
                m / n_keys if n_keys else 0.0,
                s.speed,
                backlog / TOKEN_SCALE,
                busy / STEP_SCALE if busy > 0 else 0.0,
            )
            if views is not None:
                vals.append(views[i].cached_prefix_blocks(req) / n_keys if n_keys else 0.0)
        slo = req.slo_class
        vals += (
            req.n_in / TOKEN_SCALE,
            n_keys * self.block_size / TOKEN_SCALE,
            *[1.0 if slo == c else 0.0 for c in SLO_CLASSES],
            clock / self.clock_scale,
        )
        buf = self.buf
        buf[:] = vals
        return buf.copy()

    def empty(self) -> np.ndarray:
        return np.zeros_like(self.buf)
