"""The one least-recently-used cache of the core: bounded by entries or by bytes, with an
optional time to live, safe across threads."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from threading import Lock
from time import monotonic
from typing import Generic, TypeVar, cast

from storage import metrics

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
_MISSING = object()


class Lru(Generic[K, V]):
    """A map that forgets its least recently used entries.

    ``max_items`` bounds the number of entries; ``max_bytes`` with ``size`` bounds their total
    size (an entry larger than the bound is not kept); ``ttl`` seconds bound how old an entry
    may be when it is read; a *name* counts its hits and misses in the metrics
    (wsiarchive_cache_lookups_total{cache=name}). Values are made outside the lock, so two
    threads may make the same value once each; the cache keeps the later.
    """

    def __init__(
        self,
        max_items: int | None = None,
        *,
        max_bytes: int | None = None,
        size: Callable[[V], int] | None = None,
        ttl: float | None = None,
        name: str = "",
    ) -> None:
        if max_items is None and max_bytes is None:
            raise ValueError("an Lru needs max_items or max_bytes")
        if max_bytes is not None and size is None:
            raise ValueError("max_bytes needs a size function")
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.ttl = ttl
        self._size = size
        self._entries: OrderedDict[K, tuple[float, int, V]] = OrderedDict()
        self._lock = Lock()
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        if name:
            metrics.watch_cache(name, self)

    def __len__(self) -> int:
        return len(self._entries)

    def _lookup(self, key: K) -> object:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or (self.ttl is not None and monotonic() - entry[0] >= self.ttl):
                self.misses += 1
                return _MISSING
            self._entries.move_to_end(key)
            self.hits += 1
            return entry[2]

    def get(self, key: K) -> V | None:
        """The value of *key*, or None when it is not (or no longer) cached."""
        found = self._lookup(key)
        return None if found is _MISSING else cast(V, found)

    def get_or_make(self, key: K, make: Callable[[], V]) -> V:
        """The value of *key*, made (and kept) when missing; None values are kept too."""
        found = self._lookup(key)
        if found is not _MISSING:
            return cast(V, found)
        value = make()
        self.put(key, value)
        return value

    def put(self, key: K, value: V) -> None:
        size = self._size(value) if self._size is not None else 0
        if self.max_bytes is not None and size > self.max_bytes:
            return
        with self._lock:
            self._drop(key)
            self._entries[key] = (monotonic(), size, value)
            self.bytes += size
            while self._entries and (
                (self.max_items is not None and len(self._entries) > self.max_items)
                or (self.max_bytes is not None and self.bytes > self.max_bytes)
            ):
                self.bytes -= self._entries.popitem(last=False)[1][1]

    def pop(self, key: K) -> None:
        """Forget *key*."""
        with self._lock:
            self._drop(key)

    def discard_if(self, predicate: Callable[[K], bool]) -> None:
        """Forget every entry whose key *predicate* accepts (a scan: for rare events)."""
        with self._lock:
            for key in [k for k in self._entries if predicate(k)]:
                self._drop(key)

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._entries.clear()
            self.bytes = 0

    def _drop(self, key: K) -> None:
        previous = self._entries.pop(key, None)
        if previous is not None:
            self.bytes -= previous[1]
