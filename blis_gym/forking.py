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
from types import MappingProxyType
from typing import Any, Mapping

_MISSING = object()
_NONE: Mapping[str, int] = MappingProxyType({})
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


def copy_tuples(items: list, memo: dict, at: int) -> list:
    """A copy of a list of tuples whose item ``at`` is a request (or None) and whose other items
    are immutable (event heaps, (request, step) lists): only the requests go through the memo."""
    get = memo.get
    deepcopy = copy.deepcopy
    out = []
    for item in items:
        req = item[at]
        if req is None:
            out.append(item)
            continue
        twin = get(id(req))
        if twin is None:
            twin = deepcopy(req, memo)
        out.append((*item[:at], twin, *item[at + 1 :]) if at != -1 else (*item[:-1], twin))
    return out


def fork_with_tuples(obj: Any, memo: dict, lists: Mapping[str, int] = _NONE, maps: Mapping[str, int] = _NONE) -> Any:
    """``fork_fields`` for a :class:`Forkable` with lists (``lists``: name -> request position)
    or dicts of such lists (``maps``) of request tuples, copied by :func:`copy_tuples`."""
    saved = {name: getattr(obj, name) for name in (*lists, *maps)}
    for name in saved:
        setattr(obj, name, None)
    try:
        new = fork_fields(obj, memo, obj._FORK_FLAT, obj._FORK_SHARED)
    finally:
        for name, value in saved.items():
            setattr(obj, name, value)
    for name, at in lists.items():
        setattr(new, name, copy_tuples(saved[name], memo, at))
    for name, at in maps.items():
        setattr(new, name, {k: copy_tuples(v, memo, at) for k, v in saved[name].items()})
    return new


class Forkable:
    """Mix-in: ``copy.deepcopy`` through :func:`fork_fields` with the class's field lists."""

    __slots__ = ()
    _FORK_FLAT: frozenset = frozenset()
    _FORK_SHARED: frozenset = frozenset()

    def __deepcopy__(self, memo: dict) -> Any:
        return fork_fields(self, memo, self._FORK_FLAT, self._FORK_SHARED)
