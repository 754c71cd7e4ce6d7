"""Fast exact copies of a paused simulation, for ``ClusterSimulator.fork`` and ``ClusterEnv.fork``.

A fork is ``copy.deepcopy`` with two shortcuts that make it cheap. Classes on
the hot path mix in :class:`Forkable` and name their fields:

* ``_FORK_FLAT``: containers of immutable values (ints, strings, records that
  are never changed): copied with one C-level ``copy()``, not element by element;
* ``_FORK_SHARED``: values that never change after they are made (token arrays,
  block-key lists, configs): the fork points at the same object.

Everything else is deep-copied as usual, with the memo keeping shared
references shared (a request in a wait queue and in the event heap stays one
request in the fork). Forks are pickle-free: the originals' objects are never
touched, and running a fork never changes the original.
"""

from __future__ import annotations

import copy
from typing import Any

_MISSING = object()
_ATOMIC = frozenset({int, float, bool, str, bytes, type(None)})
_FIELDS: dict[type, tuple[str, ...]] = {}


def _slot_names(cls: type) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(n for c in cls.__mro__ for n in getattr(c, "__slots__", ()))
    return names


def fork_fields(obj: Any, memo: dict, flat: frozenset, shared: frozenset) -> Any:
    """A deep copy of ``obj`` that copies ``flat`` containers shallowly and keeps ``shared`` fields."""
    cls = type(obj)
    new = cls.__new__(cls)
    memo[id(obj)] = new
    names = _slot_names(cls)
    if hasattr(obj, "__dict__"):
        names = names + tuple(vars(obj))
    deepcopy = copy.deepcopy
    setter = object.__setattr__
    for name in names:
        value = getattr(obj, name, _MISSING)
        if value is _MISSING:
            continue
        if type(value) in _ATOMIC or name in shared:
            pass
        elif name in flat:
            done = memo.get(id(value), _MISSING)
            if done is _MISSING:
                done = value.copy()
                memo[id(value)] = done
                memo.setdefault(id(memo), []).append(value)  # keep it alive, as deepcopy does
            value = done
        else:
            value = deepcopy(value, memo)
        setter(new, name, value)
    return new


class Forkable:
    """Mix-in: ``copy.deepcopy`` through :func:`fork_fields` with the class's field lists."""

    __slots__ = ()
    _FORK_FLAT: frozenset = frozenset()
    _FORK_SHARED: frozenset = frozenset()

    def __deepcopy__(self, memo: dict) -> Any:
        return fork_fields(self, memo, self._FORK_FLAT, self._FORK_SHARED)
