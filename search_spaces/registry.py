"""One registry style for every kind of component (the timm ``register_model`` habit).

Inserted modules, their config sections, losses, augmentations, dataset adapters, poolings and
designs are each a :class:`Registry`: filled by a decorator, a duplicate name is an error, an
unknown name lists the known ones (with the closest match). The built-in components register
exactly as a user's plugin does; the only difference is *who* registered them, which the
registry records as the entry's ``origin``:

- ``None`` for the package's own components (a refactor of the package must not change the
  identity of stored trials, so built-ins count for nothing in a trial's identity);
- the plugin's name for components registered while a plugin loads
  (:func:`search_spaces.plugins.load_plugin` sets it with :func:`loading_plugin`), so a trial
  that uses a plugin's component can carry that plugin's identity.

No torch here: the orchestrator and ``search_spaces`` use these registries to validate specs.
"""

from __future__ import annotations

import contextlib
import difflib
import weakref
from dataclasses import dataclass
from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")

_current_plugin: list[str] = []  # a stack: a plugin may load another one
_registries: "weakref.WeakSet[Registry]" = weakref.WeakSet()


class RegistryError(KeyError):
    """An unknown or duplicate registry name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


@contextlib.contextmanager
def loading_plugin(name: str) -> Iterator[None]:
    """Entries registered inside this block belong to plugin ``name``."""
    _current_plugin.append(name)
    try:
        yield
    finally:
        _current_plugin.pop()


def forget_plugin(origin: str) -> None:
    """Remove what plugin ``origin`` registered, in every registry."""
    for registry in list(_registries):
        registry.forget(origin)


def current_plugin() -> str | None:
    """The plugin being loaded now (None while the package registers its own components)."""
    return _current_plugin[-1] if _current_plugin else None


@dataclass(frozen=True)
class Entry(Generic[T]):
    """A registered component: its value and the plugin that registered it (None: built in)."""

    name: str
    value: T
    origin: str | None


class Registry(Generic[T]):
    """Named components of one kind (``what`` names the kind in error messages)."""

    def __init__(self, what: str, error: type[Exception] = RegistryError):
        self.what = what
        self._error = error
        self._entries: dict[str, Entry[T]] = {}
        _registries.add(self)

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@REGISTRY.register("apra")``."""

        def decorate(value: T) -> T:
            self.add(name, value)
            return value

        return decorate

    def add(self, name: str, value: T) -> None:
        """Register ``value`` as ``name``; registering a name twice is an error."""
        if name in self._entries:
            held = self._entries[name]
            by = f"plugin '{held.origin}'" if held.origin else "the package"
            raise self._error(f"{self.what} '{name}' is already registered (by {by}: {_describe(held.value)}); pick another name")
        self._entries[name] = Entry(name, value, current_plugin())

    def forget(self, origin: str) -> None:
        """Drop every entry plugin ``origin`` registered (it failed to import half-way)."""
        self._entries = {name: entry for name, entry in self._entries.items() if entry.origin != origin}

    def get(self, name: str) -> T:
        return self.entry(name).value

    def entry(self, name: str) -> Entry[T]:
        if name not in self._entries:
            close = difflib.get_close_matches(name, list(self._entries), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise self._error(f"unknown {self.what} '{name}'; known: {', '.join(self.names())}{hint}")
        return self._entries[name]

    def origin(self, name: str) -> str | None:
        """The plugin that registered ``name`` (None: the package itself)."""
        return self.entry(name).origin

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def items(self) -> list[tuple[str, T]]:
        """``(name, value)`` in registration order (built-ins first)."""
        return [(name, entry.value) for name, entry in self._entries.items()]

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))  # registration order (built-ins first)

    def __len__(self) -> int:
        return len(self._entries)


def _describe(value: object) -> str:
    module = getattr(value, "__module__", None)
    qualname = getattr(value, "__qualname__", None)
    return f"{module}.{qualname}" if module and qualname else repr(value)
