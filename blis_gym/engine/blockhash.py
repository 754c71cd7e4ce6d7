"""Identities of KV blocks and of token prefixes, as 64-bit integers.

Only equality matters: equal token sequences, split into equal blocks, must
get equal keys, and different ones different keys (up to 64-bit collisions).

* A block's own key is a dot product of its tokens with fixed random odd
  multipliers, mod 2**64.
* A prefix's key chains its blocks: ``H_j = H_{j-1} * R + key_j`` (mod 2**64),
  from ``CHAIN_SEED``. Written as ``H_j = R**j * (CHAIN_SEED * R + sum_i key_i * R**-i)``
  it is a cumulative sum, so a whole prompt is keyed with a few numpy calls.
"""

from __future__ import annotations

import functools
from itertools import islice
from typing import Iterable

import numpy as np

M64 = (1 << 64) - 1
CHAIN_SEED = 0x5BD1E995
_R = 0x9E3779B97F4A7C15  # odd, so invertible mod 2**64
_R_INV = pow(_R, -1, 1 << 64)
_SEED_R = np.uint64((CHAIN_SEED * _R) & M64)
_pow: list[np.ndarray] = []  # [R**i, R**-i] for i < len, grown on demand


# The first 64 multipliers the generator below draws, written out: blocks of up to 64 tokens
# (every usual block size) need no random generator at start-up (numpy.random costs ~10 ms).
# tests/unit/test_invariants.py checks them against the generator.
# fmt: off
_FIRST_MULTIPLIERS = np.array([
    0x9827161bb0bdd001, 0x82500efc833e5d2d, 0xd59464303d5c5541, 0xe39ef1f0d5640e65, 0xc746e28b301c6ecb,
    0xede22c1ba9cf59ed, 0x7bd25c02bb540d6f, 0x4cf2ca32d4c40d4b, 0x38f3d58516951f1f, 0xdec9446474b85a59,
    0xc35a491abfa39419, 0xa35720c95a83c861, 0xb203869a25224b47, 0x9da2b5bcbd2fba8b, 0x38e3f02ac3182d5f,
    0xab7551dd0153f669, 0x3bffc35010fca6a7, 0x4560c31e7eb87777, 0x9d735178ae68cacd, 0x2f5148a76615b69f,
    0x6dffbd4c182e878b, 0x3744fd4905fd5f25, 0x5bd5bb32f871d13b, 0xd3741059e72c7bd9, 0x31a0860b0f68f21,
    0xbd9374bbf2d6dbff, 0xb923df355bb3b0a7, 0xa6eecaef801ffdd5, 0xac5675799727fe4b, 0x71b930dbaf2d9f7f,
    0xd75543ea4e22615b, 0xcf6d7cb4def712ff, 0xc6e030a8f673400f, 0xc2e77497bafeac2d, 0xd1c584239a09d393,
    0xcfb6cc37ceaefc5f, 0xaf5c992891d7eb0f, 0x7115ae57bedecd39, 0x81e73eef427a453d, 0x1c13042a864e29a1,
    0x5f44ef4cb2c4e2d5, 0x6b74c03a0bd52dcb, 0x61d99c1b22f8455, 0xbb3abba3e224eb13, 0xce5f09ab6b3e63cb,
    0xcde6dcd3147ed0b9, 0xb9372d38cf322db1, 0x8c9662af193fae91, 0x3931142db5b241c7, 0x4e0cdc05a4d8aecd,
    0x86634aa517e6f0ef, 0xe7433f0e2068ee19, 0x877ae5a84b196887, 0x666b76a465c72bfb, 0x87e4ad553aaf47cb,
    0x87db4186fff95fdd, 0x8c342a5d445d54ff, 0xc808edf7ea5699cb, 0x8f103843cd265397, 0xd87f1c39ffffcda3,
    0x996c9ffcf037e945, 0x9e351b4cb2b10f89, 0xa3656163d842a81f, 0xd794b1ddcd60e317,
], dtype=np.uint64)
# fmt: on


@functools.lru_cache(maxsize=8)
def _multipliers(n: int) -> np.ndarray:
    """``n`` fixed odd 64-bit multipliers: 2 * (the first ``n`` draws of a seeded PCG64) + 1."""
    if n <= len(_FIRST_MULTIPLIERS):
        return _FIRST_MULTIPLIERS[:n].copy()
    rng = np.random.default_rng(0xB10C)
    return rng.integers(0, 1 << 63, n, dtype=np.uint64) * np.uint64(2) + np.uint64(1)


def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    if not _pow or len(_pow[0]) < n:
        size = max(n, 2 * len(_pow[0]) if _pow else 1024)
        up, down = [1] * size, [1] * size
        for i in range(1, size):
            up[i] = (up[i - 1] * _R) & M64
            down[i] = (down[i - 1] * _R_INV) & M64
        _pow[:] = [np.array(up, dtype=np.uint64), np.array(down, dtype=np.uint64)]
    return _pow[0], _pow[1]


def block_key(tokens) -> int:
    """Own-content key of one block of tokens (any sequence of ints)."""
    a = np.asarray(tokens, dtype=np.int64).view(np.uint64)
    return int(a @ _multipliers(len(a)))


def chain_key(prev: int, key: int) -> int:
    """Key of a prefix, from the key of the prefix one block shorter and the new block's key."""
    return (prev * _R + key) & M64


def _own(tokens: np.ndarray, block_size: int) -> np.ndarray:
    nb = len(tokens) // block_size
    blocks = tokens[: nb * block_size].view(np.uint64).reshape(nb, block_size)
    return blocks @ _multipliers(block_size)  # integer matmul wraps mod 2**64


def own_keys(tokens: np.ndarray, block_size: int) -> list[int]:
    """``block_key`` of every full block of ``tokens`` (int64 array), in one pass."""
    return _own(tokens, block_size).tolist()


def prefix_keys(tokens: np.ndarray, block_size: int) -> tuple[list[int], list[int]]:
    """(chained prefix keys, own block keys) of every full block of ``tokens`` (int64 array)."""
    nb = len(tokens) // block_size
    if nb == 0:
        return [], []
    own = _own(tokens, block_size)
    up, down = _powers(nb)
    chained = up[:nb] * (np.cumsum(own * down[:nb]) + _SEED_R)
    return chained.tolist(), own.tolist()


def _flat_keys(arrays: list[np.ndarray], block_size: int, counts: np.ndarray):
    """(own keys, chained prefix keys, depth) of every full block of all ``arrays``, in one
    flat uint64 array each, array after array; ``counts`` is each array's number of blocks."""
    total = int(counts.sum())
    flat = np.concatenate([a[: n * block_size] for a, n in zip(arrays, counts.tolist())])
    own = flat.view(np.uint64).reshape(total, block_size) @ _multipliers(block_size)
    starts = np.cumsum(counts) - counts
    depth = np.arange(total) - np.repeat(starts, counts)  # block index within its array
    up, down = _powers(int(counts.max()))
    sums = np.cumsum(own * down[depth])
    before = np.concatenate((np.zeros(1, np.uint64), sums))[starts]  # the running sum where each array starts
    return own, up[depth] * (sums - np.repeat(before, counts) + _SEED_R), depth


def unshared_prefixes(arrays: Iterable[np.ndarray], block_size: int, depths: list[int], chunk: int = 512) -> list[bool]:
    """For each array: whether no other array shares its prefix up to the end of its block
    ``depths[i]`` (True as well when it has no such block). ``arrays`` is read ``chunk`` at a
    time: beyond a chunk, only keys (8 bytes a block) are held."""
    arrays = iter(arrays)
    keys = []  # the chained key of every block
    targets = []  # per chunk: each array's key at its depth, and whether it has that block
    done = 0
    while batch := list(islice(arrays, chunk)):
        counts = np.fromiter((len(a) // block_size for a in batch), dtype=np.int64, count=len(batch))
        want = np.asarray(depths[done : done + len(batch)], dtype=np.int64)
        done += len(batch)
        has = want < counts
        at = np.zeros(len(batch), np.uint64)
        if counts.sum():
            chained = _flat_keys(batch, block_size, counts)[1]
            at[has] = chained[(np.cumsum(counts) - counts)[has] + want[has]]
            keys.append(chained)
        targets.append((at, has))
    ordered = np.sort(np.concatenate(keys)) if keys else np.zeros(0, np.uint64)
    out = []
    for at, has in targets:
        seen = np.searchsorted(ordered, at, side="right") - np.searchsorted(ordered, at, side="left")
        out.extend((~has | (seen == 1)).tolist())  # (its own block is the one)
    return out


def prefix_keys_many(arrays: list[np.ndarray], block_size: int) -> list[tuple[list[int], list[int]]]:
    """``prefix_keys`` of each array, computed for all of them in one pass (same values).

    Inputs usually open with a shared system prompt. The leading blocks each
    input shares with the first one are handed out as the first input's own
    Python ints, so only the rest are converted (and later freed).
    """
    counts = np.fromiter((len(a) // block_size for a in arrays), dtype=np.int64, count=len(arrays))
    total = int(counts.sum())
    if total == 0:
        return [([], []) for _ in arrays]
    own, chained, depth = _flat_keys(arrays, block_size, counts)
    ends = np.cumsum(counts)
    # How many leading blocks each input shares with the first (equal prefix keys).
    n0 = int(counts[0])
    head = chained[:n0]
    same = depth < n0
    same[same] = chained[same] == head[depth[same]]
    shared = np.minimum(counts, n0)
    miss = np.flatnonzero(~same)
    if len(miss):
        # The first differing block of each input that has one (depth < n0 there).
        owner = np.searchsorted(ends, miss, side="right")
        lead = np.ones(len(miss), dtype=bool)
        lead[1:] = owner[1:] != owner[:-1]
        first = np.full(len(arrays), n0)
        first[owner[lead]] = depth[miss[lead]]
        shared = np.minimum(shared, first)
    rest = depth >= np.repeat(shared, counts)
    head_c, head_o = chained[:n0].tolist(), own[:n0].tolist()
    rest_c, rest_o = chained[rest].tolist(), own[rest].tolist()
    out = []
    a = 0
    for m, n in zip(shared.tolist(), counts.tolist()):
        b = a + n - m
        if m:
            out.append((head_c[:m] + rest_c[a:b], head_o[:m] + rest_o[a:b]))
        else:
            out.append((rest_c[a:b], rest_o[a:b]))
        a = b
    return out
