"""Reading what is stored: frames by ranged reads, bulk data by tag path, blobs in chunks."""

from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from threading import Lock
from time import monotonic
from typing import TypeVar

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from storage.blobstore import BlobStore
from storage.errors import InvalidRequest, NotFound
from storage.frames import FrameTable
from storage.index import StoredRecord, StudyIndex
from storage.part10 import PIXEL_TAGS

CHUNK = 1 << 20
T = TypeVar("T")


class LruCache:
    """A thread-safe least-recently-used map that makes missing values with a function."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[Hashable, object] = OrderedDict()
        self._lock = Lock()

    def get(self, key: Hashable, make: Callable[[], T]) -> T:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]  # type: ignore[return-value]
        value = make()
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return value


class FrameTableCache:
    """A small LRU of decoded frame tables, so a busy slide costs no index read per tile."""

    def __init__(self, index: StudyIndex, capacity: int = 256) -> None:
        self.index = index
        self._tables = LruCache(capacity)

    def get(self, record: StoredRecord) -> FrameTable | None:
        def load() -> FrameTable | None:
            data = self.index.frame_ranges(record.pk)
            return FrameTable.from_bytes(data) if data is not None else None

        return self._tables.get((record.pk, record.blob_key), load)


class InstanceCache:
    """Records of recently read instances by their UIDs, so that a viewer's tile requests cost
    no index query.

    A blob is never rewritten: storing an instance again writes a new blob under a new key and
    deletes the old one once the index points elsewhere, and deleting an instance deletes its
    blob. A stale entry therefore shows itself by its blob being gone (NotFound from the blob
    store): the caller then calls ``fresh`` and tries once more. Entries also expire after
    *ttl* seconds, which bounds how long a record can outlive a change of its attributes.
    """

    def __init__(self, lookup, capacity: int = 4096, ttl: float = 30.0) -> None:  # type: ignore[no-untyped-def]
        self._lookup = lookup  # (study, series, instance) -> list[StoredRecord]
        self.capacity = capacity
        self.ttl = ttl
        self._records: OrderedDict[tuple[str, str, str], tuple[float, StoredRecord]] = OrderedDict()
        self._lock = Lock()

    def get(self, study: str, series: str, instance: str) -> StoredRecord:
        key = (study, series, instance)
        now = monotonic()
        with self._lock:
            entry = self._records.get(key)
            if entry is not None and now - entry[0] < self.ttl:
                self._records.move_to_end(key)
                return entry[1]
        return self.fresh(study, series, instance)

    def fresh(self, study: str, series: str, instance: str) -> StoredRecord:
        """The record as the index has it now (raises NotFound), cached again."""
        key = (study, series, instance)
        with self._lock:
            self._records.pop(key, None)
        record = self._lookup(study, series, instance)[0]
        with self._lock:
            self._records[key] = (monotonic(), record)
            while len(self._records) > self.capacity:
                self._records.popitem(last=False)
        return record


@dataclass(frozen=True)
class FrameReader:
    """Frames of one stored instance."""

    blobs: BlobStore
    record: StoredRecord
    table: FrameTable | None

    def __len__(self) -> int:
        return self.record.number_of_frames

    def check(self, numbers: Sequence[int]) -> None:
        """Raise NotFound unless every 1-based frame number exists."""
        if self.record.number_of_frames == 0:
            raise NotFound(f"instance {self.record.instance} has no frames")
        for number in numbers:
            if not 1 <= number <= self.record.number_of_frames:
                raise NotFound(
                    f"instance {self.record.instance} has no frame {number} "
                    f"(it has {self.record.number_of_frames})"
                )

    def length(self, number: int) -> int | None:
        """The byte length of frame *number* when known without reading it."""
        if self.table is None or self.table.bit_packed:
            return None
        return self.table.frame_length(number - 1)

    def read(self, number: int) -> bytes:
        """The bytes of frame *number* (1-based): one pread per fragment of the frame."""
        if self.table is None:
            return self._read_from_dataset(number)
        ranges = self.table.ranges(number - 1)
        if self.table.bit_packed:
            return self._read_bits(ranges[0])
        if len(ranges) == 1:
            return next(self.blobs.read_ranges(self.record.blob_key, ranges))
        return b"".join(self.blobs.read_ranges(self.record.blob_key, ranges))

    def _read_bits(self, bit_range: tuple[int, int]) -> bytes:
        """A frame of 1-bit pixels that starts inside a byte: shift it to a byte boundary."""
        start, bits = bit_range
        first = start // 8
        last = (start + bits + 7) // 8
        raw = next(self.blobs.read_ranges(self.record.blob_key, [(first, last - first)]))
        unpacked = np.unpackbits(np.frombuffer(raw, np.uint8), bitorder="little")
        shift = start - first * 8
        return np.packbits(unpacked[shift : shift + bits], bitorder="little").tobytes()

    def _read_from_dataset(self, number: int) -> bytes:
        """Deflated data sets have no byte offsets: inflate and slice (small objects only)."""
        with self.blobs.open(self.record.blob_key) as fp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = pydicom.dcmread(fp)
        for tag in PIXEL_TAGS:
            if tag in dataset:
                data = dataset[tag].value
                break
        else:
            raise NotFound(f"instance {self.record.instance} has no pixel data")
        size = len(data) // max(self.record.number_of_frames, 1)
        return data[(number - 1) * size : number * size]


def blob_chunks(blobs: BlobStore, key: str, chunk: int = CHUNK) -> Iterator[bytes]:
    """The whole blob, in chunks (never all in memory)."""
    with blobs.open(key) as fp:
        while data := fp.read(chunk):
            yield data


def parse_tag_path(path: str) -> list[int | str]:
    """``00480105/0/00282000`` → [0x00480105, 0, 0x00282000]; raise InvalidRequest-like 400s."""
    parts = path.strip("/").split("/")
    steps: list[int | str] = []
    for position, part in enumerate(parts):
        if position % 2 == 0:
            if len(part) != 8:
                raise InvalidRequest(f"bulk data path {path!r} is malformed")
            try:
                steps.append(int(part, 16))
            except ValueError as exc:
                raise InvalidRequest(f"bulk data path {path!r} is malformed") from exc
        else:
            if not part.isdigit():
                raise InvalidRequest(f"bulk data path {path!r} is malformed")
            steps.append(part)
    return steps


def header_element(blobs: BlobStore, key: str, steps: list[int | str]) -> tuple[str, bytes]:
    """The VR and raw value of a non-pixel element, read from the blob's header."""
    with blobs.open(key) as fp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset: Dataset = pydicom.dcmread(fp, stop_before_pixels=True)
    current: Dataset = dataset
    for position, step in enumerate(steps):
        if isinstance(step, str):
            continue
        if step not in current:
            raise NotFound("no such bulk data")
        element = current[step]
        if position == len(steps) - 1:
            value = element.value
            if isinstance(value, str):
                value = value.encode("utf-8")
            if not isinstance(value, bytes | bytearray):
                raise NotFound("no such bulk data")
            return element.VR, bytes(value)
        item_number = int(steps[position + 1])  # type: ignore[arg-type]
        if element.VR != "SQ" or item_number >= len(element.value):
            raise NotFound("no such bulk data")
        current = element.value[item_number]
    raise NotFound("no such bulk data")
