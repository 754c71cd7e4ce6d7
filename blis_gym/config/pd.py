"""Prefill/decode disaggregation settings, validated once (``--prefill-instances`` and friends).

Instances ``[0, P)`` form the prefill pool, ``[P, P+D)`` the decode pool and the next ``S``
are shared (they serve both roles), as upstream BLIS lays them out; instances past the pools
serve nothing. Times are ticks (µs); the bandwidth is bytes per tick.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ConfigError

#: Upstream BLIS's defaults: 25 GB/s links with 0.05 ms set-up per transfer.
DEFAULT_TRANSFER_BANDWIDTH_GBPS = 25.0
DEFAULT_TRANSFER_BASE_LATENCY_MS = 0.05


@dataclass(frozen=True)
class PDConfig:
    """Pool sizes, the decider and the KV transfer model.

    ``kv_bytes_per_token`` is the KV one prompt token occupies on the prefill side (all
    layers, keys and values, divided over the prefill TP), what a transfer ships per token.
    ``prefill_scorers``/``decode_scorers`` (weighted-routing profiles) route each pool; empty:
    each pool gets its own copy of the cluster's routing policy.
    """

    prefill: int
    decode: int
    shared: int = 0
    decider: str = "never"
    prefix_threshold: int = 16
    bandwidth: float = DEFAULT_TRANSFER_BANDWIDTH_GBPS * 1000.0  # bytes per µs (GB = 1e9 bytes)
    base_latency: float = DEFAULT_TRANSFER_BASE_LATENCY_MS * 1000.0  # µs
    contention: bool = False
    kv_bytes_per_token: float = 0.0
    prefill_scorers: tuple = ()
    decode_scorers: tuple = ()

    def __post_init__(self) -> None:
        for flag, n in (
            ("--prefill-instances", self.prefill),
            ("--decode-instances", self.decode),
            ("--prefill-decode-instances", self.shared),
        ):
            if n < 0:
                raise ConfigError(f"{flag} must be >= 0, got {n}")
        if self.shared == 0 and (self.prefill == 0 or self.decode == 0):
            raise ConfigError(
                "--prefill-instances and --decode-instances must both be > 0 without shared "
                f"(--prefill-decode-instances) instances, got {self.prefill} and {self.decode}"
            )
        if not (self.bandwidth > 0 and math.isfinite(self.bandwidth)):
            raise ConfigError(
                f"--pd-transfer-bandwidth must be a finite number of GB/s > 0, got {self.bandwidth / 1000}"
            )
        if not (self.base_latency >= 0 and math.isfinite(self.base_latency)):
            raise ConfigError(
                f"--pd-transfer-base-latency must be a finite number of ms >= 0, got {self.base_latency / 1000}"
            )
        if self.prefix_threshold < 0:
            raise ConfigError(f"--pd-prefix-threshold must be >= 0, got {self.prefix_threshold}")

    @property
    def size(self) -> int:
        """Instances the pools take."""
        return self.prefill + self.decode + self.shared

    def prefill_pool(self) -> tuple[int, ...]:
        """Instance indices that prefill split requests, in index order."""
        return tuple(range(self.prefill)) + self._shared()

    def decode_pool(self) -> tuple[int, ...]:
        """Instance indices that decode (and serve local requests whole), in index order."""
        return tuple(range(self.prefill, self.prefill + self.decode)) + self._shared()

    def _shared(self) -> tuple[int, ...]:
        start = self.prefill + self.decode
        return tuple(range(start, start + self.shared))

    def transfer_time(self, blocks: int, block_size: int, active: int = 1) -> int:
        """Ticks to ship ``blocks`` KV blocks: base latency plus bytes over the bandwidth (each of
        ``active`` concurrent transfers gets an equal share with contention on), rounded up, at
        least 1."""
        bw = self.bandwidth / active if self.contention and active > 1 else self.bandwidth
        nbytes = blocks * block_size * self.kv_bytes_per_token
        return max(1, math.ceil(self.base_latency + nbytes / bw))


def kv_bytes_per_token(
    layers: int, heads: int, kv_heads: int, hidden: int, head_dim: int, dtype_bytes: float, tp: int
) -> float:
    """Bytes of KV one token holds per GPU of a ``tp``-way instance: keys and values of every
    layer (``kv_heads`` 0 means as many as ``heads``; ``head_dim`` 0 means hidden / heads)."""
    kvh = kv_heads or heads
    hd = head_dim or hidden // heads
    if kvh >= tp and kvh % tp:
        raise ConfigError(f"the model's {kvh} KV heads do not divide over TP {tp}")
    return layers * 2 * hd * kvh * dtype_bytes / tp
