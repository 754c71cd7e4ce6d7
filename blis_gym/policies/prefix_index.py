"""The router's own approximate picture of which prefixes each instance holds.

Every routing decision records the request's full input blocks (chained
block identities, the same ones the KV cache uses) against the chosen
instance. Each instance keeps at most ``capacity`` blocks, evicting the
least recently recorded. The router never asks instances what they cache,
like llm-d's endpoint picker.
"""

from __future__ import annotations

from collections import deque
from itertools import repeat
from typing import Sequence

DEFAULT_LRU_CAPACITY = 10000  # blocks per instance (160K tokens at 16 tokens per block)


class PrefixCacheIndex:
    """Per-instance LRU sets of block identities.

    An instance keeps the id of the latest recording that touched each block,
    and the recordings in order. A recording costs one bulk dict update;
    eviction (rare: only beyond ``capacity``) walks the oldest recordings and
    drops the blocks they were the last to touch, in the order they touched
    them, which is exactly least recently recorded first.
    """

    def __init__(self, block_size: int, capacity: int = DEFAULT_LRU_CAPACITY) -> None:
        if block_size <= 0 or capacity <= 0:
            raise ValueError("block_size and capacity must be positive")
        self.block_size = block_size
        self.capacity = capacity
        self._last: dict[int, dict[int, int]] = {}  # instance -> block -> latest recording id
        self._log: dict[int, deque] = {}  # instance -> (recording id, keys), oldest first
        self._recordings = 0
        self._memo: tuple = (None, 0, None)  # (keys, n, lengths) of the last match_lengths call

    def __deepcopy__(self, memo: dict) -> "PrefixCacheIndex":
        """A fork: the per-instance maps and logs copied (their key lists are never changed)."""
        new = PrefixCacheIndex(self.block_size, self.capacity)
        memo[id(self)] = new
        new._last = {i: last.copy() for i, last in self._last.items()}
        new._log = {i: log.copy() for i, log in self._log.items()}
        new._recordings = self._recordings
        return new

    def match_lengths(self, keys: Sequence[int], n: int) -> list[int]:
        """``match_length`` for instances 0..n-1; repeated calls between records are free."""
        memo_keys, memo_n, lengths = self._memo
        if memo_keys is keys and memo_n == n:
            return lengths
        lengths = [self.match_length(keys, i) for i in range(n)]
        self._memo = (keys, n, lengths)
        return lengths

    def match_length(self, keys: Sequence[int], instance: int) -> int:
        """How many leading blocks of ``keys`` the instance was recorded with."""
        last = self._last.get(instance)
        if last is None:
            return 0
        n = 0
        for k in keys:
            if k not in last:
                break
            n += 1
        return n

    def record(self, keys: Sequence[int], instance: int) -> None:
        """Mark ``keys`` as most recently seen on ``instance``, in order, evicting the oldest
        beyond capacity. ``keys`` is kept (not copied): do not change it afterwards."""
        self._memo = (None, 0, None)
        last = self._last.get(instance)
        if last is None:
            last = self._last[instance] = {}
            self._log[instance] = deque()
        self._recordings += 1
        rid = self._recordings
        last.update(zip(keys, repeat(rid)))
        log = self._log[instance]
        log.append((rid, keys))
        if len(last) > self.capacity:
            self._evict(last, log, len(last) - self.capacity)

    def observe(self, req, target: int) -> None:
        """A routing observer: record ``req``'s full input blocks against instance ``target``."""
        self.record(req.input_keys(self.block_size), target)

    @staticmethod
    def _evict(last: dict, log: deque, excess: int) -> None:
        while True:
            rid, keys = log.popleft()
            for i, k in enumerate(keys):
                if last.get(k) == rid:  # this recording touched it last
                    del last[k]
                    excess -= 1
                    if not excess:
                        if i + 1 < len(keys):
                            log.appendleft((rid, keys[i + 1 :]))
                        return

    @property
    def recordings(self) -> int:
        """How many recordings were made so far (changes whenever the index does)."""
        return self._recordings

    def block_count(self, instance: int) -> int:
        last = self._last.get(instance)
        return len(last) if last is not None else 0
