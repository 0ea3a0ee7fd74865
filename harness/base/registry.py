"""One small registry for every kind of named thing (tiers, tasks, models, invariants, stages, judges).

A `Registry` is a read-only mapping from name to object, filled once where the kind is defined. A name is registered
at most once, and a lookup that misses raises UnknownNameError with a did-you-mean (it is a KeyError too).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Generic, TypeVar

from harness.errors import UnknownNameError

T = TypeVar("T")


class Registry(Mapping[str, T], Generic[T]):
    def __init__(self, kind: str, items: Iterable[T] = (), *,
                 key: Callable[[T], str] = lambda item: item.name) -> None:  # type: ignore[attr-defined]
        self.kind = kind
        self._key = key
        self._items: dict[str, T] = {}
        for item in items:
            self.register(item)

    def register(self, item: T) -> T:
        """Add `item` under its name; a second object of the same name is refused."""
        name = self._key(item)
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._items[name] = item
        return item

    @contextlib.contextmanager
    def added(self, item: T) -> Iterator[T]:
        """`item` registered for the duration of a with-block (a test's throwaway kind)."""
        self.register(item)
        try:
            yield item
        finally:
            del self._items[self._key(item)]

    def __getitem__(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, self._items) from None

    def __contains__(self, name: object) -> bool:  # a plain membership test builds no did-you-mean
        return name in self._items

    def get(self, name: str, default: T | None = None) -> T | None:
        return self._items.get(name, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._items)})"

