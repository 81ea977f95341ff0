"""A small name -> factory registry shared by datasets and models (timm-style)."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from harkit.errors import ConfigError

T = TypeVar("T")


@dataclass
class Entry(Generic[T]):
    """One registered factory with its one-line description and free-form tags."""

    name: str
    factory: Callable[..., T]
    description: str
    tags: dict[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    """Maps names to factories; `register` is used as a decorator.

    Example:
        >>> reg: Registry[int] = Registry("numbers")
        >>> @reg.register("one", description="the number one")
        ... def one() -> int:
        ...     return 1
        >>> reg.create("one")
        1
        >>> reg.names("o*")
        ['one']
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(
        self, name: str, *, description: str = "", **tags: Any
    ) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def deco(fn: Callable[..., T]) -> Callable[..., T]:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            desc = description or next(iter((fn.__doc__ or "").strip().splitlines()), "")
            self._entries[name] = Entry(name, fn, desc, dict(tags))
            return fn

        return deco

    def get(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries))
            raise ConfigError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def create(self, name: str, **kwargs: Any) -> T:
        return self.get(name).factory(**kwargs)

    def names(self, pattern: str = "*") -> list[str]:
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def entries(self) -> list[Entry[T]]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._entries
