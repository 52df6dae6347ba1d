"""The one LRU of the core: bounded by entries or by bytes, with a time to live."""

from __future__ import annotations

import threading

import pytest

from storage.cache import Lru


def test_entries_bound_drops_the_least_recently_used() -> None:
    cache: Lru[str, int] = Lru(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # a is now the most recent
    cache.put("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
    assert len(cache) == 2


def test_bytes_bound_and_values_larger_than_it() -> None:
    cache: Lru[int, bytes] = Lru(max_bytes=1000, size=len)
    for key in range(5):
        cache.put(key, bytes(300))
    assert cache.bytes == 900 and cache.get(0) is None and cache.get(1) is None
    cache.put(9, bytes(5000))
    assert cache.get(9) is None and cache.bytes <= 1000
    cache.put(2, bytes(10))  # replacing an entry counts its new size only
    assert cache.bytes == 610


def test_time_to_live(monkeypatch) -> None:
    now = [100.0]
    monkeypatch.setattr("storage.cache.monotonic", lambda: now[0])
    cache: Lru[str, str] = Lru(10, ttl=30)
    cache.put("k", "v")
    now[0] = 129.0
    assert cache.get("k") == "v"
    now[0] = 130.0
    assert cache.get("k") is None


def test_made_values_are_kept_none_included() -> None:
    made = []
    cache: Lru[str, int | None] = Lru(10)

    def make() -> int | None:
        made.append(1)
        return None

    assert cache.get_or_make("x", make) is None
    assert cache.get_or_make("x", make) is None
    assert len(made) == 1 and cache.hits == 1 and cache.misses == 1
    cache.pop("x")
    cache.get_or_make("x", make)
    assert len(made) == 2


def test_bounds_are_required_and_threads_share_it() -> None:
    with pytest.raises(ValueError):
        Lru()
    with pytest.raises(ValueError):
        Lru(max_bytes=10)
    cache: Lru[int, int] = Lru(64)

    def work(offset: int) -> None:
        for key in range(1000):
            cache.get_or_make((key + offset) % 100, lambda key=key: key)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(cache) == 64
