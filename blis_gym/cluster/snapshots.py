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
        self._cache = [Snapshot(inst.id, i, speed=inst.speed) for i, inst in enumerate(self.instances)]
        self._last_kv = [0] * len(self.instances)

    def all(self, clock: int, pending: Sequence[int]) -> list[Snapshot]:
        """Every instance's snapshot at ``clock``, with its pending (routed, not queued) count."""
        fresh = self.refresh_interval <= 0
        out = []
        for i, inst in enumerate(self.instances):
            kv = inst.kv
            if fresh or clock - self._last_kv[i] >= self.refresh_interval:
                used = kv.used
                snap = Snapshot(
                    inst.id,
                    i,
                    len(inst.waitq),
                    len(inst.running),
                    used / kv.total,
                    kv.total - used,
                    kv.hit_rate(),
                    pending[i],
                    inst.speed,
                )
                if not fresh:  # remember the KV fields for stale reads
                    self._cache[i] = snap
                    self._last_kv[i] = clock
                    snap = snap.copy()
            else:  # queue, batch and pending are always read fresh
                snap = self._cache[i].copy()
                snap.queue_depth = len(inst.waitq)
                snap.batch_size = len(inst.running)
                snap.pending_requests = pending[i]
            out.append(snap)
        return out
