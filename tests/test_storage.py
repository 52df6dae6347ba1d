"""Storage-core units checked against independent readers: UIDs, frame tables, migrations."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from storage.database import migrate
from storage.frames import FrameTable
from storage.models import Base
from storage.part10 import read_part10
from storage.uid import is_conformant_uid, is_valid_uid, validate_uid
from tests.conftest import data_id, dicom_files
from tests.dicomfiles import frames


def test_uid_grammar() -> None:
    assert is_conformant_uid("1.2.840.10008.5.1.4.1.1.77.1.6")
    assert is_conformant_uid("0")
    assert not is_conformant_uid("1.02.3")  # leading zero
    assert not is_conformant_uid("1." + "2" * 63)  # 65 characters
    assert is_valid_uid("1." + "2" * 64)  # accepted: a real file in the corpus has one
    for bad in ("", "1..2", ".1", "1.", "1.2.a", "1.2/3", "../1", "1.2 ", "1" * 129, None, 12):
        assert not is_valid_uid(bad), bad
    with pytest.raises(Exception, match="not a valid UID"):
        validate_uid("1.2.x", "Study Instance UID")


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

    from storage.frames import encapsulated_frames, scan_fragments

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


def test_migrations_create_exactly_the_models(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'index.sqlite3'}")
    migrate(engine)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []
