"""Frame table: where each frame's bytes lie inside a blob, so a frame is a ranged read."""

from __future__ import annotations

import os
import struct
from array import array
from collections.abc import Sequence
from dataclasses import dataclass

from storage.errors import InvalidInstance

_ITEM = 0xFFFEE000
_SEQUENCE_DELIMITER = 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF
_MAGIC = b"WFT1"
_HEADER = struct.Struct("<4sQQB")
_BIT_PACKED = 1

# First bytes of a frame's code stream: JPEG / JPEG-LS SOI (FFD8), JPEG 2000 SOC (FF4F).
_FRAME_START_MARKERS = (b"\xff\xd8", b"\xff\x4f")


@dataclass(frozen=True)
class FrameTable:
    """Per frame, the (offset, length) ranges of its bytes in the blob, in frame order.

    Most frames are one range. A frame split over several fragments has several. For native
    pixel data with one bit per sample whose frames do not end on a byte boundary,
    ``bit_packed`` is set and offsets and lengths count bits, not bytes.
    """

    starts: array  # len(frames) + 1 indexes into offsets/lengths
    offsets: array
    lengths: array
    bit_packed: bool = False

    def __len__(self) -> int:
        return len(self.starts) - 1

    def ranges(self, index: int) -> list[tuple[int, int]]:
        """The ranges of frame *index* (0-based)."""
        first, last = self.starts[index], self.starts[index + 1]
        return [(self.offsets[i], self.lengths[i]) for i in range(first, last)]

    def frame_length(self, index: int) -> int:
        first, last = self.starts[index], self.starts[index + 1]
        return sum(self.lengths[first:last])

    @classmethod
    def from_ranges(
        cls,
        offsets: Sequence[int],
        lengths: Sequence[int],
        groups: Sequence[int] | None = None,
        bit_packed: bool = False,
    ) -> FrameTable:
        """Build a table; *groups* gives the first range index of each frame (default: one each)."""
        starts = array("Q", range(len(offsets) + 1) if groups is None else [*groups, len(offsets)])
        return cls(starts, array("Q", offsets), array("Q", lengths), bit_packed)

    def to_bytes(self) -> bytes:
        one_each = len(self.offsets) == len(self)
        flags = _BIT_PACKED if self.bit_packed else 0
        parts = [_HEADER.pack(_MAGIC, len(self), len(self.offsets), flags)]
        if not one_each:
            parts.append(self.starts.tobytes())
        parts += [self.offsets.tobytes(), self.lengths.tobytes()]
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> FrameTable:
        magic, frames, ranges, flags = _HEADER.unpack_from(data)
        if magic != _MAGIC:
            raise ValueError("not a frame table")
        pos = _HEADER.size
        if ranges == frames:
            starts = array("Q", range(frames + 1))
        else:
            starts = array("Q")
            starts.frombytes(data[pos : pos + 8 * (frames + 1)])
            pos += 8 * (frames + 1)
        offsets, lengths = array("Q"), array("Q")
        offsets.frombytes(data[pos : pos + 8 * ranges])
        lengths.frombytes(data[pos + 8 * ranges : pos + 16 * ranges])
        return cls(starts, offsets, lengths, bool(flags & _BIT_PACKED))


def native_frames(
    value_offset: int, value_length: int, number_of_frames: int, frame_bits: int
) -> FrameTable:
    """Frames of native (uncompressed) pixel data: consecutive, each *frame_bits* long."""
    if frame_bits <= 0:
        raise InvalidInstance("Rows, Columns, Samples per Pixel or Bits Allocated is zero")
    if number_of_frames * frame_bits > value_length * 8:
        raise InvalidInstance(
            f"Pixel Data holds {value_length} bytes but {number_of_frames} frames of "
            f"{frame_bits} bits need {(number_of_frames * frame_bits + 7) // 8}"
        )
    if frame_bits % 8 == 0:
        size = frame_bits // 8
        return FrameTable.from_ranges(
            [value_offset + i * size for i in range(number_of_frames)], [size] * number_of_frames
        )
    return FrameTable.from_ranges(
        [value_offset * 8 + i * frame_bits for i in range(number_of_frames)],
        [frame_bits] * number_of_frames,
        bit_packed=True,
    )


@dataclass(frozen=True)
class Fragments:
    """Item positions of encapsulated Pixel Data, as found by scanning the blob."""

    basic_offsets: list[int]
    first_item: int  # file offset of the first item after the Basic Offset Table
    items: list[int]  # file offset of each fragment item's tag
    lengths: list[int]
    starts_frame: list[bool]  # whether a fragment begins with a code stream start marker
    end: int  # file offset just after the Sequence Delimitation Item


def scan_fragments(fd: int, start: int, file_size: int, little_endian: bool = True) -> Fragments:
    """Walk the items of encapsulated Pixel Data (PS3.5 A.4) reading only their headers.

    pydicom's ``parse_fragments`` gives item offsets but not lengths nor first bytes, and its
    frame generators read every byte; here each item costs one 10-byte pread.
    """
    header = struct.Struct("<HHI" if little_endian else ">HHI")

    def read_header(pos: int) -> tuple[int, int, bytes]:
        raw = os.pread(fd, 10, pos)
        if len(raw) < 8:
            raise InvalidInstance(f"Pixel Data is truncated at byte {pos} (no item header)")
        group, element, length = header.unpack_from(raw)
        return (group << 16) | element, length, raw[8:10]

    tag, length, _ = read_header(start)
    if tag != _ITEM or length == _UNDEFINED:
        raise InvalidInstance(
            "encapsulated Pixel Data does not start with a Basic Offset Table item"
        )
    if start + 8 + length > file_size:
        raise InvalidInstance("the Basic Offset Table runs past the end of the data")
    basic: list[int] = []
    if length:
        if length % 4:
            raise InvalidInstance("the Basic Offset Table length is not a multiple of 4")
        raw = os.pread(fd, length, start + 8)
        basic = list(struct.unpack(("<" if little_endian else ">") + f"{length // 4}I", raw))
    pos = start + 8 + length
    first_item = pos
    items: list[int] = []
    lengths: list[int] = []
    starts_frame: list[bool] = []
    while True:
        tag, length, lead = read_header(pos)
        if tag == _SEQUENCE_DELIMITER:
            return Fragments(basic, first_item, items, lengths, starts_frame, pos + 8)
        if tag != _ITEM:
            raise InvalidInstance(f"unexpected tag {tag:08X} inside encapsulated Pixel Data")
        if length == _UNDEFINED or pos + 8 + length > file_size:
            raise InvalidInstance(
                f"Pixel Data fragment {len(items) + 1} runs past the end of the data (truncated)"
            )
        items.append(pos)
        lengths.append(length)
        starts_frame.append(lead in _FRAME_START_MARKERS)
        pos += 8 + length


def encapsulated_frames(
    fragments: Fragments,
    number_of_frames: int,
    extended_offsets: Sequence[int] | None = None,
    extended_lengths: Sequence[int] | None = None,
) -> FrameTable:
    """Group fragments into frames (PS3.5 A.4): Extended Offset Table, Basic Offset Table,
    one fragment per frame, or code-stream start markers, in that order of trust."""
    n = len(fragments.items)
    values = [item + 8 for item in fragments.items]
    index_of_item = {item - fragments.first_item: i for i, item in enumerate(fragments.items)}
    if n == 0:
        raise InvalidInstance("encapsulated Pixel Data holds no fragments")

    if (
        extended_offsets is not None
        and extended_lengths is not None
        and len(extended_offsets) == len(extended_lengths) == number_of_frames
    ):
        groups = _items_at(index_of_item, extended_offsets)
        if groups is not None and all(
            fragments.lengths[g] >= size for g, size in zip(groups, extended_lengths, strict=True)
        ):
            return FrameTable.from_ranges([values[g] for g in groups], list(extended_lengths))

    if len(fragments.basic_offsets) == number_of_frames:
        groups = _items_at(index_of_item, fragments.basic_offsets)
        if groups is not None and groups == sorted(groups) and groups[0] == 0:
            return FrameTable.from_ranges(values, fragments.lengths, groups)

    if n == number_of_frames:
        return FrameTable.from_ranges(values, fragments.lengths)
    if number_of_frames == 1:
        return FrameTable.from_ranges(values, fragments.lengths, [0])
    if n > number_of_frames:
        groups = [i for i, starts in enumerate(fragments.starts_frame) if starts]
        if len(groups) == number_of_frames and groups[0] == 0:
            return FrameTable.from_ranges(values, fragments.lengths, groups)
        raise InvalidInstance(
            f"cannot tell which of the {n} Pixel Data fragments belong to which of the "
            f"{number_of_frames} frames (no usable offset table)"
        )
    raise InvalidInstance(
        f"Pixel Data holds {n} fragments but Number of Frames is {number_of_frames}"
    )


def _items_at(index_of_item: dict[int, int], offsets: Sequence[int]) -> list[int] | None:
    """The fragment index at each offset (from the first item), None unless all are items."""
    found = [index_of_item.get(offset) for offset in offsets]
    return [index for index in found if index is not None] if None not in found else None
