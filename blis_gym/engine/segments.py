"""Prompts made of shared segments, for traces that say which requests share which tokens.

A production trace such as Mooncake's lists, per request, the ids of its prompt's fixed-size
token blocks (512 tokens): two requests that list the same id at the same position share
those tokens. Holding every prompt's tokens would take gigabytes (the conversation trace has
145 million prompt tokens), so a :class:`SegmentedPrompt` holds only its segment ids and
length; the tokens are made up on demand and are the same wherever an id appears:
segment ``s`` is the ``size`` consecutive token ids from ``first_token + s * size``.

The engine asks a prompt for its tokens only in slices (a prefill chunk) and for its block
keys (:meth:`SegmentedPrompt.keys`). Keys are exactly those :mod:`.blockhash` gives for the
made-up tokens, so a trace replayed this way runs exactly as the same requests written out
token by token (a BLIS CSV trace) do. They are computed once per segment and per prefix path
and kept in the :class:`SegmentStore` the prompts share: a key list of a request is then
pointers to shared integers, not integers of its own.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .blockhash import CHAIN_SEED, chain_key, own_keys, prefix_keys


class SegmentStore:
    """Segment tokens and the keys of segments and of prefix paths, per KV block size.

    ``size`` tokens a segment; segment ``s`` holds ``first_token + s * size + [0, size)``.
    """

    def __init__(self, size: int = 512, first_token: int = 1 << 40) -> None:
        self.size = size
        self.first_token = first_token
        self._caches: dict[int, tuple[dict, dict]] = {}  # block size -> (own keys by segment, chained by path)

    def tokens(self, segment: int, start: int = 0, end: int | None = None) -> np.ndarray:
        """Tokens ``[start, end)`` of segment ``segment`` (int64)."""
        base = self.first_token + segment * self.size
        return np.arange(base + start, base + (self.size if end is None else end), dtype=np.int64)

    def path_keys(self, parent: int, segment: int, block_size: int) -> tuple[list[int], list[int]]:
        """(chained keys, own keys) of the full blocks of ``segment`` placed after a prefix whose
        last chained key is ``parent`` (``CHAIN_SEED`` at the start of a prompt)."""
        cache = self._caches.get(block_size)
        if cache is None:
            cache = self._caches[block_size] = ({}, {})
        own_by_segment, chained_by_path = cache
        own = own_by_segment.get(segment)
        if own is None:
            own = own_by_segment[segment] = own_keys(self.tokens(segment), block_size)
        chained = chained_by_path.get((parent, segment))
        if chained is None:
            chained = []
            prev = parent
            for k in own:
                prev = chain_key(prev, k)
                chained.append(prev)
            chained_by_path[(parent, segment)] = chained
        return chained, own

    # The caches are recomputed where a store is unpickled (a worker process, a fork's copy).
    def __getstate__(self) -> dict:
        return {"size": self.size, "first_token": self.first_token}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["size"], state["first_token"])


class SegmentedPrompt:
    """A prompt of ``length`` tokens: the segments ``segments`` of ``store``, in order, the last
    one cut to what is left of ``length``. Behaves as the int64 token array where the engine
    needs one (``len``, slices, ``np.asarray``) and gives its block keys without it."""

    __slots__ = ("store", "segments", "length")

    def __init__(self, store: SegmentStore, segments: Sequence[int], length: int) -> None:
        size = store.size
        if not size * (len(segments) - 1) < length <= size * len(segments):
            raise ValueError(f"{len(segments)} segments of {size} tokens cannot hold a prompt of {length} tokens")
        self.store = store
        self.segments = tuple(segments)
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index) -> np.ndarray:
        if not isinstance(index, slice):
            raise TypeError("a segmented prompt is read in slices")
        start, stop, step = index.indices(self.length)
        if step != 1:
            raise ValueError("a segmented prompt is read in contiguous slices")
        return self._tokens(start, stop)

    def _tokens(self, start: int, stop: int) -> np.ndarray:
        if stop <= start:
            return np.zeros(0, dtype=np.int64)
        size, store = self.store.size, self.store
        first, last = start // size, (stop - 1) // size
        parts = [
            store.tokens(self.segments[i], max(start - i * size, 0), min(stop - i * size, size))
            for i in range(first, last + 1)
        ]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        tokens = self._tokens(0, self.length)
        return tokens if dtype is None else tokens.astype(dtype)

    def tobytes(self) -> bytes:
        return self._tokens(0, self.length).tobytes()

    def keys(self, block_size: int) -> tuple[list[int], list[int]]:
        """(chained prefix keys, own block keys) of every full block: ``prefix_keys`` of the
        tokens, without making them when blocks do not straddle segments."""
        size = self.store.size
        if size % block_size:
            return prefix_keys(np.asarray(self), block_size)
        per = size // block_size
        full = self.length // block_size
        chained: list[int] = []
        own: list[int] = []
        parent = CHAIN_SEED
        for segment in self.segments:
            left = full - len(chained)
            if left <= 0:
                break
            c, o = self.store.path_keys(parent, segment, block_size)
            if left < per:
                chained += c[:left]
                own += o[:left]
                break
            chained += c
            own += o
            parent = c[-1]
        return chained, own

    def __repr__(self) -> str:
        return f"SegmentedPrompt({len(self.segments)} segments, {self.length} tokens)"
