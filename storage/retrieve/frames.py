"""Frames of one stored instance: one ranged read per fragment, located by the frame table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from storage.blobs import BlobStore
from storage.dicom.frames import FrameTable
from storage.dicom.part10 import PIXEL_TAGS, read_whole
from storage.errors import NotFound
from storage.records import StoredRecord


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

    def prefetch(self, numbers: Sequence[int]) -> None:
        """Tell the store which frames are about to be read (it may fetch them together)."""
        if self.table is None or self.table.bit_packed or len(numbers) < 2:
            return
        ranges = [r for number in numbers for r in self.table.ranges(number - 1)]
        self.blobs.prefetch(self.record.blob_key, ranges)

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
        with self.blobs.open(self.record.blob_key) as fp:
            dataset = read_whole(fp)
        for tag in PIXEL_TAGS:
            if tag in dataset:
                data = dataset[tag].value
                break
        else:
            raise NotFound(f"instance {self.record.instance} has no pixel data")
        size = len(data) // max(self.record.number_of_frames, 1)
        return bytes(data[(number - 1) * size : number * size])
