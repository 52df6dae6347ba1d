"""Coalescing of neighbouring ranges into spans, and the bounded cache of ranged reads."""

from __future__ import annotations

import os
from collections.abc import Sequence

from storage.blobs.readcache import RangeCache, coalesce

BLOB = os.urandom(1 << 16)


class Counting:
    """A fetch over BLOB that records the spans it was asked for."""

    def __init__(self) -> None:
        self.calls: list[list[tuple[int, int]]] = []

    def __call__(self, key: str, spans: Sequence[tuple[int, int]]) -> list[bytes]:
        self.calls.append(list(spans))
        return [BLOB[offset : offset + length] for offset, length in spans]


def test_ranges_closer_than_the_gap_merge_and_farther_ones_do_not() -> None:
    spans = coalesce([(0, 10), (15, 5), (100, 10), (40, 10)], gap=20)
    # holes of 5 and 20 bytes are read through; 50 bytes is a second request
    assert [(s.offset, s.length, s.members) for s in spans] == [
        (0, 50, (0, 1, 3)),
        (100, 10, (2,)),
    ]


def test_the_gap_is_the_largest_hole_read() -> None:
    ranges = [(0, 10), (30, 10)]  # a 20-byte hole
    assert len(coalesce(ranges, gap=19)) == 2
    assert [(s.offset, s.length) for s in coalesce(ranges, gap=20)] == [(0, 40)]


def test_overlapping_and_unordered_ranges_are_each_served() -> None:
    cache = RangeCache(0, gap=0)
    fetch = Counting()
    ranges = [(500, 100), (0, 50), (520, 10), (50, 10)]
    assert cache.read("k", ranges, fetch) == [BLOB[o : o + n] for o, n in ranges]
    assert fetch.calls == [[(0, 60), (500, 100)]]  # adjacent and overlapping ranges merged


def test_neighbouring_tiles_asked_together_cost_one_request() -> None:
    tiles = [(1000 + i * 2000, 1990) for i in range(8)]  # 10-byte item headers between them
    fetch = Counting()
    cache = RangeCache(1 << 20, gap=64 << 10)
    assert cache.read("k", tiles, fetch) == [BLOB[o : o + n] for o, n in tiles]
    assert cache.requests == 1 and len(fetch.calls[0]) == 1


def test_cached_ranges_are_not_fetched_again_and_misses_are() -> None:
    fetch = Counting()
    cache = RangeCache(1 << 20, gap=0)
    cache.read("k", [(0, 100), (1000, 100)], fetch)
    assert cache.read("k", [(0, 100), (5000, 10), (1000, 100)], fetch) == [
        BLOB[0:100],
        BLOB[5000:5010],
        BLOB[1000:1100],
    ]
    assert fetch.calls[1] == [(5000, 10)]  # only the miss


def test_the_cache_is_bounded_by_bytes_and_forgets_a_deleted_blob() -> None:
    fetch = Counting()
    cache = RangeCache(1000, gap=0)
    for i in range(20):
        cache.read("k", [(i * 100, 100)], fetch)
    assert cache.lru is not None and cache.lru.bytes <= 1000
    cache.read("other", [(0, 100)], fetch)
    cache.forget("k")
    assert all(key[0] == "other" for key in cache.lru._entries)
    before = len(fetch.calls)
    cache.read("other", [(0, 100)], fetch)
    assert len(fetch.calls) == before


def test_a_short_answer_is_an_error_not_short_bytes() -> None:
    cache = RangeCache(1 << 20, gap=0)
    try:
        cache.read("k", [(len(BLOB) - 10, 20)], lambda key, spans: [BLOB[-10:]])
    except OSError:
        pass
    else:
        raise AssertionError("a range past the blob's end was served short")
    assert cache.lru is not None and len(cache.lru) == 0
