"""The request entity: what a client asked for and how far the engine got with it."""

from __future__ import annotations

from collections import deque
from itertools import repeat
from operator import attrgetter
from typing import Sequence

import numpy as np

from ..forking import Forkable
from .blockhash import CHAIN_SEED, block_key, own_keys, prefix_keys, prefix_keys_many
from .segments import SegmentedPrompt

QUEUED = 0
RUNNING = 1
COMPLETED = 2


def _int64_array(tokens) -> np.ndarray:
    if type(tokens) is np.ndarray and tokens.dtype == np.int64 and tokens.flags.c_contiguous:
        return tokens  # the generators' arrays, as they are
    if type(tokens) is SegmentedPrompt:
        return tokens  # a trace's shared segments: tokens made on demand (see engine.segments)
    return np.ascontiguousarray(tokens, dtype=np.int64)


class Request(Forkable):
    """One inference request.

    Times are integer microseconds ("ticks"). ``progress`` counts input tokens
    processed plus output tokens generated, as in vLLM.
    """

    __slots__ = (
        "id",
        "index",
        "arrival",
        "input",
        "output",
        "n_in",
        "n_out",
        "state",
        "progress",
        "num_new",
        "computed",
        "ttft_set",
        "first_token_time",
        "itl_steps",
        "priority",
        "slo_class",
        "tenant_id",
        "client_id",
        "session_id",
        "assigned",
        # KV-cache bookkeeping, owned by engine.kvcache.
        "kv_blocks",
        "kv_chain",
        "kv_tail_len",
        "_input_keys",
        "_input_bkeys",
        "_seq_bkeys",
        # Lazy decoding, owned by engine.instance: steps [lazy_from, lazy_until] run
        # without touching the request; lazy_itl indexes the instance's step ITLs.
        "lazy_from",
        "lazy_until",
        "lazy_itl",
        "run_seq",
        # True when no lookup can ever hit this request's decode blocks (see
        # kvcache.mark_private_decodes): they need no keys and may be claimed in bulk.
        "private_decode",
        # True while a disaggregated request waits on its decode instance holding the prompt's
        # KV, shipped from a prefill instance (see ``prefill_part`` and engine.batching).
        "remote_kv",
        # True when no other request's tokens start as this one's do (see
        # kvcache.mark_unshared_prompts): its prompt blocks are registered only if it is preempted.
        "defer_kv",
        "kv_deferred",  # leading blocks of kv_blocks that are prompt blocks left unregistered
    )

    # A fork copies the two mutable lists and shares the token arrays and key lists (never changed).
    _FORK_FLAT = frozenset({"itl_steps", "kv_blocks"})
    _FORK_SHARED = frozenset({"input", "output", "_input_keys", "_input_bkeys", "_seq_bkeys"})

    def __init__(
        self,
        rid: str,
        index: int,
        arrival: int,
        input_tokens: Sequence[int],
        output_tokens: Sequence[int],
        slo_class: str = "",
        tenant_id: str = "",
        client_id: str = "",
        session_id: str = "",
    ) -> None:
        self.id = rid
        self.index = index
        self.arrival = arrival
        # Token ids live in int64 arrays (or a SegmentedPrompt): they are only sliced and hashed.
        self.input = _int64_array(input_tokens)
        self.output = _int64_array(output_tokens)
        self.n_in = len(input_tokens)
        self.n_out = len(output_tokens)
        self.state = QUEUED
        self.progress = 0
        self.num_new = 0
        self.computed = 0  # tokens with KV reserved, cached ones included
        self.ttft_set = False
        self.first_token_time = 0
        # The steps whose inter-token latency this request recorded, as flat half-open
        # ranges [start, end, start, end, ...] over its instance's ITL series.
        self.itl_steps: list[int] = []
        self.priority = 0.0
        self.slo_class = slo_class
        self.tenant_id = tenant_id
        self.client_id = client_id  # the workload spec's client; "" otherwise
        self.session_id = session_id  # multi-turn session; "" for single requests
        self.assigned = ""
        self.lazy_from = 0
        self.lazy_until = 0  # 0: not lazy
        self.lazy_itl = 0
        self.run_seq = 0  # admission order into the running batch
        self.private_decode = False
        self.remote_kv = False
        self.defer_kv = False
        # reset_kv(), inlined: one request per workload row
        self.kv_blocks: list[int] = []
        self.kv_chain = CHAIN_SEED
        self.kv_tail_len = 0
        self.kv_deferred = 0
        self._input_keys: list[int] | None = None
        self._input_bkeys: list[int] | None = None
        self._seq_bkeys: list[int] | None = None

    def __deepcopy__(self, memo: dict) -> "Request":
        """A fork's copy (see :mod:`blis_gym.forking`), spelled out: it is the bulk of a fork."""
        new = _new_request(Request)
        memo[id(self)] = new
        _consume(map(_set, repeat(new, len(_PLAIN)), _PLAIN, _get_plain(self)))  # a loop in C
        # The two lists belong to this request alone (the engine only ever aliases them in
        # locals), so they are copied without the memo's bookkeeping.
        new.itl_steps = self.itl_steps.copy()
        new.kv_blocks = self.kv_blocks.copy()
        return new

    def prefill_part(self) -> "Request":
        """This request's prompt alone, as a prefill instance runs it for a disaggregated request:
        id ``<id>_prefill``, the same arrival, no output; token arrays and keys shared."""
        part = Request(f"{self.id}_prefill", self.index, self.arrival, self.input, self.output[:0])
        part.slo_class = self.slo_class
        part.tenant_id = self.tenant_id
        part.client_id = self.client_id
        part.session_id = self.session_id
        part._input_keys = self._input_keys
        part._input_bkeys = self._input_bkeys
        part.defer_kv = self.defer_kv  # the same prompt: nobody else can ask for its blocks
        return part

    def reset_kv(self) -> None:
        """Forget every KV block (the cache has released or lost them)."""
        self.kv_blocks = []
        self.kv_chain = CHAIN_SEED  # identity of the tokens in the full blocks held
        self.kv_tail_len = 0
        self.kv_deferred = 0

    def input_keys(self, block_size: int) -> list[int]:
        """Prefix identities of each full input block (computed once, chained)."""
        keys = self._input_keys
        if keys is None:
            tokens = self.input
            if type(tokens) is SegmentedPrompt:
                keys, self._input_bkeys = tokens.keys(block_size)
            else:
                keys, self._input_bkeys = prefix_keys(tokens, block_size)
            self._input_keys = keys
        return keys

    @staticmethod
    def key_inputs(requests: Sequence["Request"], block_size: int) -> None:
        """Compute ``input_keys`` of many requests at once (numpy calls per batch, not per request)."""
        todo = [r for r in requests if r._input_keys is None and type(r.input) is not SegmentedPrompt]
        for r, (keys, bkeys) in zip(todo, prefix_keys_many([r.input for r in todo], block_size)):
            r._input_keys = keys
            r._input_bkeys = bkeys
        for r in requests:
            if r._input_keys is None:  # segmented prompts: keyed segment by segment
                r.input_keys(block_size)

    def block_key_ending_at(self, end: int, block_size: int) -> int:
        """``block_key`` of the tokens at positions ``[end - block_size, end)`` of input + output.

        A partial block always holds the latest positions reserved, in order, so this is
        the key of the block that ``end`` fills.
        """
        if end % block_size == 0:
            if end <= self.n_in:  # a block of the input, filled by a later prefill chunk
                return self.input_block_keys(block_size)[end // block_size - 1]
            first, keys = self.decode_block_keys(block_size)
            return keys[end // block_size - 1 - first]
        # Unaligned only after the reference's leak has reset a request's blocks mid-sequence.
        return block_key(np.concatenate((np.asarray(self.input), self.output))[end - block_size : end])

    def decode_block_keys(self, block_size: int) -> tuple[int, list[int]]:
        """(j, keys): the ``block_key`` of every full block of input + output from block ``j`` on,
        the one holding the last input token (computed once). A block's key is its tokens'
        alone, so the input blocks before it are not made."""
        first = self.n_in // block_size
        keys = self._seq_bkeys
        if keys is None:
            tail = np.concatenate((self.input[first * block_size :], self.output))
            keys = self._seq_bkeys = own_keys(tail, block_size)
        return first, keys

    def input_block_keys(self, block_size: int) -> list[int]:
        """Own-content identity (``block_key``) of each full input block."""
        self.input_keys(block_size)
        return self._input_bkeys

    def __repr__(self) -> str:
        return f"Request({self.id}, in={self.n_in}, out={self.n_out}, progress={self.progress})"


# Every slot but the two mutable lists: values that are atomic or never changed (shared by forks).
_PLAIN = tuple(n for n in Request.__slots__ if n not in Request._FORK_FLAT)
_get_plain = attrgetter(*_PLAIN)
_new_request = object.__new__
_set = object.__setattr__
_consume = deque(maxlen=0).extend
