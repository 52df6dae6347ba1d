"""Where a bulk data element's value lies in a stored Part-10 blob, found by walking element
headers and seeking over values (never reading them), so that a large value (the Point
Coordinates Data of a bulk annotation, PS3.3 C.37.1.2) is served by ranged reads."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO

from pydicom.datadict import dictionary_VR

from storage.errors import NotFound

ITEM = 0xFFFEE000
ITEM_END = 0xFFFEE00D
SEQUENCE_END = 0xFFFEE0DD
UNDEFINED = 0xFFFFFFFF
# Explicit VRs whose length is 4 bytes after 2 reserved ones (PS3.5 Table 7.1-1).
_LONG = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
_HEADER_OF_PART10 = 132  # preamble and "DICM"


@dataclass(frozen=True)
class BulkLocation:
    """The value of one element: its VR and (offset, length) in the blob."""

    vr: str
    offset: int
    length: int


class _Walker:
    """Element headers of one data set encoding (PS3.5 §7.1), read from a seekable file."""

    def __init__(self, fp: BinaryIO, implicit: bool) -> None:
        self.fp = fp
        self.implicit = implicit

    def _read(self, length: int) -> bytes:
        data = self.fp.read(length)
        if len(data) != length:
            raise NotFound("no such bulk data (the stored object ends early)")
        return data

    def header(self, implicit: bool) -> tuple[int, str | None, int]:
        """Tag, VR (None where implicit) and value length of the element at the position."""
        group, element = struct.unpack("<HH", self._read(4))
        tag = (group << 16) | element
        if group == 0xFFFE or implicit:
            (length,) = struct.unpack("<I", self._read(4))
            return tag, None, length
        vr = self._read(2)
        if vr in _LONG:
            (length,) = struct.unpack("<2xI", self._read(6))
        else:
            (length,) = struct.unpack("<H", self._read(2))
        return tag, vr.decode("ascii", "replace"), length

    def skip_value(self, tag: int, vr: str | None, length: int) -> None:
        """Move past a value; an undefined length is a sequence or encapsulated data, walked
        to its delimiter."""
        if length != UNDEFINED:
            self.fp.seek(length, 1)
            return
        while True:
            item, _, item_length = self.header(True)
            if item == SEQUENCE_END:
                return
            if item != ITEM:
                raise NotFound("no such bulk data (malformed sequence)")
            if item_length == UNDEFINED:
                self.skip_item()
            else:
                self.fp.seek(item_length, 1)

    def skip_item(self) -> None:
        """Move past the elements of an undefined-length item, to its delimiter."""
        while True:
            tag, vr, length = self.header(self.implicit)
            if tag == ITEM_END:
                return
            self.skip_value(tag, vr, length)

    def find(self, target: int, end: int | None) -> tuple[str | None, int]:
        """Advance to *target* in the current data set (ending at byte *end*, or at an item
        delimiter when None); returns its VR and length, the file at its value."""
        while end is None or self.fp.tell() < end:
            tag, vr, length = self.header(self.implicit)
            if tag == ITEM_END and end is None:
                break
            if tag == target:
                return vr, length
            if tag > target and tag >> 16 != 0xFFFE:
                break  # elements are in ascending order (PS3.5 §7.1)
            self.skip_value(tag, vr, length)
        raise NotFound("no such bulk data")

    def item(self, number: int, length: int) -> int | None:
        """Enter item *number* of the sequence at the position; returns its end (None for an
        undefined length)."""
        start = self.fp.tell()
        index = 0
        while length == UNDEFINED or self.fp.tell() < start + length:
            tag, _, item_length = self.header(True)
            if tag == SEQUENCE_END:
                break
            if tag != ITEM:
                raise NotFound("no such bulk data (malformed sequence)")
            if index == number:
                return None if item_length == UNDEFINED else self.fp.tell() + item_length
            if item_length == UNDEFINED:
                self.skip_item()
            else:
                self.fp.seek(item_length, 1)
            index += 1
        raise NotFound("no such bulk data")


def little_endian(transfer_syntax: str) -> bool | None:
    """Whether the data set is implicit VR (True), explicit VR (False), both little endian;
    None for encodings whose values are not bytes as sent (big endian, deflated)."""
    if transfer_syntax == "1.2.840.10008.1.2":
        return True
    if transfer_syntax in ("1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"):
        return None
    return False


def locate(fp: BinaryIO, steps: list[int | str], transfer_syntax: str) -> BulkLocation | None:
    """The location of the value *steps* (tag, item number, tag, ...) names in the Part-10
    file *fp*; None when the encoding needs the value decoded (then read it another way)."""
    implicit = little_endian(transfer_syntax)
    if implicit is None:
        return None
    fp.seek(_HEADER_OF_PART10)
    meta = _Walker(fp, False)
    # File Meta Information: explicit VR little endian, group 0002 (PS3.10 §7.1).
    while True:
        position = fp.tell()
        tag, vr, length = meta.header(False)
        if tag >> 16 != 0x0002:
            fp.seek(position)
            break
        meta.skip_value(tag, vr, length)
    walker = _Walker(fp, implicit)
    end: int | None = None  # the top level ends with the file
    for position, step in enumerate(steps):
        if isinstance(step, str):
            continue
        vr, length = walker.find(step, end)
        if position == len(steps) - 1:
            if length == UNDEFINED:
                return None  # encapsulated: not a plain value
            if vr is None:
                vr = _implicit_vr(step)
            return BulkLocation(vr, fp.tell(), length)
        end = walker.item(int(steps[position + 1]), length)
    return None


def _implicit_vr(tag: int) -> str:
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        return "UN"
    return vr.split(" or ")[0] if vr else "UN"
