"""A name -> factory table per policy family, with clear errors for bad names."""

from __future__ import annotations

import inspect
from typing import Callable, Generic, TypeVar

from ..errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Factories for one policy family, looked up by the CLI's names.

    ``make(name, **options)`` passes each factory only the options its
    signature names, so callers can hand every family the same context
    (block size, scorer profile, token-bucket settings) without if-chains.
    """

    def __init__(self, family: str, flag: str) -> None:
        self.family = family
        self.flag = flag
        self._factories: dict[str, Callable[..., T]] = {}
        self._params: dict[str, frozenset[str]] = {}
        self._learned: set[str] = set()
        self._oracles: set[str] = set()

    def register(self, name: str, learned: bool = False,
                 oracle: bool = False) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Register a factory; ``learned`` marks a policy that runs a trained model, ``oracle`` one
        that reads what a real router cannot (the simulator's future). Neither is a BLIS heuristic."""
        def deco(factory: Callable[..., T]) -> Callable[..., T]:
            self._factories[name] = factory
            self._params[name] = frozenset(inspect.signature(factory).parameters)
            if learned:
                self._learned.add(name)
            if oracle:
                self._oracles.add(name)
            return factory
        return deco

    def names(self) -> list[str]:
        """The built-in heuristics (BLIS's policies), in registration order."""
        return [n for n in self._factories if n not in self._learned and n not in self._oracles]

    def oracles(self) -> list[str]:
        """The clairvoyant yardsticks (ours, not BLIS's)."""
        return sorted(self._oracles)

    def all_names(self) -> list[str]:
        """Every accepted name: the heuristics, the oracles, then the learned policies."""
        return self.names() + self.oracles() + sorted(self._learned)

    def __contains__(self, name: str) -> bool:
        return name in self._factories

    def validate(self, name: str) -> None:
        if name not in self._factories:
            raise ConfigError(f"{self.flag}: unknown {self.family} {name!r} (valid: {', '.join(self.all_names())})")

    def make(self, name: str, **options) -> T:
        """Build policy ``name``; options its factory does not take are ignored."""
        self.validate(name)
        wanted = self._params[name]
        return self._factories[name](**{k: v for k, v in options.items() if k in wanted})
