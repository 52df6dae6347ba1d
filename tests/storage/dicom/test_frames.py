"""Frame tables, checked against pydicom as the independent reader of every real DICOM file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from storage.dicom.frames import FrameTable
from storage.dicom.part10 import read_part10
from tests.conftest import data_id, dicom_files
from tests.dicomfiles import frames


@pytest.mark.parametrize("path", dicom_files(), ids=data_id)
def test_frame_table_matches_pydicom(path: Path) -> None:
    parsed = read_part10(path)
    expected = frames(path)
    assert parsed.frames is not None
    table = FrameTable.from_bytes(parsed.frames.to_bytes())
    assert len(table) == len(expected)
    fd = os.open(path, os.O_RDONLY)
    try:
        for index, frame in enumerate(expected):
            data = b"".join(os.pread(fd, length, offset) for offset, length in table.ranges(index))
            assert data == frame
    finally:
        os.close(fd)


def test_multi_fragment_frames_without_offset_table(tmp_path: Path) -> None:
    """Frames split over several fragments, no Basic Offset Table: grouped by start markers."""
    from pydicom.encaps import encapsulate

    from storage.dicom.frames import encapsulated_frames, scan_fragments

    frame_a = b"\xff\xd8" + b"a" * 100 + b"\xff\xd9"
    frame_b = b"\xff\xd8" + b"b" * 60 + b"\xff\xd9"
    encoded = encapsulate([frame_a, frame_b], fragments_per_frame=3, has_bot=False)
    encoded += b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"  # Sequence Delimitation Item
    path = tmp_path / "pixels.bin"
    path.write_bytes(encoded)
    fd = os.open(path, os.O_RDONLY)
    try:
        table = encapsulated_frames(scan_fragments(fd, 0, len(encoded)), 2)
        got = [b"".join(os.pread(fd, n, o) for o, n in table.ranges(i)) for i in range(2)]
    finally:
        os.close(fd)
    assert got == [frame_a, frame_b]
    assert len(table.ranges(0)) == 3
