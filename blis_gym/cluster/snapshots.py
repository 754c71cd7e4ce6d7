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
from ..engine.kvcache import JournaledTable, KVCache
from ..engine.request import Request
from ..policies.base import Snapshot


class CacheView:
    """One instance's prefix cache as the router sees it: live, or (``delayed``) as it stood at
    the last refresh, read through the table's journal (see ``JournaledTable``)."""

    __slots__ = ("kv", "delayed", "watched")

    def __init__(self, kv: KVCache, delayed: bool = False, watched: bool = True) -> None:
        self.kv = kv
        self.delayed = delayed
        self.watched = False
        if watched:
            self.watch()

    def __deepcopy__(self, memo: dict) -> "CacheView":
        return CacheView(copy.deepcopy(self.kv, memo), self.delayed, self.watched)

    def watch(self) -> None:
        """Start keeping the view (a delayed one journals its cache's table from now on)."""
        if self.delayed and not isinstance(self.kv.hash_to_block, JournaledTable):
            self.kv.hash_to_block = JournaledTable(self.kv.hash_to_block)
        self.watched = True

    def refresh(self) -> None:
        if self.watched and self.delayed:
            self.kv.hash_to_block.mark()

    def has(self, key) -> bool:
        """Whether the view shows the prefix ``key``."""
        if not self.watched:
            raise RuntimeError("this cache view is not watched (SnapshotProvider.cache_views(watch=...))")
        table = self.kv.hash_to_block
        return table.had(key) if self.delayed else key in table

    def cached_prefix_blocks(self, req: Request) -> int:
        """How many of ``req``'s leading full input blocks the cache holds (as of the view)."""
        if not self.watched:
            raise RuntimeError("this cache view is not watched (SnapshotProvider.cache_views(watch=...))")
        table = self.kv.hash_to_block
        n = 0
        if not self.delayed:
            for key in req.input_keys(self.kv.block_size):
                if key not in table:
                    break
                n += 1
            return n
        before = table.before  # JournaledTable.had, inlined: once per block of every prompt asked
        absent = JournaledTable.ABSENT
        for key in req.input_keys(self.kv.block_size):
            was = before.get(key, table)
            if was is table:
                if key not in table:
                    break
            elif was is absent:
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
            view = CacheView(inst.kv, self.cache_delay > 0)
            view.refresh()
            self._views.append(view)

    def cache_views(self, watch: Optional[Sequence[int]] = None) -> list[CacheView]:
        """One view per instance, in instance order; those in ``watch`` (default: all) are kept
        from now on (a delayed view costs a journal of its cache's changes: watch only the
        instances you ask). With a delay, a view shows its cache as it is when first watched
        until the first refresh (a decision ``cache_delay`` ticks after the start)."""
        delayed = self.cache_delay > 0
        if self._views is None:
            self._views = [CacheView(inst.kv, delayed, False) for inst in self.instances]
        for i in range(len(self._views)) if watch is None else watch:
            view = self._views[i]
            if not view.watched:
                view.watch()
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
