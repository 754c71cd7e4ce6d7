"""A one-line stderr progress bar for long commands (``blis run``, ``blis sweep``)."""

from __future__ import annotations

import sys
import time
from typing import Optional, TextIO


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class ProgressBar:
    """Redrawn at most ten times a second; ends its line when ``done`` reaches ``total``.

    ``what`` follows the count (``"requests routed"``); with ``eta``, the elapsed time and the
    estimated time left (from the mean pace so far) follow, and ``note`` (e.g. failures) after.
    """

    def __init__(self, total: int, what: str, eta: bool = False, stream: Optional[TextIO] = None) -> None:
        self.total = max(total, 1)
        self.what = what
        self.eta = eta
        self.stream = stream if stream is not None else sys.stderr  # stderr as it is now, not at import
        self.started = time.monotonic()
        self.last = 0.0
        self.base = 0  # work done before this bar started (a resumed sweep): no pace from it

    def __call__(self, done: int, note: str = "") -> None:
        now = time.monotonic()
        if now - self.last < 0.1 and done < self.total:
            return
        self.last = now
        frac = min(done / self.total, 1.0)
        text = f"\r[{'#' * int(frac * 30):<30}] {done}/{self.total} {self.what}"
        if self.eta:
            elapsed = now - self.started
            fresh = done - self.base
            left = elapsed / fresh * (self.total - done) if fresh > 0 else None
            text += f", {_clock(elapsed)} elapsed, " + (f"{_clock(left)} left" if left is not None else "-:--:-- left")
        if note:
            text += f", {note}"
        self.stream.write(text + "   ")
        if done >= self.total:
            self.stream.write("\n")
        self.stream.flush()
