"""Reading a DICOM Part-10 file's header and locating its pixel data without loading it."""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

import pydicom
from pydicom.dataelem import RawDataElement
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


@dataclass(frozen=True)
class DeflatedPixels:
    """The pixel data of a Deflated Explicit VR Little Endian data set (PS3.5 A.5): the
    whole data set is one deflate stream, so its frames have no file offsets and are read by
    inflating the blob (storage.retrieve.frames)."""

    tag: int
    vr: str
    frames: int


@dataclass
class ParsedInstance:
    """What the archive learns from one Part-10 file before storing it."""

    dataset: Dataset  # everything but the pixel data (trailing elements included)
    transfer_syntax: str
    size: int
    pixel: PixelLocation | None
    frames: FrameTable | None
    deflated: DeflatedPixels | None = None

    @property
    def number_of_frames(self) -> int:
        if self.deflated is not None:
            return self.deflated.frames
        return len(self.frames) if self.frames is not None else 0

    @property
    def pixel_element(self) -> tuple[int, str] | None:
        """Tag and VR of the pixel data element, if there is one."""
        if self.deflated is not None:
            return self.deflated.tag, self.deflated.vr
        return (self.pixel.tag, self.pixel.vr) if self.pixel is not None else None


class _Truncated(Exception):
    """A read ran past the end of the file (not an EOFError: pydicom takes those for the end
    of the data set and keeps what it read so far)."""


class _StrictFile:
    """A file whose short reads are errors. pydicom reads a value of a length beyond the end
    of the file as the bytes that are there, and a cut element header as the end of the data
    set: a lying or truncated object would be stored as a shorter, different one."""

    def __init__(self, fp: BinaryIO, size: int) -> None:
        self._fp = fp
        self._size = size

    def read(self, length: int | None = -1) -> bytes:
        data = self._fp.read(-1 if length is None else length)
        # Reading nothing exactly at the end is how pydicom finds the last element (an 8-byte
        # element header, or its 1-byte peek); any other short read is truncation. A value
        # of those lengths that is missing is caught by _check_lengths.
        at_end = not data and length in (1, 8) and self._fp.tell() == self._size
        if length is not None and length > 0 and len(data) < length and not at_end:
            raise _Truncated(
                f"{length} bytes were to be read at byte {self._fp.tell() - len(data)} "
                f"but the data ends at byte {self._size}"
            )
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fp, name)


def _check_lengths(dataset: Dataset) -> None:
    """Refuse an element whose value is shorter than its declared length (cut at the end)."""
    for element in dataset._dict.values():
        if isinstance(element, RawDataElement):
            value, length = element.value, element.length
            if value is not None and length != _UNDEFINED and len(value) != length:
                raise _Truncated(
                    f"element ({element.tag.group:04X},{element.tag.element:04X}) declares "
                    f"{length} bytes but the data ends after {len(value)}"
                )
        elif element.VR == "SQ" and isinstance(element.value, list):
            for item in element.value:
                if isinstance(item, Dataset):
                    _check_lengths(item)


def _image_without_pixels(dataset: Dataset) -> bool:
    """The Image Pixel Module is there (Rows, Columns, Bits Allocated) but no pixel data
    element nor a Pixel Data Provider URL (PS3.3 C.7.6.3: Pixel Data is then Type 1): a
    header cut short exactly at an element boundary."""
    module = all(keyword in dataset for keyword in ("Rows", "Columns", "BitsAllocated"))
    return module and "PixelDataProviderURL" not in dataset


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
        with open(path, "rb") as raw, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fp = cast(BinaryIO, _StrictFile(raw, size))
            dataset = pydicom.dcmread(fp, stop_before_pixels=True)
            _check_lengths(dataset)
            transfer_syntax = _transfer_syntax(dataset)
            if transfer_syntax == DeflatedExplicitVRLittleEndian:
                return _deflated(path, dataset, transfer_syntax, size)
            implicit = transfer_syntax.is_implicit_VR
            little = transfer_syntax.is_little_endian
            header_end = fp.tell()
            try:
                pixel = _locate_pixel_data(fp, header_end, size, implicit, little)
                if pixel is None and _image_without_pixels(dataset):
                    raise InvalidInstance(
                        "the instance has Rows, Columns and Bits Allocated but no Pixel Data "
                        f"(the data ends at byte {size}: truncated?)"
                    )
                frames, end = _frame_table(
                    dataset, transfer_syntax, pixel, raw.fileno(), size, little
                )
                if pixel is not None and end < size:
                    # Elements after the pixel data (e.g. Data Set Trailing Padding) belong
                    # to the metadata too.
                    fp.seek(end)
                    trailing = read_dataset(fp, implicit, little)
                    _check_lengths(trailing)
                    for element in trailing:
                        if element.tag not in PIXEL_TAGS:
                            dataset.add(element)
            except InvalidInstance as exc:
                exc.sop_class, exc.sop_instance = named_uids(dataset)
                raise
            except _Truncated as exc:
                error = _truncated(exc)
                error.sop_class, error.sop_instance = named_uids(dataset)
                raise error from exc
    except InvalidInstance:
        raise
    except _Truncated as exc:
        raise _truncated(exc) from exc
    except InvalidDicomError as exc:
        raise InvalidInstance(f"not a DICOM Part-10 file: {exc}") from exc
    except (EOFError, struct.error) as exc:
        raise InvalidInstance(f"the DICOM data is truncated: {exc}") from exc
    except DECODE_ERRORS as exc:
        raise InvalidInstance(f"the DICOM data cannot be read: {exc}") from exc
    except (OSError, zlib.error) as exc:
        raise InvalidInstance(f"the DICOM data cannot be read: {exc}") from exc
    return ParsedInstance(dataset, transfer_syntax, size, pixel, frames)


def _deflated(path: Path, header: Dataset, transfer_syntax: UID, size: int) -> ParsedInstance:
    """A deflated data set is stored byte for byte (PS3.5 A.5 keeps File Meta Information
    uncompressed, the data set after it is deflated): it is inflated once here to check its
    pixel data holds the frames it declares."""
    with open(path, "rb") as fp:
        whole = read_whole(fp)
    _check_lengths(whole)
    for tag in PIXEL_TAGS:
        if tag in whole:
            element = whole[tag]
            value = element.value
            break
    else:
        if _image_without_pixels(whole):
            raise InvalidInstance("the deflated data set has Rows and Columns but no Pixel Data")
        return ParsedInstance(header, transfer_syntax, size, None, None)
    if not isinstance(value, bytes | bytearray):
        raise InvalidInstance(f"{PIXEL_TAGS[tag]} of the deflated data set cannot be read")
    frames = _number_of_frames(whole)
    bits = _frame_bits(whole, tag)
    native_frames(0, len(value), frames, bits)  # raises when the frames do not fit
    del whole[tag]
    return ParsedInstance(
        whole, transfer_syntax, size, None, None, DeflatedPixels(tag, str(element.VR), frames)
    )


def _frame_bits(dataset: Dataset, tag: int) -> int:
    """Bits in one native frame."""
    rows, columns = _int(dataset, "Rows"), _int(dataset, "Columns")
    samples = _int(dataset, "SamplesPerPixel", 1)
    bits = {0x7FE00008: 32, 0x7FE00009: 64}.get(tag) or _int(dataset, "BitsAllocated")
    return rows * columns * samples * bits


def _truncated(exc: Exception) -> InvalidInstance:
    return InvalidInstance(f"the DICOM data is truncated or declares a wrong length: {exc}")


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
    table = native_frames(
        pixel.value_offset, pixel.value_length, frames, _frame_bits(dataset, pixel.tag)
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
