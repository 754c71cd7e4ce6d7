"""Diagnostics on stderr at the ``--log`` level, in BLIS's ``level=... msg="..."`` format."""

from __future__ import annotations

import logging
import sys

from ..plan.options import LOG_LEVELS


class _StderrHandler(logging.StreamHandler):
    """Writes to ``sys.stderr`` as it is when a record is emitted, not as it was at setup: the
    CLI also runs in-process (tests, notebooks) where stderr is swapped between runs."""

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def setup_logging(level: str) -> None:
    """Route the ``blis_gym`` logger to stderr at ``level`` (a ``--log`` name; unknown: warn)."""
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter('level=%(levelname)s msg="%(message)s"'))
    logger = logging.getLogger("blis_gym")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(LOG_LEVELS.get(level.lower(), logging.WARNING))
