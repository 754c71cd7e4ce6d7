"""The request entity: what a client asked for and how far the engine got with it."""

from __future__ import annotations

from typing import Sequence

QUEUED = 0
RUNNING = 1
COMPLETED = 2

# Keys of the chained block identity. Any value works as long as equal token
# sequences (split into equal blocks) give equal keys, which chaining preserves.
_CHAIN_SEED = 0x5BD1E995


def block_key(block_tokens: tuple) -> int:
    """Identity of one full block's tokens, independent of its position."""
    return hash(block_tokens)


def chain_key(prev: int, bkey: int) -> int:
    """Identity of a token prefix, given the identity of the prefix one block shorter."""
    return hash((prev, bkey))


class Request:
    """One inference request.

    Times are integer microseconds ("ticks"). ``progress`` counts input tokens
    processed plus output tokens generated, as in vLLM.
    """

    __slots__ = (
        "id", "index", "arrival", "input", "output", "n_in", "n_out",
        "state", "progress", "num_new", "computed", "ttft_set", "first_token_time",
        "scheduled_step", "finished_step", "itl", "priority",
        "slo_class", "tenant_id", "assigned",
        # KV-cache bookkeeping, owned by engine.kvcache.
        "kv_blocks", "kv_chain", "kv_tail", "kv_tail_len", "_input_keys", "_input_bkeys",
        # Lazy decoding, owned by engine.instance: steps [lazy_from, lazy_until] run
        # without touching the request; lazy_itl indexes the instance's step ITLs.
        "lazy_from", "lazy_until", "lazy_itl",
    )

    def __init__(self, rid: str, index: int, arrival: int,
                 input_tokens: Sequence[int], output_tokens: Sequence[int],
                 slo_class: str = "", tenant_id: str = "") -> None:
        self.id = rid
        self.index = index
        self.arrival = arrival
        self.input = input_tokens
        self.output = output_tokens
        self.n_in = len(input_tokens)
        self.n_out = len(output_tokens)
        self.state = QUEUED
        self.progress = 0
        self.num_new = 0
        self.computed = 0  # tokens with KV reserved, cached ones included
        self.ttft_set = False
        self.first_token_time = 0
        self.scheduled_step = 0
        self.finished_step = 0
        self.itl: list[int] = []
        self.priority = 0.0
        self.slo_class = slo_class
        self.tenant_id = tenant_id
        self.assigned = ""
        self.lazy_from = 0
        self.lazy_until = 0  # 0: not lazy
        self.lazy_itl = 0
        self.reset_kv()
        self._input_keys: list[int] | None = None
        self._input_bkeys: list[int] | None = None

    def reset_kv(self) -> None:
        """Forget every KV block (the cache has released or lost them)."""
        self.kv_blocks: list[int] = []
        self.kv_chain = _CHAIN_SEED  # identity of the tokens in the full blocks held
        self.kv_tail: list = []  # tokens of the partial last block
        self.kv_tail_len = 0

    def input_keys(self, block_size: int) -> list[int]:
        """Prefix identities of each full input block (computed once, chained)."""
        keys = self._input_keys
        if keys is None:
            keys = []
            bkeys = []
            acc = _CHAIN_SEED
            tokens = self.input
            for start in range(0, self.n_in - block_size + 1, block_size):
                k = block_key(tuple(tokens[start:start + block_size]))
                bkeys.append(k)
                acc = chain_key(acc, k)
                keys.append(acc)
            self._input_keys = keys
            self._input_bkeys = bkeys
        return keys

    def input_block_keys(self, block_size: int) -> list[int]:
        """Own-content identity (``block_key``) of each full input block."""
        self.input_keys(block_size)
        return self._input_bkeys

    def __repr__(self) -> str:
        return f"Request({self.id}, in={self.n_in}, out={self.n_out}, progress={self.progress})"
