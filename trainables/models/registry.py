"""A name -> factory registry filled by a decorator (the timm ``register_model`` habit).

Registering a name twice is an error, and looking up an unknown name lists the known ones, so
a typo in a config fails with the fix in the message.
"""

from __future__ import annotations

import difflib
from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class RegistryError(KeyError):
    """An unknown or duplicate registry name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class Registry(Generic[T]):
    """Named factories of one kind (``what`` names the kind in error messages)."""

    def __init__(self, what: str):
        self.what = what
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@REGISTRY.register("apra")``."""

        def decorate(entry: T) -> T:
            if name in self._entries:
                raise RegistryError(f"{self.what} '{name}' is already registered ({self._entries[name]!r})")
            self._entries[name] = entry
            return entry

        return decorate

    def get(self, name: str) -> T:
        if name not in self._entries:
            close = difflib.get_close_matches(name, list(self._entries), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise RegistryError(f"unknown {self.what} '{name}'; known: {', '.join(sorted(self._entries))}{hint}")
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
