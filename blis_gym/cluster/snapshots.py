"""Instance snapshots as the router sees them, with configurable staleness.

Queue depth and batch size are always read fresh. KV utilization, free
blocks and cache hit rate are re-read only when ``refresh_interval`` ticks
have passed since this instance's last refresh (0 = every time).

The prefix caches themselves (for the scorers that ask them) are seen through
one :class:`CacheView` per instance: live with ``cache_delay`` 0, otherwise a
copy of each cache's block table taken when a decision finds the last copy
``cache_delay`` ticks old or older (upstream BLIS's ``--cache-signal-delay``).
"""

from __future__ import annotations

import copy
from typing import Optional, Sequence

from ..engine.instance import Instance
from ..engine.kvcache import KVCache
from ..engine.request import Request
from ..policies.base import Snapshot


class CacheView:
    """One instance's prefix cache as the router sees it: its live block table, or the copy
    ``frozen`` at the last refresh. Forks share the copy (it is never changed, only replaced)."""

    __slots__ = ("kv", "frozen")

    def __init__(self, kv: KVCache, frozen: Optional[dict] = None) -> None:
        self.kv = kv
        self.frozen = frozen

    def __deepcopy__(self, memo: dict) -> "CacheView":
        return CacheView(copy.deepcopy(self.kv, memo), self.frozen)

    def refresh(self) -> None:
        self.frozen = self.kv.hash_to_block.copy()

    def cached_prefix_blocks(self, req: Request) -> int:
        """How many of ``req``'s leading full input blocks the cache holds (as of the view)."""
        table = self.kv.hash_to_block if self.frozen is None else self.frozen
        n = 0
        for key in req.input_keys(self.kv.block_size):
            if key not in table:
                break
            n += 1
        return n


class SnapshotProvider:
    """Builds one :class:`Snapshot` per instance, caching the KV fields when stale reads are asked for."""

    def __init__(self, instances: Sequence[Instance], refresh_interval: int = 0, cache_delay: int = 0) -> None:
        self.instances = list(instances)
        self.refresh_interval = refresh_interval
        self.cache_delay = cache_delay
        self._cache = [Snapshot(inst.id, i, speed=inst.speed) for i, inst in enumerate(self.instances)]
        self._last_kv = [0] * len(self.instances)
        self._views: Optional[list[CacheView]] = None  # made for the first scorer that asks
        self._last_views = 0

    def add(self, inst: Instance) -> None:
        """Watch one more instance (the autoscaler added it)."""
        i = len(self.instances)
        self.instances.append(inst)
        self._cache.append(Snapshot(inst.id, i, speed=inst.speed))
        self._last_kv.append(0)
        if self._views is not None:
            view = CacheView(inst.kv)
            if self.cache_delay > 0:
                view.refresh()
            self._views.append(view)

    def cache_views(self) -> list[CacheView]:
        """One view per instance, in instance order; with a delay, copies as of now until the
        first refresh (a decision ``cache_delay`` ticks after the start)."""
        if self._views is None:
            self._views = [CacheView(inst.kv) for inst in self.instances]
            if self.cache_delay > 0:
                for view in self._views:
                    view.refresh()
        return self._views

    def refresh_caches(self, clock: int) -> None:
        """Copy the caches again if the last copies are ``cache_delay`` ticks old (every decision)."""
        if self._views is not None and self.cache_delay > 0 and clock - self._last_views >= self.cache_delay:
            for view in self._views:
                view.refresh()
            self._last_views = clock

    def all(self, clock: int, pending: Sequence[int]) -> list[Snapshot]:
        """Every instance's snapshot at ``clock``, with its pending (routed, not queued) count."""
        if self._views is not None:
            self.refresh_caches(clock)
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
