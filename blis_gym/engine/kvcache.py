"""Block KV cache with prefix caching, LRU reuse and transactional allocation.

Semantics follow vLLM's (and BLIS's) single-tier cache:

* blocks hold ``block_size`` tokens; a full block is registered under the
  identity of the whole token prefix it ends, so later requests with the same
  prefix reuse it;
* freed blocks go to the tail of a free list and keep their registration until
  they are popped from the head for reuse (LRU eviction);
* an allocation that cannot complete is rolled back.

Prefix identity is a chained per-block hash (see ``blockhash``): the
same decision as hashing the whole prefix, without rehashing it every block.

A prompt that no other request's tokens start as (``mark_unshared_prompts``) can only ever be
asked for by its own request, and only after a preemption: its blocks are registered then, not
as they fill. Every lookup gets the answer it would have had, without the table's work.

One deliberate difference from the reference: a failed allocation for a
request that already holds blocks keeps those blocks attached to the request.
The reference forgets them, which leaks them forever and can livelock the
simulator. ``reference_rollback=True`` restores the reference behaviour for
differential tests.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from itertools import compress, filterfalse, islice, repeat, starmap
from operator import is_not, itemgetter

import numpy as np

from ..forking import Forkable
from .blockhash import CHAIN_SEED, block_key, chain_key, unshared_prefixes
from .request import COMPLETED, Request

NIL = -1
_ABSENT = object()
_consume = deque(maxlen=0).extend  # runs an iterator for its effects, in C


class JournaledTable(dict):
    """A KV cache's block table that remembers, for each key changed since the last ``mark``,
    whether it was there then: a view as of the mark costs nothing to take (no copy of the
    table) and is exact. Only the writes go through Python; lookups stay dict's own."""

    __slots__ = ("before",)
    ABSENT = _ABSENT  # what ``before`` holds for a key that was not there

    def __init__(self, table: dict = ()) -> None:
        super().__init__(table)
        self.before: dict = {}

    def __setitem__(self, key, value) -> None:
        before = self.before
        if key not in before:
            before[key] = dict.get(self, key, _ABSENT)
        dict.__setitem__(self, key, value)

    def pop(self, key, *default):
        before = self.before
        if key not in before:
            before[key] = dict.get(self, key, _ABSENT)
        return dict.pop(self, key, *default)

    def __delitem__(self, key) -> None:
        self.pop(key)

    def update(self, pairs) -> None:
        pairs = list(pairs.items() if isinstance(pairs, dict) else pairs)
        self.record(map(itemgetter(0), pairs))
        dict.update(self, pairs)

    def record(self, keys) -> None:
        """Journal ``keys`` as they are now, before a bulk change to them (a key already changed
        since the mark keeps its older entry); each step runs in C."""
        before = self.before
        fresh = list(filterfalse(before.__contains__, keys))
        if fresh:
            before.update(zip(fresh, map(dict.get, repeat(self), fresh, repeat(_ABSENT))))

    def copy(self) -> "JournaledTable":
        new = JournaledTable(self)
        new.before = self.before.copy()
        return new

    def __deepcopy__(self, memo: dict) -> "JournaledTable":
        return self.copy()

    def __reduce__(self):
        return _rebuild_table, (dict(self), self.before)

    def mark(self) -> None:
        """Start a new view: forget what changed before now."""
        self.before.clear()

    def had(self, key) -> bool:
        """Whether ``key`` was in the table at the last ``mark``."""
        was = self.before.get(key, self)
        if was is self:  # unchanged since the mark
            return key in self
        return was is not _ABSENT


def _rebuild_table(table: dict, before: dict) -> JournaledTable:
    new = JournaledTable(table)
    new.before = before
    return new


class KVCache(Forkable):
    """Single-tier GPU KV cache of ``total_blocks`` blocks of ``block_size`` tokens."""

    _FORK_FLAT = frozenset({"ref_count", "hash", "tkey", "hash_to_block", "front", "back", "_stale"})

    def __init__(self, total_blocks: int, block_size: int, reference_rollback: bool = False) -> None:
        if total_blocks <= 0:
            raise ValueError(f"total_blocks must be > 0, got {total_blocks}")
        if block_size <= 0:
            raise ValueError(f"block_size must be > 0, got {block_size}")
        self.total = total_blocks
        self.block_size = block_size
        self.reference_rollback = reference_rollback
        # Per-block state exists only for blocks touched so far (ids below ``hw``);
        # untouched blocks are free, unreferenced and unregistered, so a cache of a
        # million blocks costs nothing until it fills.
        self.hw = 0
        self.ref_count: list[int] = []
        # Registered prefix identity (None when unregistered) and own-content key
        # (None when the block is partial or its tokens were cleared).
        self.hash: list = []
        self.tkey: list = []
        self.hash_to_block: dict = {}
        # The free list, head to tail, is: front + untouched ids (hw..total-1, in
        # order) + back. Freed blocks join the back, rolled-back ones the front, so
        # the order is exactly that of one list that started as 0..total-1.
        self.front: OrderedDict[int, None] = OrderedDict()
        # The back is a queue with lazy removal: taking a free block out of the middle
        # (a prefix hit) only counts its entry as stale, skipped when it reaches the head.
        # A block's stale entries always precede its live one.
        self.back: deque[int] = deque()
        self._stale: dict[int, int] = {}  # block -> stale entries of it in ``back``
        self._n_stale = 0
        self.used = 0
        self.hits = 0
        self.misses = 0
        # Claim freed blocks in bulk for prefills (a subclass with eviction side effects says no).
        self.bulk_recycle = True

    # --- free list -------------------------------------------------------
    def _append_free(self, b: int) -> None:
        self.back.append(b)

    def _prepend_free(self, b: int) -> None:
        self.front[b] = None
        self.front.move_to_end(b, last=False)

    def _remove_free(self, b: int) -> None:
        if self.front.pop(b, _ABSENT) is _ABSENT:
            self._stale[b] = self._stale.get(b, 0) + 1
            self._n_stale += 1
            if self._n_stale > 1024 and 2 * self._n_stale > len(self.back):
                self.back = deque(self._live_back())  # mostly stale: compact (amortized O(1))
                self._stale.clear()
                self._n_stale = 0

    def _live_back(self) -> list[int]:
        """The back of the free list, stale entries left out, head first."""
        stale = dict(self._stale)
        live = []
        for b in self.back:
            if stale.get(b):
                stale[b] -= 1
            else:
                live.append(b)
        return live

    def _touch(self, n: int, ref: int) -> int:
        """Give the next ``n`` untouched blocks state (reference count ``ref``); returns the first id."""
        b = self.hw
        self.hw = b + n
        self.ref_count.extend([ref] * n)
        self.hash.extend([None] * n)
        self.tkey.extend([None] * n)
        return b

    def _pop_live(self, n: int) -> list[int]:
        """Take ``n`` live blocks from the head of the back (enough must be there), skipping
        stale entries as ``_take_head`` does, a chunk at a time in C."""
        back = self.back
        stale = self._stale
        ids: list[int] = []
        need = n
        while need:
            chunk = list(islice(back, need))
            _consume(starmap(back.popleft, repeat((), need)))
            if not stale or stale.keys().isdisjoint(chunk):
                ids += chunk
            else:
                for b in chunk:
                    c = stale.get(b)
                    if not c:
                        ids.append(b)
                        continue
                    self._n_stale -= 1
                    if c == 1:
                        del stale[b]
                    else:
                        stale[b] = c - 1
            need = n - len(ids)
        return ids

    def _take_head(self) -> int:
        """Remove and return the block at the head of the free list (NIL when none is free)."""
        if self.front:
            return self.front.popitem(last=False)[0]
        if self.hw < self.total:
            return self._touch(1, 0)
        back = self.back
        stale = self._stale
        while back:
            b = back.popleft()
            n = stale.get(b)
            if not n:
                return b
            self._n_stale -= 1
            if n == 1:
                del stale[b]
            else:
                stale[b] = n - 1
        return NIL

    def _claim(self) -> tuple[int, object]:
        """Take the head free block for a new holder: (block, the prefix it was registered
        under, now forgotten); (NIL, None) when nothing is free."""
        b = self._take_head()
        if b == NIL:
            return NIL, None
        orig = self.hash[b]
        if orig is not None:
            self.hash_to_block.pop(orig, None)
            self.hash[b] = None
        self.tkey[b] = None
        self.ref_count[b] = 1
        self.used += 1
        self.misses += 1
        return b, orig

    # --- queries ---------------------------------------------------------
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def cached_blocks(self, req: Request) -> list[int]:
        """Blocks holding the longest registered prefix of ``req``'s input (pure query)."""
        out = []
        lookup = self.hash_to_block.get
        for key in req.input_keys(self.block_size):
            b = lookup(key)
            if b is None:
                break
            out.append(b)
        return out

    # --- allocation ------------------------------------------------------
    def hold_prompt(self, req: Request) -> int:
        """Hold ``req``'s whole prompt, computed elsewhere (a disaggregated prefill): its cached
        prefix shared, the rest in new blocks registered as a prefill's would be. Returns how
        many blocks are new (what must be shipped), or -1 when they do not fit (nothing held)."""
        cached = self.cached_blocks(req)
        start = len(cached) * self.block_size
        if start >= req.n_in:  # all cached (a whole number of blocks)
            if cached:
                self._attach(req, cached)
            return 0
        if not self.allocate(req, start, req.n_in, cached):
            return -1
        return len(req.kv_blocks) - len(cached)

    def allocate(self, req: Request, start: int, end: int, cached: list[int]) -> bool:
        """Reserve space for tokens ``[start, end)`` of ``req``; False if it does not fit.

        During prefill the tokens come from the input and ``cached`` blocks are
        attached first when the request holds nothing yet; during decode the one
        token is ``req.output[start - n_in]``.
        """
        bs = self.block_size
        prefill = req.progress < req.n_in
        if prefill:
            new_tokens = req.input[start:end]
            if (len(new_tokens) + bs - 1) // bs > self.total - self.used:
                return False
        else:
            if bs > 1:
                return self._decode_token(req, start)
            new_tokens = req.output[start - req.n_in : start - req.n_in + 1]
        n = len(new_tokens)
        blocks = req.kv_blocks
        had = len(blocks)
        attached: list = []  # cached blocks taken, and those of them that were free
        newly: list = []
        new_mut: list = []
        tkey = self.tkey
        i = 0
        while i < n:
            if blocks:
                tail_len = req.kv_tail_len
            else:
                tail_len = 0
                if cached:
                    attached = cached
                    newly = self._attach(req, cached)
            if tail_len > 0:
                # Fill the partial last block first.
                latest = blocks[-1]
                take = min(bs - tail_len, n - i)
                i += take
                tail_len += take
                req.kv_tail_len = tail_len
                if tail_len == bs:
                    self._seal_tail(req, latest, start + i)
                continue
            if prefill:
                keys = req.input_keys(bs)
                bkeys = req.input_block_keys(bs)
                if not self.front and (start + i) % bs == 0:
                    need = (n - i + bs - 1) // bs
                    if self.total - self.hw >= need:
                        self._take_untouched(req, new_tokens, i, start, keys, bkeys)
                        return True
                    if self.hw == self.total and self.total - self.used >= need and self.bulk_recycle:
                        self._take_recycled(req, new_tokens, i, start, keys, bkeys)
                        return True
            hashes = self.hash
            h2b = self.hash_to_block
            for _ in range((n - i + bs - 1) // bs):
                b, orig = self._claim()
                if b == NIL:
                    self._rollback(req, had, attached, newly, new_mut)
                    return False
                e = i + bs
                if e > n:
                    e = n
                if e - i == bs:
                    if prefill and (start + i) % bs == 0:
                        k = bkeys[(start + i) // bs]  # the input block's key, already computed
                    else:
                        k = block_key(new_tokens[i:e])
                    tkey[b] = k
                    req.kv_chain = chain_key(req.kv_chain, k)
                    if prefill:
                        abs_end = start + e
                        if abs_end % bs == 0:
                            h = keys[abs_end // bs - 1]
                        else:
                            h = _ragged_prefix(req, keys, abs_end, bs)
                        hashes[b] = h
                        h2b[h] = b
                else:
                    req.kv_tail_len = e - i
                new_mut.append((b, orig))
                blocks.append(b)
                i = e
        return True

    def _take_untouched(self, req: Request, new_tokens, i: int, start: int, keys: list, bkeys: list) -> None:
        """The rest of a prefill from never-used blocks: what the block loop does, in bulk.

        Valid when no rolled-back block waits at the head of the free list and enough
        untouched blocks remain, so the loop would take ids hw, hw+1, ... in order.
        """
        bs = self.block_size
        n = len(new_tokens)
        full = (n - i) // bs
        nb = full + (1 if (n - i) % bs else 0)
        b0 = self.hw
        self.hw = b0 + nb
        j0 = (start + i) // bs
        ids = range(b0, b0 + nb)
        self.ref_count.extend([1] * nb)
        own = bkeys[j0 : j0 + full]
        chained = keys[j0 : j0 + full]
        # Left unregistered unless it is preempted (see mark_unshared_prompts): blocks by depth.
        defer = req.defer_kv and len(req.kv_blocks) == j0
        if defer:
            self.tkey.extend([None] * nb)
            self.hash.extend([None] * nb)
        else:
            self.tkey.extend(own)
            self.hash.extend(chained)
            if nb > full:
                self.tkey.append(None)
                self.hash.append(None)
            self.hash_to_block.update(zip(chained, ids))
        if nb > full:
            req.kv_tail_len = n - i - full * bs
        self._hold_new(req, ids, keys, own, chained, j0, defer)

    def _take_recycled(self, req: Request, new_tokens, i: int, start: int, keys: list, bkeys: list) -> None:
        """The rest of a prefill from freed blocks (every block touched, none rolled back, enough
        free): the block loop's work, block by block in the same order, without its calls."""
        bs = self.block_size
        n = len(new_tokens)
        full = (n - i) // bs
        nb = full + (1 if (n - i) % bs else 0)
        j0 = (start + i) // bs
        ids = self._pop_live(nb)
        own = bkeys[j0 : j0 + full]
        chained = keys[j0 : j0 + full]
        hashes = self.hash
        tkey = self.tkey
        rc = self.ref_count
        h2b = self.hash_to_block
        journal = getattr(h2b, "before", None)  # a journaled table (stale cache views): keep it
        head = ids[:full] if nb > full else ids
        olds = list(map(hashes.__getitem__, head))
        live = list(compress(olds, map(is_not, olds, repeat(None)))) if None in olds else olds
        defer = req.defer_kv and len(req.kv_blocks) == j0
        if defer:
            # Nothing to register (see mark_unshared_prompts): the old prefixes go, in C.
            if journal is not None and live:
                h2b.record(live)
            _consume(map(dict.pop, repeat(h2b, len(live)), live, repeat(None)))
            _consume(map(rc.__setitem__, head, repeat(1)))
            if live or bs == 1:  # (with blocks of 1 token a decode block may hold a key alone)
                _consume(map(tkey.__setitem__, head, repeat(None)))
                _consume(map(hashes.__setitem__, head, repeat(None)))
        elif live and not set(live).isdisjoint(chained):
            # A freed block still registered under a prefix this request registers: the order of
            # the block loop decides the table, so follow it.
            self._claim_in_order(head, own, chained, journal)
        else:
            # Disjoint keys: forgetting every old prefix, then registering every new one, leaves
            # the table (and its journal) as the block loop would; each step runs in C.
            if journal is not None:
                h2b.record(live)
                h2b.record(chained)
            _consume(map(dict.pop, repeat(h2b, len(live)), live, repeat(None)))
            _consume(map(rc.__setitem__, head, repeat(1)))
            _consume(map(tkey.__setitem__, head, own))
            _consume(map(hashes.__setitem__, head, chained))
            dict.update(h2b, zip(chained, head))
        if nb > full:
            b = ids[-1]
            orig = hashes[b]
            if orig is not None:
                h2b.pop(orig, None)
            rc[b] = 1
            tkey[b] = None
            hashes[b] = None
            req.kv_tail_len = n - i - full * bs
        self._hold_new(req, ids, keys, own, chained, j0, defer)

    def _hold_new(
        self, req: Request, ids, keys: list, own: list, chained: list, j0: int, deferred: bool = False
    ) -> None:
        """``req`` now holds new blocks ``ids`` (its input's full blocks from ``j0``, keyed ``own``
        and ``chained``, then maybe a partial one): its chain and the counters follow."""
        chain = req.kv_chain
        if own and chain == (keys[j0 - 1] if j0 else CHAIN_SEED):
            chain = chained[-1]  # the blocks held so far are the input's own: keep its chain
        else:
            for k in own:
                chain = chain_key(chain, k)
        req.kv_chain = chain
        n = len(ids)
        self.used += n
        self.misses += n
        req.kv_blocks.extend(ids)
        if deferred:
            req.kv_deferred = j0 + len(own)

    def _claim_in_order(self, ids: list, own: list, chained: list, journal) -> None:
        """Register full blocks ``ids`` under ``chained`` one at a time, each forgetting its old
        prefix first: the block loop's order, for when the two sets of keys meet."""
        hashes = self.hash
        tkey = self.tkey
        rc = self.ref_count
        h2b = self.hash_to_block
        for b, k, h in zip(ids, own, chained):
            orig = hashes[b]
            if orig is not None:
                if journal is not None and orig not in journal:
                    journal[orig] = dict.get(h2b, orig, _ABSENT)
                dict.pop(h2b, orig, None)
            rc[b] = 1
            tkey[b] = k
            hashes[b] = h
            if journal is not None and h not in journal:
                journal[h] = dict.get(h2b, h, _ABSENT)
            dict.__setitem__(h2b, h, b)

    def _seal_tail(self, req: Request, block: int, end: int) -> None:
        """``req``'s partial last block has just filled up to position ``end``: key it, register it."""
        k = req.block_key_ending_at(end, self.block_size)
        self.tkey[block] = k
        h = chain_key(req.kv_chain, k)
        req.kv_chain = h
        self.hash[block] = h
        self.hash_to_block[h] = block
        req.kv_tail_len = 0

    def _decode_token(self, req: Request, pos: int) -> bool:
        """``allocate`` for the decode token at position ``pos`` (block size > 1), without the loops."""
        blocks = req.kv_blocks
        tail = req.kv_tail_len if blocks else 0
        if tail > 0:
            tail += 1
            if tail < self.block_size:
                req.kv_tail_len = tail
                return True
            if req.private_decode:
                req.kv_tail_len = 0  # no lookup can hit it: nothing to key or register
            else:
                self._seal_tail(req, blocks[-1], pos + 1)
            return True
        b, _ = self._claim()
        if b == NIL:
            if not blocks or self.reference_rollback:
                req.reset_kv()
            return False
        req.kv_tail_len = 1
        blocks.append(b)
        return True

    def claim_private(self, reqs: list[Request]) -> None:
        """Give each private decoder (see ``mark_private_decodes``) a new last block, in order;
        enough must be free."""
        k = len(reqs)
        if not self.front and self.hw + k <= self.total:
            # Untouched blocks: no state to clear (what _claim would do, in bulk).
            b = self._touch(k, 1)
            self.used += k
            self.misses += k
            for req in reqs:
                req.kv_blocks.append(b)
                b += 1
            return
        for req in reqs:
            b, _ = self._claim()
            req.kv_blocks.append(b)

    def _attach(self, req: Request, cached: list[int]) -> list[int]:
        """Make ``req`` (holding nothing) share its ``cached`` prefix blocks; returns those that were free."""
        rc = self.ref_count
        tkey = self.tkey
        newly = []
        whole = True  # every block still holds its tokens
        for b in cached:
            c = rc[b]
            rc[b] = c + 1
            if not c:
                newly.append(b)
            if tkey[b] is None:
                whole = False
        for b in newly:
            self._remove_free(b)
        self.used += len(newly)
        self.hits += len(cached)
        req.kv_blocks.extend(cached)
        if whole and not self.reference_rollback:
            # Aligned blocks found by prefix: their chain is the input's own key there.
            req.kv_chain = req.input_keys(self.block_size)[len(cached) - 1]
        else:
            chain = req.kv_chain
            for b in cached:
                k = tkey[b]
                if k is not None:  # a block emptied by a rollback adds no tokens
                    chain = chain_key(chain, k)
            req.kv_chain = chain
        return newly

    def _rollback(self, req: Request, had: int, attached: list, newly: list, new_mut: list) -> None:
        h2b = self.hash_to_block
        for b, orig in reversed(new_mut):
            h = self.hash[b]
            if h is not None:
                h2b.pop(h, None)
            self.hash[b] = orig
            if orig is not None:
                h2b[orig] = b
            self.ref_count[b] = 0
            self.tkey[b] = None
            self.used -= 1
            self.misses -= 1
            self._prepend_free(b)
        for b in attached:
            self.ref_count[b] -= 1
        self.hits -= len(attached)
        for b in reversed(newly):
            self.used -= 1
            self._append_free(b)
        if had and not self.reference_rollback:
            del req.kv_blocks[had:]
            return
        # Nothing held before (or reference mode): the request holds nothing now.
        req.reset_kv()

    def release(self, req: Request) -> None:
        """Drop ``req``'s references; blocks reaching zero go to the free tail, last block first."""
        if req.defer_kv and req.state != COMPLETED:
            self._register_deferred(req)  # it may come back for them (a preemption)
        blocks = req.kv_blocks
        req.reset_kv()
        rc = self.ref_count
        # A request no other shares a first block with holds every block alone (see
        # mark_unshared_prompts); otherwise look.
        if len(blocks) > 8 and (req.defer_kv or max(map(rc.__getitem__, blocks)) == 1):
            # No block is shared: every one is freed, last first (the loop's work, in C).
            _consume(map(rc.__setitem__, blocks, repeat(0)))
            self.back.extend(reversed(blocks))
            self.used -= len(blocks)
            return
        append = self.back.append
        freed = 0
        for b in reversed(blocks):
            c = rc[b] - 1
            rc[b] = c
            if not c:
                append(b)  # _append_free, inlined: once per block of every finished request
                freed += 1
        self.used -= freed

    def _register_deferred(self, req: Request) -> None:
        """Register the full prompt blocks ``req`` holds unregistered (see mark_unshared_prompts),
        as its prefill would have."""
        bs = self.block_size
        blocks = req.kv_blocks
        keys = req.input_keys(bs)
        bkeys = req._input_bkeys
        hashes = self.hash
        h2b = self.hash_to_block
        for j in range(min(req.kv_deferred, len(blocks), min(req.n_in, req.computed) // bs)):
            b = blocks[j]
            if hashes[b] is None:
                hashes[b] = keys[j]
                self.tkey[b] = bkeys[j]
                h2b[keys[j]] = b

    # --- invariants (tests and debugging) ---------------------------------
    def free_list(self) -> list[int]:
        return [*self.front, *range(self.hw, self.total), *self._live_back()]

    def check(self) -> None:
        """Raise AssertionError if the cache's books do not balance."""
        free = self.free_list()
        assert len(free) + self.used == self.total, "used + free != total"
        assert sum(1 for c in self.ref_count if c > 0) == self.used, "referenced blocks disagree with used count"
        for b in free:
            if b < self.hw:  # untouched blocks have no state to check
                assert self.ref_count[b] == 0, f"free block {b} is referenced"
        assert len(set(free)) == len(free), "a block is on the free list twice"


def _ragged_prefix(req: Request, keys: list, end: int, block_size: int) -> tuple:
    """The prefix key BLIS gives a full block ending at input position ``end``, not a block
    boundary (a prefill that starts off one, in the reference's paths only).

    BLIS hashes the input's first ``end`` tokens, so no lookup (which asks for whole blocks)
    can meet it, but blocks filled so again, or their CPU copies, share it. A tuple never equals
    a whole-block key; equal input prefixes give equal tuples.
    """
    q = end // block_size
    return (keys[q - 1] if q else CHAIN_SEED, block_key(req.input[q * block_size : end]), end % block_size)


def mark_unshared_prompts(requests, block_size: int) -> None:
    """Set ``defer_kv`` on each request whose first block of tokens (input, then output) no
    other request's tokens start with.

    A lookup walks some request's input blocks from the first, so only such a request itself
    can ever ask for its prompt's blocks: while it runs it asks for none, and after it
    completes nobody asks. The cache then registers them only when the request leaves unfinished
    (preempted), when it may ask again: the same answers to every lookup, without the table's
    work. Valid for a workload known in full (no request injected later).
    """
    Request.key_inputs(requests, block_size)
    firsts = []
    for r in requests:
        keys = r.input_keys(block_size)
        if keys:
            firsts.append(keys[0])
        elif r.n_in + r.n_out >= block_size:  # its first full block holds output tokens
            head = np.concatenate((r.input[: r.n_in], r.output[: block_size - r.n_in]))
            firsts.append(chain_key(CHAIN_SEED, block_key(head)))
        else:
            firsts.append(None)
    seen: dict = {}
    for k in firsts:
        if k is not None:
            seen[k] = seen.get(k, 0) + 1
    for r, k in zip(requests, firsts):
        r.defer_kv = k is not None and r.n_in >= block_size and seen[k] == 1


def mark_private_decodes(requests, block_size: int, unique: bool = False) -> None:
    """Set ``private_decode`` on each request whose decode blocks no lookup can ever hit.

    A lookup walks some request's full input blocks. It can reach one of A's
    decode blocks (those at depth ``A.n_in // block_size`` and beyond) only
    through A's last full input block, which must then be an interior block
    (not the last) of another request's input. A request with no full input
    block is never marked.

    ``unique`` (a CPU tier, which offloads decode blocks by prefix) asks instead that A's
    decode blocks be the only blocks ever to hold their prefixes: no other request's tokens
    (input and output) may run as far as the end of A's first decode block.
    """
    Request.key_inputs(requests, block_size)
    if unique:
        seqs = (np.concatenate((r.input, r.output)) for r in requests)
        alone = unshared_prefixes(seqs, block_size, [r.n_in // block_size for r in requests])
        for r, private in zip(requests, alone):
            r.private_decode = private
        return
    keys_of = [r.input_keys(block_size) for r in requests]
    lasts = {keys[-1] for keys in keys_of if keys}
    inner = set()  # last blocks of some input that are inner blocks of another
    for keys in keys_of:
        if len(keys) > 1:
            hit = lasts.intersection(keys)  # holds keys[-1] itself, which is no inner block
            if len(hit) > 1:
                hit.discard(keys[-1])
                inner |= hit
    for r, keys in zip(requests, keys_of):
        r.private_decode = bool(keys) and keys[-1] not in inner
