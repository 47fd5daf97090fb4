"""A name -> item registry shared by koembed's evaluation tasks and distill's benchmark tasks.

It refuses duplicate names (aliases included) when built, and answers an unknown name with the
closest known ones, so a typo on the command line gets a suggestion instead of a KeyError.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

from koembed.errors import InputError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, items: Iterable[tuple[str, T]], aliases: dict[str, str] | None = None) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        for name, item in items:
            if name in self._items:
                raise ValueError(f"{kind} {name!r} is registered twice")
            self._items[name] = item
        self._aliases: dict[str, str] = {}
        for alias, target in (aliases or {}).items():
            if alias in self._items or alias in self._aliases:
                raise ValueError(f"{kind} alias {alias!r} clashes with a registered name")
            if target not in self._items:
                raise ValueError(f"{kind} alias {alias!r} points at unknown {target!r}")
            self._aliases[alias] = target

    def names(self) -> list[str]:
        return list(self._items)

    def get(self, name: str) -> T:
        key = self._aliases.get(name, name)
        if key in self._items:
            return self._items[key]
        known = [*self._items, *self._aliases]
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise InputError(f"unknown {self.kind} {name!r}{hint} (known: {', '.join(sorted(self._items))})")

    def __contains__(self, name: object) -> bool:
        return name in self._items or name in self._aliases

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> Iterator[tuple[str, T]]:
        return iter(self._items.items())

    def values(self) -> Iterator[T]:
        return iter(self._items.values())
