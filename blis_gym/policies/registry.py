"""A name -> factory table per policy family, with clear errors for bad names."""

from __future__ import annotations

import importlib
import inspect
from typing import Callable, Generic, TypeVar, Union

from ..errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Factories for one policy family, looked up by the CLI's names.

    ``make(name, **options)`` passes each factory only the options its
    signature names, so callers can hand every family the same context
    (block size, scorer profile, token-bucket settings) without if-chains.

    A factory may also be registered as an entry point, ``"package.module:function"``, as
    Gymnasium registers environments: it is imported when the policy is first built. The
    learned policies plug in this way, so the core never imports the RL layer.
    """

    def __init__(self, family: str, flag: str) -> None:
        self.family = family
        self.flag = flag
        self._factories: dict[str, Union[Callable[..., T], str]] = {}
        self._params: dict[str, frozenset[str]] = {}
        self._learned: set[str] = set()
        self._oracles: set[str] = set()

    def register(
        self, name: str, learned: bool = False, oracle: bool = False
    ) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Register a factory; ``learned`` marks a policy that runs a trained model, ``oracle`` one
        that reads what a real router cannot (the simulator's future). Neither is a BLIS heuristic."""

        def deco(factory: Callable[..., T]) -> Callable[..., T]:
            self._add(name, factory, learned, oracle)
            self._params[name] = frozenset(inspect.signature(factory).parameters)
            return factory

        return deco

    def register_entry_point(self, name: str, entry_point: str, learned: bool = False, oracle: bool = False) -> None:
        """Register ``name`` by an entry point ``"module:factory"``, imported on first use."""
        self._add(name, entry_point, learned, oracle)

    def _add(self, name: str, factory: Union[Callable[..., T], str], learned: bool, oracle: bool) -> None:
        self._factories[name] = factory
        if learned:
            self._learned.add(name)
        if oracle:
            self._oracles.add(name)

    def _factory(self, name: str) -> Callable[..., T]:
        factory = self._factories[name]
        if isinstance(factory, str):
            module, _, attr = factory.partition(":")
            factory = getattr(importlib.import_module(module), attr)
            self._factories[name] = factory
            self._params[name] = frozenset(inspect.signature(factory).parameters)
        return factory

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
        factory = self._factory(name)
        wanted = self._params[name]
        return factory(**{k: v for k, v in options.items() if k in wanted})
