"""Named registries with ownership, duplicate detection, wildcard listing and close-match errors."""
from __future__ import annotations

import difflib
import fnmatch
from typing import Generic, Iterator, TypeVar

from mmbind.errors import UserError

T = TypeVar("T")


class RegistryError(UserError, KeyError):
    """An unknown name (with close matches) or a name registered twice."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0])


class Registry(Generic[T]):
    """Maps a name to a registered object and the plugin that registered it."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._owners: dict[str, str] = {}

    def register(self, item: T, owner: str) -> None:
        name = getattr(item, "name")
        if name in self._items:
            raise RegistryError(
                f"{self.kind} {name!r} is registered twice: by plugin {self._owners[name]!r} "
                f"and by plugin {owner!r}; rename one of them or uninstall one plugin"
            )
        self._items[name] = item
        self._owners[name] = owner

    def unregister_owner(self, owner: str) -> None:
        for name in [n for n, o in self._owners.items() if o == owner]:
            del self._items[name], self._owners[name]

    def get(self, name: str) -> T:
        if name not in self._items:
            close = difflib.get_close_matches(name, list(self._items), n=5, cutoff=0.5)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            known = ", ".join(sorted(self._items)) or "none"
            raise RegistryError(f"unknown {self.kind} {name!r}{hint} (registered: {known})")
        return self._items[name]

    def owner(self, name: str) -> str:
        self.get(name)
        return self._owners[name]

    def list(self, pattern: str = "*") -> list[str]:
        return sorted(n for n in self._items if fnmatch.fnmatchcase(n, pattern))

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def __len__(self) -> int:
        return len(self._items)
