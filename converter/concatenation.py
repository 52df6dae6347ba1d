"""Splitting a large instance into a concatenation (PS3.3 C.7.6.16.2.2.4-ish: Concatenation
UID, In-concatenation Number, Concatenation Frame Offset Number), copying frame bytes as they are.
"""

from __future__ import annotations

import copy
import os
import struct
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.filewriter import dcmwrite
from pydicom.uid import generate_uid

from storage.dicom.frames import FrameTable
from storage.dicom.part10 import read_part10

_ITEM = struct.Struct("<HHI")


def split_large_instances(files: list[Path], max_bytes: int) -> list[Path]:
    """Replace every encapsulated instance larger than *max_bytes* by concatenation parts
    (no splitting when *max_bytes* is 0)."""
    if max_bytes <= 0:
        return files
    out: list[Path] = []
    for file in files:
        if file.stat().st_size <= max_bytes:
            out.append(file)
            continue
        parts = split(file, max_bytes)
        if parts:
            file.unlink()
            out += parts
        else:
            out.append(file)
    return out


def split(file: Path, max_bytes: int) -> list[Path]:
    """Write the parts of *file* next to it; [] if it cannot be split (native pixel data)."""
    parsed = read_part10(file)
    frames = parsed.frames
    if frames is None or not parsed.transfer_syntax or parsed.pixel is None:
        return []
    if parsed.pixel.value_length is not None or len(frames) < 2:
        return []
    groups: list[list[int]] = [[]]
    size = 0
    for index in range(len(frames)):
        length = frames.frame_length(index)
        if groups[-1] and size + length > max_bytes:
            groups.append([])
            size = 0
        groups[-1].append(index)
        size += length
    if len(groups) < 2:
        return []
    source = parsed.dataset
    source_uid = source.SOPInstanceUID
    concatenation_uid = generate_uid()
    parts = []
    fd = os.open(file, os.O_RDONLY)
    try:
        offset = 0
        for number, group in enumerate(groups, start=1):
            dataset = copy.deepcopy(source)
            for keyword in ("ExtendedOffsetTable", "ExtendedOffsetTableLengths"):
                if keyword in dataset:
                    del dataset[keyword]
            uid = generate_uid()
            dataset.SOPInstanceUID = uid
            dataset.file_meta.MediaStorageSOPInstanceUID = uid
            dataset.SOPInstanceUIDOfConcatenationSource = source_uid
            dataset.ConcatenationUID = concatenation_uid
            dataset.InConcatenationNumber = number
            dataset.InConcatenationTotalNumber = len(groups)
            dataset.ConcatenationFrameOffsetNumber = offset
            dataset.NumberOfFrames = len(group)
            offset += len(group)
            path = file.with_name(f"{uid}.dcm")
            _write_part(path, dataset, fd, frames, group)
            parts.append(path)
    finally:
        os.close(fd)
    return parts


def _write_part(
    path: Path, dataset: Dataset, fd: int, frames: FrameTable, group: list[int]
) -> None:
    """Header, then Pixel Data with a Basic Offset Table, fragments copied byte for byte."""
    with open(path, "wb") as out:
        dcmwrite(out, dataset, enforce_file_format=True)
        offsets, position = [], 0
        for index in group:
            offsets.append(position)
            position += sum(8 + length for _, length in frames.ranges(index))
        if position >= 1 << 32:
            offsets = []  # a Basic Offset Table cannot address it; readers scan instead
        out.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, 0xFFFFFFFF))
        out.write(_ITEM.pack(0xFFFE, 0xE000, 4 * len(offsets)))
        out.write(struct.pack(f"<{len(offsets)}I", *offsets))
        for index in group:
            for offset, length in frames.ranges(index):
                out.write(_ITEM.pack(0xFFFE, 0xE000, length))
                remaining, at = length, offset
                while remaining:
                    chunk = os.pread(fd, min(remaining, 1 << 22), at)
                    out.write(chunk)
                    remaining -= len(chunk)
                    at += len(chunk)
        out.write(_ITEM.pack(0xFFFE, 0xE0DD, 0))
