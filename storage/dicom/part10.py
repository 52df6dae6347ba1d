"""Reading a DICOM Part-10 file's header and locating its pixel data without loading it."""

from __future__ import annotations

import os
import struct
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import BytesLengthException, InvalidDicomError
from pydicom.filereader import read_dataset
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian

from storage.dicom.dataset import named_uids
from storage.dicom.frames import FrameTable, encapsulated_frames, native_frames, scan_fragments
from storage.errors import InvalidInstance, UnsupportedTransferSyntax

PIXEL_TAGS = {
    0x7FE00010: "PixelData",
    0x7FE00008: "FloatPixelData",
    0x7FE00009: "DoubleFloatPixelData",
}
_LONG_LENGTH_VRS = {
    b"OB",
    b"OD",
    b"OF",
    b"OL",
    b"OV",
    b"OW",
    b"SQ",
    b"SV",
    b"UC",
    b"UN",
    b"UR",
    b"UT",
    b"UV",
}
_UNDEFINED = 0xFFFFFFFF


PREAMBLE = b"\0" * 128 + b"DICM"


def lacks_preamble(head: bytes) -> bool:
    """True when *head* (the first bytes of an object) starts with File Meta Information
    (group 0002, explicit VR little endian) instead of the 128-byte preamble and 'DICM'.
    pydicom, and so dicomweb-client, write such objects; the archive adds the preamble."""
    return head[128:132] != b"DICM" and head[:2] == b"\x02\x00" and head[4:6].isalpha()


class Part10Writer:
    """Passes bytes to *write*, first adding the preamble if the object lacks one."""

    def __init__(self, write: Callable[[bytes | bytearray | memoryview], None]) -> None:
        self._write = write
        self._head = bytearray()
        self._decided = False

    def __call__(self, data: bytes | bytearray | memoryview) -> None:
        if self._decided:
            self._write(data)
            return
        self._head += data
        if len(self._head) >= 132:
            self._flush()

    def close(self) -> None:
        """Call when the object ends (short objects are decided here)."""
        if not self._decided:
            self._flush()

    def _flush(self) -> None:
        self._decided = True
        if lacks_preamble(bytes(self._head[:132])):
            self._write(PREAMBLE)
        if self._head:
            self._write(self._head)
        self._head = bytearray()


@dataclass(frozen=True)
class PixelLocation:
    """Where the pixel data element sits in the file."""

    tag: int
    vr: str
    element_offset: int
    value_offset: int
    value_length: int | None  # None when encapsulated (undefined length)


@dataclass
class ParsedInstance:
    """What the archive learns from one Part-10 file before storing it."""

    dataset: Dataset  # everything but the pixel data (trailing elements included)
    transfer_syntax: str
    size: int
    pixel: PixelLocation | None
    frames: FrameTable | None

    @property
    def number_of_frames(self) -> int:
        return len(self.frames) if self.frames is not None else 0


# What pydicom raises on data it cannot decode: elements are converted lazily, so these can
# come from any first use of a parsed data set, not only from reading it.
DECODE_ERRORS: tuple[type[Exception], ...] = (
    ValueError,
    KeyError,
    TypeError,
    IndexError,
    OverflowError,
    NotImplementedError,
    EOFError,
    struct.error,
    BytesLengthException,
)


def read_part10(path: Path) -> ParsedInstance:
    """Parse the header of *path*, locate and scan its pixel data; raise InvalidInstance."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as fp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = pydicom.dcmread(fp, stop_before_pixels=True)
            transfer_syntax = _transfer_syntax(dataset)
            if transfer_syntax == DeflatedExplicitVRLittleEndian:
                # The whole data set is deflated: there are no file offsets to record.
                return ParsedInstance(dataset, transfer_syntax, size, None, None)
            implicit = transfer_syntax.is_implicit_VR
            little = transfer_syntax.is_little_endian
            header_end = fp.tell()
            try:
                pixel = _locate_pixel_data(fp, header_end, size, implicit, little)
                frames, end = _frame_table(
                    dataset, transfer_syntax, pixel, fp.fileno(), size, little
                )
            except InvalidInstance as exc:
                exc.sop_class, exc.sop_instance = named_uids(dataset)
                raise
            if pixel is not None and end < size:
                # Elements after the pixel data (e.g. Data Set Trailing Padding) belong to the
                # metadata too.
                fp.seek(end)
                trailing = read_dataset(fp, implicit, little)
                for element in trailing:
                    if element.tag not in PIXEL_TAGS:
                        dataset.add(element)
    except InvalidInstance:
        raise
    except InvalidDicomError as exc:
        raise InvalidInstance(f"not a DICOM Part-10 file: {exc}") from exc
    except (EOFError, struct.error) as exc:
        raise InvalidInstance(f"the DICOM data is truncated: {exc}") from exc
    except DECODE_ERRORS as exc:
        raise InvalidInstance(f"the DICOM data cannot be read: {exc}") from exc
    except OSError as exc:
        raise InvalidInstance(f"the DICOM data cannot be read: {exc}") from exc
    return ParsedInstance(dataset, transfer_syntax, size, pixel, frames)


def _transfer_syntax(dataset: Dataset) -> UID:
    meta = getattr(dataset, "file_meta", None)
    uid = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
    if not uid:
        raise InvalidInstance("the File Meta Information has no Transfer Syntax UID (0002,0010)")
    uid = UID(str(uid).strip("\0 "))
    if not uid.is_transfer_syntax:
        raise UnsupportedTransferSyntax(
            f"Transfer Syntax UID {uid} is not a transfer syntax this archive knows"
        )
    return uid


def _locate_pixel_data(
    fp: BinaryIO, pos: int, size: int, implicit: bool, little: bool
) -> PixelLocation | None:
    """Read the element header at *pos* (where pydicom stopped) if it is a pixel data element."""
    if pos + 8 > size:
        return None
    head = os.pread(fp.fileno(), 12, pos)
    endian = "<" if little else ">"
    group, element = struct.unpack_from(endian + "HH", head)
    tag = (group << 16) | element
    if tag not in PIXEL_TAGS:
        return None
    if implicit:
        (length,) = struct.unpack_from(endian + "I", head, 4)
        vr, header = ("OW" if tag == 0x7FE00010 else "OF"), 8
    else:
        raw_vr = head[4:6]
        if raw_vr in _LONG_LENGTH_VRS:
            (length,) = struct.unpack_from(endian + "I", head, 8)
            header = 12
        else:
            (length,) = struct.unpack_from(endian + "H", head, 6)
            header = 8
        vr = raw_vr.decode("ascii", "replace")
    value_offset = pos + header
    if length == _UNDEFINED:
        return PixelLocation(tag, vr, pos, value_offset, None)
    if value_offset + length > size:
        raise InvalidInstance(
            f"Pixel Data declares {length} bytes but only {size - value_offset} follow (truncated)"
        )
    return PixelLocation(tag, vr, pos, value_offset, length)


def _frame_table(
    dataset: Dataset,
    transfer_syntax: UID,
    pixel: PixelLocation | None,
    fd: int,
    size: int,
    little: bool,
) -> tuple[FrameTable | None, int]:
    """The frame table of the pixel data and the file offset just after it."""
    if pixel is None:
        return None, size
    frames = _number_of_frames(dataset)
    if pixel.value_length is None:
        fragments = scan_fragments(fd, pixel.value_offset, size, little)
        eot = dataset.get("ExtendedOffsetTable")
        eot_lengths = dataset.get("ExtendedOffsetTableLengths")
        offsets = lengths = None
        if eot and eot_lengths:
            offsets = struct.unpack(f"<{len(eot) // 8}Q", eot)
            lengths = struct.unpack(f"<{len(eot_lengths) // 8}Q", eot_lengths)
        return encapsulated_frames(fragments, frames, offsets, lengths), fragments.end
    if transfer_syntax.is_compressed:
        raise InvalidInstance(
            f"Pixel Data has a defined length but Transfer Syntax {transfer_syntax} is encapsulated"
        )
    rows, columns = _int(dataset, "Rows"), _int(dataset, "Columns")
    samples = _int(dataset, "SamplesPerPixel", 1)
    if pixel.tag == 0x7FE00010:
        bits = _int(dataset, "BitsAllocated")
    else:
        bits = 32 if pixel.tag == 0x7FE00008 else 64
    table = native_frames(
        pixel.value_offset, pixel.value_length, frames, rows * columns * samples * bits
    )
    return table, pixel.value_offset + pixel.value_length


def _number_of_frames(dataset: Dataset) -> int:
    value = dataset.get("NumberOfFrames")
    if value in (None, ""):
        return 1
    try:
        frames = int(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInstance(f"Number of Frames {value!r} is not an integer") from exc
    if frames < 1:
        raise InvalidInstance(f"Number of Frames is {frames}")
    return frames


def _int(dataset: Dataset, keyword: str, default: int | None = None) -> int:
    value = dataset.get(keyword, default)
    if value is None or value == "":
        raise InvalidInstance(f"{keyword} is missing, but the instance has native Pixel Data")
    return int(value)


def read_header(fp: BinaryIO) -> Dataset:
    """The data set of an open Part-10 file up to its pixel data (pydicom's warnings about
    real-world VR violations silenced: stored objects were accepted as they are)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(fp, stop_before_pixels=True)


def read_whole(fp: BinaryIO) -> Dataset:
    """The whole data set of an open Part-10 file, pixel data included (small objects only)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(fp)
