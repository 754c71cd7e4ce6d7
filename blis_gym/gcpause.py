"""Pausing Python's cyclic garbage collector around the simulator's hot code.

The event loop and the environments' steps allocate many short-lived objects
but make no reference cycles, so everything they drop is freed by reference
counting at once. The cyclic collector would still run every few hundred
allocations and re-scan the live objects (requests, their block lists) to
find nothing: about a tenth of the run time. ``tests/unit/test_invariants.py``
checks that a whole simulation leaves no cyclic garbage behind.
"""

from __future__ import annotations

import functools
import gc
from typing import Callable, TypeVar

F = TypeVar("F", bound=Callable)


def gc_paused(fn: F) -> F:
    """Run ``fn`` with the cyclic collector off (restored after, even on errors)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if not gc.isenabled():
            return fn(*args, **kwargs)
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            gc.enable()

    return wrapper  # type: ignore[return-value]
