"""A de-identified Part-10 file written without holding the pixels: the header is read up to
the Pixel Data element and rewritten, then that element's bytes are copied as they are."""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian

CHUNK = 1 << 20  # bytes copied at a time
PIXEL_TAGS = frozenset((0x7FE00008, 0x7FE00009, 0x7FE00010))  # Float, Double Float, Pixel Data
UNDEFINED = 0xFFFFFFFF
ITEM, SEQUENCE_END = 0xFFFEE000, 0xFFFEE0DD
LONG_VRS = frozenset((b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT"))


class Unsupported(ValueError):
    """An instance this writer cannot de-identify as a stream (deflated transfer syntax)."""


@dataclass(frozen=True)
class PixelCopy:
    """Where the Pixel Data element (tag to last byte) lies in the source file; empty when
    the instance has none. Elements after it (Data Set Trailing Padding, Digital Signatures:
    X in Table E.1-1) are not copied."""

    start: int
    end: int


def read_header(path: Path) -> tuple[Dataset, PixelCopy]:
    """The data set of *path* without its pixel data, and where the pixel data lies."""
    with open(path, "rb") as fp:
        dataset = dcmread(fp, stop_before_pixels=True)
        start = fp.tell()
        syntax = UID(dataset.file_meta.get("TransferSyntaxUID", ""))
        if syntax == DeflatedExplicitVRLittleEndian:
            raise Unsupported(f"{path.name}: deflated transfer syntax is not exported")
        end = _pixel_end(fp, start, syntax)
    return dataset, PixelCopy(start, end)


def _pixel_end(fp: BinaryIO, start: int, syntax: UID) -> int:
    """The end of the pixel data element at *start* (walking the items of encapsulated
    pixel data: PS3.5 A.4), or *start* when there is none."""
    fp.seek(start)
    head = fp.read(8)
    if len(head) < 8:
        return start
    order = ">" if syntax == "1.2.840.10008.1.2.2" else "<"  # Explicit VR Big Endian
    group, element = struct.unpack(order + "HH", head[:4])
    if (group << 16 | element) not in PIXEL_TAGS:
        return start
    if syntax == "1.2.840.10008.1.2":  # Implicit VR Little Endian
        (length,), offset = struct.unpack("<I", head[4:8]), 8
    elif head[4:6] in LONG_VRS:
        (length,), offset = struct.unpack(order + "I", fp.read(4)), 12
    else:
        (length,), offset = struct.unpack(order + "H", head[6:8]), 8
    if length != UNDEFINED:
        return start + offset + int(length)
    position = start + offset
    while True:  # items of encapsulated pixel data (always little endian)
        fp.seek(position)
        item = fp.read(8)
        if len(item) < 8:
            raise ValueError("encapsulated pixel data ends without its sequence delimiter")
        tag_group, tag_element, item_length = struct.unpack("<HHI", item)
        position += 8
        if (tag_group << 16 | tag_element) == SEQUENCE_END:
            return position
        if (tag_group << 16 | tag_element) != ITEM or item_length == UNDEFINED:
            raise ValueError("encapsulated pixel data holds something other than items")
        position += item_length


def write_deidentified(target: Path, dataset: Dataset, source: Path, pixels: PixelCopy) -> int:
    """Write *dataset* (de-identified, same transfer syntax) to *target* followed by the pixel
    data bytes of *source*, durably; returns the bytes written."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = dataset.SOPClassUID
    meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    meta.TransferSyntaxUID = dataset.file_meta.TransferSyntaxUID
    dataset.file_meta = meta
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    try:
        size = _write(partial, dataset, source, pixels)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, target)
    return size


def _write(partial: Path, dataset: Dataset, source: Path, pixels: PixelCopy) -> int:
    with open(partial, "wb") as out:
        dcmwrite(out, dataset, enforce_file_format=True)
        with open(source, "rb") as fp:
            fp.seek(pixels.start)
            remaining = pixels.end - pixels.start
            while remaining > 0:
                chunk = fp.read(min(CHUNK, remaining))
                if not chunk:
                    raise ValueError(f"{source} ended inside its pixel data")
                out.write(chunk)
                remaining -= len(chunk)
        out.flush()
        os.fsync(out.fileno())
        return out.tell()
