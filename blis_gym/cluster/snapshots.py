"""Instance snapshots as the router sees them, with configurable staleness.

Queue depth and batch size are always read fresh. KV utilization, free
blocks and cache hit rate are re-read only when ``refresh_interval`` ticks
have passed since this instance's last refresh (0 = every time).
"""

from __future__ import annotations

from typing import Sequence

from ..engine.instance import Instance
from ..policies.base import Snapshot


class SnapshotProvider:
    """Builds one :class:`Snapshot` per instance, caching the KV fields when stale reads are asked for."""

    def __init__(self, instances: Sequence[Instance], refresh_interval: int = 0) -> None:
        self.instances = list(instances)
        self.refresh_interval = refresh_interval
        self._cache = [Snapshot(inst.id, i) for i, inst in enumerate(self.instances)]
        self._last_kv = [0] * len(self.instances)

    def all(self, clock: int, pending: Sequence[int]) -> list[Snapshot]:
        """Every instance's snapshot at ``clock``, with its pending (routed, not queued) count."""
        if self.refresh_interval <= 0:  # all fresh: built directly (the hot path)
            out = []
            for i, inst in enumerate(self.instances):
                kv = inst.kv
                used = kv.used
                out.append(Snapshot(inst.id, i, len(inst.waitq), len(inst.running), used / kv.total,
                                    kv.total - used, kv.hit_rate(), pending[i]))
            return out
        out = []
        for i in range(len(self.instances)):
            s = self.snapshot(i, clock)
            s.pending_requests = pending[i]
            out.append(s)
        return out

    def snapshot(self, index: int, clock: int) -> Snapshot:
        inst = self.instances[index]
        if self.refresh_interval <= 0:  # everything fresh: nothing to cache
            kv = inst.kv
            return Snapshot(inst.id, index, len(inst.waitq), len(inst.running), kv.used / kv.total,
                            kv.total - kv.used, kv.hit_rate())
        snap = self._cache[index]
        snap.queue_depth = len(inst.waitq)
        snap.batch_size = len(inst.running)
        if self.refresh_interval <= 0 or clock - self._last_kv[index] >= self.refresh_interval:
            kv = inst.kv
            snap.kv_utilization = kv.used / kv.total
            snap.free_kv_blocks = kv.total - kv.used
            snap.cache_hit_rate = kv.hit_rate()
            self._last_kv[index] = clock
        return snap.copy()
