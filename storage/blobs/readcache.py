"""Ranged reads of remote blobs: neighbouring ranges coalesced into one request, and the
ranges read kept in a bounded in-memory cache (blobs are immutable, so nothing goes stale)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from storage.cache import Lru

Range = tuple[int, int]  # (offset, length)
RangeKey = tuple[str, int, int]  # (blob key, offset, length)
# Fetches (offset, length) spans of one blob, one request per span (run concurrently).
Fetch = Callable[[str, Sequence[Range]], Sequence[bytes | memoryview]]


@dataclass(frozen=True)
class Span:
    """One request: a byte range covering one or more of the ranges asked for."""

    offset: int
    length: int
    members: tuple[int, ...]  # indexes of the ranges it covers

    @property
    def end(self) -> int:
        return self.offset + self.length


def coalesce(ranges: Sequence[Range], gap: int) -> list[Span]:
    """The fewest spans covering *ranges* such that no span reads a hole longer than *gap*
    bytes between two of its ranges (overlapping and adjacent ranges always merge)."""
    order = sorted(range(len(ranges)), key=lambda i: ranges[i][0])
    spans: list[Span] = []
    for index in order:
        offset, length = ranges[index]
        end = offset + length
        if spans and offset - spans[-1].end <= gap:
            last = spans[-1]
            new_end = max(last.end, end)
            spans[-1] = Span(last.offset, new_end - last.offset, (*last.members, index))
        else:
            spans.append(Span(offset, length, (index,)))
    return spans


class RangeCache:
    """Ranges of blobs by (key, offset, length) in memory, bounded by bytes; misses are read
    through *fetch* in coalesced spans. ``requests`` counts the spans fetched."""

    def __init__(self, max_bytes: int, gap: int) -> None:
        self.gap = gap
        self.requests = 0
        self._lru: Lru[RangeKey, bytes] | None = (
            Lru(max_bytes=max_bytes, size=len) if max_bytes > 0 else None
        )

    @property
    def lru(self) -> Lru[RangeKey, bytes] | None:
        return self._lru

    def read(self, key: str, ranges: Sequence[Range], fetch: Fetch) -> list[bytes]:
        """The bytes of each range of blob *key*, in order: cached, or fetched together."""
        out: list[bytes | None] = [None] * len(ranges)
        missing: list[int] = []
        for index, (offset, length) in enumerate(ranges):
            found = self._lru.get((key, offset, length)) if self._lru is not None else None
            if found is None:
                missing.append(index)
            else:
                out[index] = found
        if missing:
            wanted = [ranges[i] for i in missing]
            spans = coalesce(wanted, self.gap)
            self.requests += len(spans)
            fetched = fetch(key, [(s.offset, s.length) for s in spans])
            for span, data in zip(spans, fetched, strict=True):
                view = memoryview(data)
                if len(view) != span.length:
                    raise OSError(f"blob {key} is shorter than its frame table")
                for member in span.members:
                    offset, length = wanted[member]
                    value = bytes(view[offset - span.offset : offset - span.offset + length])
                    out[missing[member]] = value
                    if self._lru is not None:
                        self._lru.put((key, offset, length), value)
        return [value for value in out if value is not None]

    def forget(self, key: str) -> None:
        """Drop every cached range of blob *key* (it was deleted)."""
        if self._lru is not None:
            self._lru.discard_if(lambda entry: entry[0] == key)
