"""The per-request overheads every step-time model shares (blackbox and roofline alike)."""

from __future__ import annotations


class AlphaOverheads:
    """The per-request overheads every step-time model shares, from ``self.alpha``: queueing
    delay ``alpha0 + alpha1 * input length`` and per-output-token time ``alpha2`` (µs)."""

    alpha: tuple[float, ...]

    def queueing_time(self, n_in: int) -> int:
        a = self.alpha
        return int(a[0] + a[1] * float(n_in))

    def output_token_time(self) -> int:
        return int(self.alpha[2])

    def post_decode_time(self) -> int:
        """Added once to the E2E of a request with output (none here; see trained_physics)."""
        return 0

    def scheduling_time(self) -> int:
        return 0

    def preemption_time(self) -> int:
        return 0
