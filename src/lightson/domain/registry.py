"""A registry of named entries that refuses duplicates and names the choices when asked
for an unknown name (one registry per pluggable family: vehicles, chargers, tariffs...)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

from lightson.domain.errors import DuplicateNameError, UnknownNameError

T = TypeVar("T")


class Registry(Mapping[str, T], Generic[T]):
    """Name → entry. ``register`` refuses a name twice; ``get`` names the valid choices."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T) -> T:
        if name in self._entries:
            raise DuplicateNameError(self.kind, name)
        self._entries[name] = entry
        return entry

    def lookup(self, name: str, path: str = "") -> T:
        """The entry called ``name``; ``UnknownNameError`` (with the known names) otherwise."""
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, self._entries, path) from None

    def __getitem__(self, name: str) -> T:
        return self.lookup(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
