"""A GPU KV cache backed by a CPU tier (``--kv-cpu-blocks``), as BLIS models it.

* After every release, if GPU use (used / total) is above the threshold, free GPU
  blocks that still hold a registered prefix are copied to the CPU tier, oldest free
  first, until the tier is full; on the GPU they become blank free blocks at the tail.
* When a GPU allocation fails, every CPU copy whose prefix is not on the GPU is loaded
  back (in ascending order of the GPU block it came from): each takes the head free
  block and rejoins the free tail under the copy's identity. The allocation is then
  retried, from further on if the lookup now hits more blocks. Reloads do not free
  space; they only make prefixes findable again.
* Each reload costs ``base + ceil(block_size / bandwidth)`` ticks, added to the
  instance's next step; a reload within 1000 ticks of its offload counts as thrashing.

BLIS keys its CPU copies by GPU block id, so offloading a block again while its older
copy is still on the CPU replaces that copy but counts a second CPU block, which is
never given back: the tier silts up. We keep both copies and count both (CPU use is
always the number of copies). ``reference_rollback=True`` reproduces BLIS exactly.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from heapq import heapify, heappop, heappush
from itertools import filterfalse

from .blockhash import _R as CHAIN_R
from .blockhash import M64
from .kvcache import KVCache
from .request import COMPLETED, Request

THRASHING_WINDOW = 1000  # ticks between offload and reload that count as thrashing


class TieredKVCache(KVCache):
    """``KVCache`` of ``total_blocks`` GPU blocks plus a CPU tier of ``cpu_blocks`` blocks."""

    _FORK_FLAT = KVCache._FORK_FLAT | {"_hashed_free", "_cpu", "_by_prefix", "quirks"}

    def __init__(
        self,
        total_blocks: int,
        block_size: int,
        cpu_blocks: int,
        threshold: float,
        bandwidth: float,
        base_latency: int,
        reference_rollback: bool = False,
    ) -> None:
        super().__init__(total_blocks, block_size, reference_rollback)
        self.bulk_recycle = False  # keep the block loop: reloads and offloads follow block order
        if cpu_blocks <= 0:
            raise ValueError(f"cpu_blocks must be > 0, got {cpu_blocks}")
        if not (bandwidth > 0 and math.isfinite(bandwidth)):
            raise ValueError(f"bandwidth must be finite and > 0, got {bandwidth}")
        if not math.isfinite(threshold):
            raise ValueError(f"threshold must be finite, got {threshold}")
        self.cpu_capacity = cpu_blocks
        self.threshold = threshold
        self.transfer_ticks = base_latency + math.ceil(block_size / bandwidth)
        # Free GPU blocks holding a prefix (the offload candidates), in free-list order.
        self._hashed_free: OrderedDict[int, None] = OrderedDict()
        # CPU copies: key -> (prefix, block's own key, offload tick). The key is the GPU
        # block id (BLIS's, reference mode) or (block id, offload number); reloads go in key
        # order. _by_prefix: prefix -> keys of its copies (a tuple: forks share it).
        self._cpu: dict = {}
        self._by_prefix: dict = {}
        self._offload_seq = 0
        self.cpu_used = 0
        self.clock = 0  # the current step's start (set by the instance)
        self.pending_latency = 0  # transfer ticks not yet added to a step
        self.offloads = 0
        self.cpu_hits = 0
        self.cpu_misses = 0
        self.thrashing = 0
        # Reference mode: how often each BLIS defect was hit (rare paths only; tests read it).
        self.quirks: dict[str, int] = {}

    # --- free list: keep _hashed_free in step -----------------------------
    # A block that leaves the free list stays in _hashed_free (a stale entry, dropped when an
    # offload meets it), so taking blocks costs nothing extra; one that joins it hashed is
    # put in its place.
    def _append_free(self, b: int) -> None:
        self.back.append(b)
        if self.hash[b] is not None:
            self._hashed_free[b] = None
            self._hashed_free.move_to_end(b)

    def _prepend_free(self, b: int) -> None:
        KVCache._prepend_free(self, b)
        if self.hash[b] is not None:
            self._hashed_free[b] = None
            self._hashed_free.move_to_end(b, last=False)

    def _offload_candidates(self) -> list[int]:
        """Free blocks holding a prefix, in free-list order (tests and debugging)."""
        rc, hashes = self.ref_count, self.hash
        return [b for b in self._hashed_free if not rc[b] and hashes[b] is not None]

    # --- queries ---------------------------------------------------------
    def hit_rate(self) -> float:
        """Hits over lookups, CPU reloads counting as hits and failed reloads as misses."""
        hits = self.hits + self.cpu_hits
        total = hits + self.misses + self.cpu_misses
        return hits / total if total else 0.0

    def thrashing_rate(self) -> float:
        return self.thrashing / self.offloads if self.offloads else 0.0

    def take_transfer_latency(self) -> int:
        """Transfer ticks accumulated since the last call (the caller adds them to a step)."""
        t = self.pending_latency
        self.pending_latency = 0
        return t

    # --- allocation and release --------------------------------------------
    def allocate(self, req: Request, start: int, end: int, cached: list[int]) -> bool:
        if KVCache.allocate(self, req, start, end, cached):
            return True
        if not self._reload():
            self.cpu_misses += 1
            return False
        return self._retry(req, start, end, cached)

    def _retry(self, req: Request, start: int, end: int, cached) -> bool:
        """The allocation after a reload, from further on if the lookup now hits more blocks.

        A reload frees nothing, so the same request rarely fits now (only through blocks in
        use further along its prefix). BLIS retries a request that holds blocks from the new
        start too, skipping the tokens in between; ours does not (it cannot fit either).
        """
        bs = self.block_size
        new = self.cached_blocks(req)
        if len(new) * bs <= start:
            return KVCache.allocate(self, req, start, end, cached)
        if req.kv_blocks and not self.reference_rollback:
            return False  # it failed the free-block count, which a reload does not change
        k = min(len(new), end // bs)  # hits past the chunk's end: BLIS crashes (slice bounds)
        if self.reference_rollback:
            if len(new) > k:
                self._quirk("retry_past_end")
            if req.kv_blocks:
                self._quirk("retry_skips_tokens")
        if k * bs <= start:
            return KVCache.allocate(self, req, start, end, cached)
        return KVCache.allocate(self, req, k * bs, end, new[:k])

    def release(self, req: Request) -> None:
        blocks = req.kv_blocks
        if req.private_decode and self.block_size > 1:  # (BLIS keys no decode block of size 1)
            self._seal_decode_blocks(req)
        KVCache.release(self, req)
        rc = self.ref_count
        hashes = self.hash
        hashed_free = self._hashed_free
        for b in reversed(blocks):  # the freed ones joined the free tail in this order
            if not rc[b] and hashes[b] is not None:
                hashed_free[b] = None
                hashed_free.move_to_end(b)
        self._maybe_offload()

    def _seal_decode_blocks(self, req: Request) -> None:
        """Register a private decoder's full decode blocks, as BLIS did when each filled.

        Their prefixes are the request's alone (``mark_private_decodes(unique=True)``), so until
        the request lets them go no other block, lookup or CPU copy can meet them. A preempted
        request meets them when it runs again: from then on it keys its blocks as they fill.
        """
        blocks = req.kv_blocks
        bs = self.block_size
        j0 = req.n_in // bs
        end = len(blocks) - (1 if req.kv_tail_len else 0)
        if end <= j0:
            return  # no full decode block: nothing of it can meet its next run either
        first, own = req.decode_block_keys(bs)
        hashes = self.hash
        tkey = self.tkey
        h2b = self.hash_to_block
        chain = req.kv_chain  # the prefix of its full input blocks: decode keys nothing
        for j in range(j0, end):
            b = blocks[j]
            k = own[j - first]
            chain = (chain * CHAIN_R + k) & M64  # chain_key, inlined
            tkey[b] = k
            hashes[b] = chain
            h2b[chain] = b
        if req.state != COMPLETED:
            req.private_decode = False

    # --- the CPU tier ------------------------------------------------------
    def _maybe_offload(self) -> None:
        if self.used / self.total <= self.threshold:
            return
        hashed_free = self._hashed_free
        rc, hashes = self.ref_count, self.hash
        while hashed_free and self.cpu_used < self.cpu_capacity:
            b = next(iter(hashed_free))
            if rc[b] or hashes[b] is None:
                del hashed_free[b]  # stale: taken since, or blank
            else:
                self._offload(b)

    def _offload(self, b: int) -> None:
        """Copy free block ``b``'s prefix to the CPU; ``b`` rejoins the free tail blank."""
        prefix = self.hash[b]
        if self.reference_rollback:
            key = b
            if b in self._cpu:
                self._quirk("cpu_copy_replaced")  # and its CPU block is never given back
                self._unfile(b)
        else:
            key = (b, self._offload_seq)  # after b's older copies: reloads take them first
            self._offload_seq += 1
        self._cpu[key] = (prefix, self.tkey[b], self.clock)
        self._by_prefix[prefix] = self._by_prefix.get(prefix, ()) + (key,)
        self.cpu_used += 1
        self.offloads += 1
        self._remove_free(b)
        del self._hashed_free[b]
        self.hash_to_block.pop(prefix, None)
        self.hash[b] = None
        self.tkey[b] = None
        self.back.append(b)

    def _unfile(self, key) -> tuple:
        """Remove CPU copy ``key``; returns its record."""
        record = self._cpu.pop(key)
        rest = tuple(k for k in self._by_prefix[record[0]] if k != key)
        if rest:
            self._by_prefix[record[0]] = rest
        else:
            del self._by_prefix[record[0]]
        return record

    def _reload(self) -> bool:
        """Load back, in key order, every CPU copy whose prefix is not on the GPU when its
        turn comes; False if none was.

        Copies whose prefix is on the GPU are skipped, so only the others are visited (a heap
        in key order), plus those whose prefix a reload evicts from the head free block.
        """
        if self.used == self.total or not self._cpu:
            return False  # no free block to load into, or nothing stored
        h2b = self.hash_to_block
        by_prefix = self._by_prefix
        todo = [k for p in filterfalse(h2b.__contains__, by_prefix) for k in by_prefix[p]]
        if not todo:
            return False
        heapify(todo)
        hashes = self.hash
        n = 0
        while todo:
            key = heappop(todo)
            record = self._cpu.get(key)
            if record is None or record[0] in h2b:
                continue  # reloaded already, or another copy of its prefix was
            prefix, bkey, when = self._unfile(key)
            b = self._take_head()  # never NIL: each reload gives the block back
            old = hashes[b]
            if old is not None:
                h2b.pop(old, None)
                for k in by_prefix.get(old, ()):
                    if k > key:
                        heappush(todo, k)  # its prefix just left the GPU: due in turn
            hashes[b] = prefix
            self.tkey[b] = bkey
            h2b[prefix] = b
            self._append_free(b)
            if self.clock - when < THRASHING_WINDOW:
                self.thrashing += 1
            n += 1
        if not n:
            return False
        self.cpu_used -= n
        self.cpu_hits += n
        self.pending_latency += n * self.transfer_ticks
        return True

    def _quirk(self, name: str) -> None:
        self.quirks[name] = self.quirks.get(name, 0) + 1

    # --- invariants (tests and debugging) ---------------------------------
    def check(self) -> None:
        KVCache.check(self)
        free = self.free_list()
        hashed = [b for b in free if b < self.hw and self.hash[b] is not None]
        assert self._offload_candidates() == hashed, "offload candidates disagree with the free list"
        filed = sorted(k for keys in self._by_prefix.values() for k in keys)
        assert filed == sorted(self._cpu) and all(
            self._cpu[k][0] == p for p, keys in self._by_prefix.items() for k in keys
        ), "CPU copies are misfiled"
        if not self.reference_rollback:
            assert self.cpu_used == len(self._cpu), "CPU use differs from the copies held"
            assert self.cpu_used <= self.cpu_capacity, "CPU tier over capacity"
