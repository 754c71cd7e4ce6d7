"""The router's own approximate picture of which prefixes each instance holds.

Every routing decision records the request's full input blocks (chained
block identities, the same ones the KV cache uses) against the chosen
instance. Each instance keeps at most ``capacity`` blocks, evicting the
least recently recorded. The router never asks instances what they cache,
like llm-d's endpoint picker.
"""

from __future__ import annotations

from collections import OrderedDict
from itertools import takewhile
from typing import Sequence

DEFAULT_LRU_CAPACITY = 10000  # blocks per instance (160K tokens at 16 tokens per block)


class PrefixCacheIndex:
    """Per-instance LRU sets of block identities."""

    def __init__(self, block_size: int, capacity: int = DEFAULT_LRU_CAPACITY) -> None:
        if block_size <= 0 or capacity <= 0:
            raise ValueError("block_size and capacity must be positive")
        self.block_size = block_size
        self.capacity = capacity
        self._lru: dict[int, OrderedDict] = {}
        self._memo: tuple = (None, 0, None)  # (keys, n, lengths) of the last match_lengths call

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
        lru = self._lru.get(instance)
        if lru is None:
            return 0
        return len(list(takewhile(lru.__contains__, keys)))

    def record(self, keys: Sequence[int], instance: int) -> None:
        """Mark ``keys`` as most recently seen on ``instance``, evicting the oldest beyond capacity."""
        self._memo = (None, 0, None)
        lru = self._lru.get(instance)
        if lru is None:
            lru = self._lru[instance] = OrderedDict()
        cap = self.capacity
        refresh = lru.move_to_end
        for k in keys:
            if k in lru:
                refresh(k)
            else:
                if len(lru) >= cap:
                    lru.popitem(last=False)
                lru[k] = None

    def block_count(self, instance: int) -> int:
        lru = self._lru.get(instance)
        return len(lru) if lru is not None else 0
