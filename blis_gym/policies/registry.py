"""A name -> factory table per policy family, with clear errors for bad names."""

from __future__ import annotations

from typing import Callable, Generic, Iterable, TypeVar

from ..errors import ConfigError, UnsupportedFeatureError

T = TypeVar("T")


class Registry(Generic[T]):
    """Factories for one policy family, looked up by the CLI's names.

    ``planned`` names are valid in the reference but not built here yet; asking
    for one raises :class:`UnsupportedFeatureError` instead of "unknown".
    """

    def __init__(self, family: str, flag: str, planned: Iterable[str] = ()) -> None:
        self.family = family
        self.flag = flag
        self._factories: dict[str, Callable[..., T]] = {}
        self._planned = set(planned)

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def deco(factory: Callable[..., T]) -> Callable[..., T]:
            self._factories[name] = factory
            self._planned.discard(name)
            return factory
        return deco

    def names(self) -> list[str]:
        return list(self._factories)

    def __contains__(self, name: str) -> bool:
        return name in self._factories

    def validate(self, name: str) -> None:
        if name in self._factories:
            return
        if name in self._planned:
            raise UnsupportedFeatureError(
                f"{self.flag} {name!r}: this {self.family} is not supported yet "
                f"(available: {', '.join(self.names())})")
        raise ConfigError(f"{self.flag}: unknown {self.family} {name!r} (valid: {', '.join(self.names())})")

    def make(self, name: str, **options) -> T:
        self.validate(name)
        return self._factories[name](**options)
